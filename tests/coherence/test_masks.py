"""Mask maths (anim.coherence.masks) against small oracles written from Deforum's load_images.py and A1111's
processing.py / masking.py."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from anim.coherence.filters import add_noise
from anim.coherence.masks import (
    adjust_mask,
    as_tensor,
    binary,
    blur_mask,
    desaturate_outside,
    fill_masked,
    latent_mask,
    masked_noise,
    overlay,
    overlay_mask,
    read_alpha,
    read_mask,
)
from anim.coherence.stages import prepare_init
from anim.errors import InputError
from anim.preset.schema import Preset

SIZE = 32


def box(size=SIZE, lo=8, hi=24) -> np.ndarray:
    mask = np.zeros((size, size), dtype=bool)
    mask[lo:hi, lo:hi] = True
    return mask


def test_alpha_channel_is_the_mask(tmp_path):
    rgba = np.zeros((SIZE, SIZE, 4), dtype=np.uint8)
    rgba[..., :3] = 200
    rgba[..., 3] = np.where(box(), 255, 0)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    alpha = read_alpha(tmp_path / "a.png", SIZE, SIZE, "init_image")
    assert np.array_equal(binary(alpha), box())
    rgba[..., 3] = 255  # blank alpha: Deforum ignores it as a mask
    Image.fromarray(rgba, "RGBA").save(tmp_path / "b.png")
    assert read_alpha(tmp_path / "b.png", SIZE, SIZE, "init_image") is None


def test_mask_file_reads_grey_and_fits_like_the_init(tmp_path):
    grey = np.where(box(64, 16, 48), 255, 0).astype(np.uint8)
    Image.fromarray(grey).save(tmp_path / "m.png")
    assert np.array_equal(binary(read_mask(tmp_path / "m.png", SIZE, SIZE, "mask.file")), box())
    with pytest.raises(InputError, match="mask.file: mask image not found: .*nope.png"):
        read_mask(tmp_path / "nope.png", SIZE, SIZE, "mask.file")


def test_invert():
    mask = as_tensor(box(), invert=True, device="cpu")
    assert mask.shape == (1, 1, SIZE, SIZE)
    assert np.array_equal(mask[0, 0].numpy() > 0, ~box())


@pytest.mark.parametrize("brightness, contrast", [(1.0, 1.0), (0.5, 1.0), (1.8, 1.0), (1.0, 0.5), (1.0, 2.0),
                                                  (1.3, 1.7)])
def test_brightness_then_contrast_as_deforum(brightness, contrast):
    levels = np.linspace(0, 255, SIZE * SIZE).reshape(SIZE, SIZE).astype(np.uint8)
    # Deforum's prepare_mask: brightness = blend with black, then contrast = blend with the rounded mean grey
    bright = np.clip(np.round(levels * brightness), 0, 255)  # 8-bit between the two steps
    mean = int(bright.mean() + 0.5)
    expected = np.clip(mean + contrast * (bright - mean), 0, 255)
    got = adjust_mask(levels, brightness, contrast)
    # PIL rounds the 8-bit intermediate its own way: one level there, times the contrast, plus one at the end
    assert np.abs(got.astype(float) - expected).max() <= 1.0 + (contrast if brightness != 1 else 0.0)
    if brightness == contrast == 1.0:
        assert np.array_equal(got, levels)


@pytest.mark.parametrize("sigma", [1.0, 2.5, 4.0])
def test_blur_is_a1111s(sigma):
    levels = np.where(box(), 255, 0).astype(np.uint8)
    kernel = 2 * int(4 * sigma + 0.5) + 1  # A1111: GaussianBlur along x, then along y
    expected = cv2.GaussianBlur(cv2.GaussianBlur(levels.astype(np.float32), (kernel, 1), sigma), (1, kernel), sigma)
    got = blur_mask(torch.from_numpy(levels / 255.0).float()[None, None], sigma)[0, 0].numpy() * 255
    assert np.abs(got - expected).max() < 1e-3
    assert torch.equal(blur_mask(torch.ones(1, 1, 4, 4), 0.0), torch.ones(1, 1, 4, 4))


def test_latent_mask_is_binary_at_latent_size():
    mask = torch.from_numpy(box(64, 16, 48).astype(np.float32))[None, None]
    small = latent_mask(mask, 8, 8)
    assert small.shape == (1, 1, 8, 8)
    assert set(small.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(small[0, 0], torch.from_numpy(box(8, 2, 6).astype(np.float32)))


def test_overlay_keeps_the_init_exactly_outside():
    init, generated = torch.rand(1, 3, SIZE, SIZE), torch.rand(1, 3, SIZE, SIZE)
    blurred = blur_mask(as_tensor(box(), False, "cpu"), 1.5)
    shown = overlay_mask(blurred)
    out = overlay(generated, init, shown)
    outside = (shown == 0).expand_as(init)
    assert outside.any() and torch.equal(out[outside], init[outside])
    full = (shown == 1).expand_as(init)
    assert full.any() and torch.allclose(out[full], generated[full])
    assert torch.equal(shown, (blurred * 2).clamp(0, 1))


def test_fill_smears_the_surroundings_in():
    image = torch.zeros(1, 3, SIZE, SIZE)
    image[:, 0] = 1.0  # red everywhere ...
    hole = torch.from_numpy(box().astype(np.float32))[None, None]
    image[:, :, 8:24, 8:24] = torch.tensor([0.0, 0.0, 1.0]).view(1, 3, 1, 1)  # ... but a blue box, masked
    filled = fill_masked(image, hole)
    assert torch.equal(filled[:, :, ~torch.from_numpy(box())], image[:, :, ~torch.from_numpy(box())])
    inside = filled[0, :, 10:22, 10:22]
    assert inside[0].min() > 0.9 and inside[2].max() < 0.1  # the hidden blue is gone; the red comes in


def test_noise_only_inside_the_noise_mask():
    image = torch.full((1, 3, SIZE, SIZE), 0.5)
    mask = as_tensor(box(), False, "cpu")
    noised = masked_noise(image, add_noise(image, 0.3, seed=7), mask)
    inside = torch.from_numpy(box()).expand(1, 3, SIZE, SIZE)
    assert torch.equal(noised[~inside], image[~inside])
    assert (noised[inside] - 0.5).abs().mean() > 0.05
    row = {"contrast": 1.0, "unsharp_amount": 0.0, "noise": 0.3, "seed": 7}
    through = prepare_init(image, None, row, Preset(prompts={0: "a"}, color_coherence="none"), noise_mask=mask)
    assert torch.equal(through, noised)


def test_preview_view_is_steady():
    image = torch.rand(1, 3, SIZE, SIZE)
    mask = as_tensor(box(), False, "cpu")
    once = desaturate_outside(image, mask)
    assert torch.allclose(desaturate_outside(once, mask), once, atol=1e-6)
    assert torch.equal(once[:, :, 8:24, 8:24], image[:, :, 8:24, 8:24])
    assert torch.allclose(once[:, 0, :8], once[:, 1, :8], atol=1e-6)  # grey outside
