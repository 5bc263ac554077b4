"""Deforum's hybrid composite masks (hybrid_video.hybrid_composite): an oracle written from reading it, and the
direction of each step checked on pictures whose answer is known."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageChops, ImageEnhance, ImageOps

from anim.coherence.hybrid import composite
from anim.coherence.hybrid_mask import auto_contrast, comp_mask, depth_u8
from anim.preset.sections import Hybrid

H = W = 32
ROW = {"hybrid_comp_alpha": 1.0, "hybrid_comp_mask_alpha": 0.5, "hybrid_comp_mask_contrast": 1.0,
       "hybrid_comp_mask_auto_contrast_low": 0.0, "hybrid_comp_mask_auto_contrast_high": 100.0}


def tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255.0


def u8(image: torch.Tensor) -> np.ndarray:
    return (image[0].permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def deforum_composite(prev: np.ndarray, video: np.ndarray, kind: str, row: dict, inverse=False, equalize="None",
                      auto=False) -> np.ndarray:
    """Deforum's hybrid_composite as read (PIL images in, the 8-bit blend out), for blend/difference masks."""
    prev_img, video_img = Image.fromarray(prev), Image.fromarray(video)
    if kind == "blend":
        mask = Image.blend(ImageOps.grayscale(prev_img), ImageOps.grayscale(video_img), row["hybrid_comp_mask_alpha"])
    else:
        mask = ImageChops.difference(ImageOps.grayscale(prev_img), ImageOps.grayscale(video_img))
    if inverse:
        mask = ImageOps.invert(mask)
    mask = ImageOps.grayscale(mask)
    if equalize in ("Before", "Both"):
        mask = ImageOps.equalize(mask)
    mask = ImageEnhance.Contrast(mask).enhance(row["hybrid_comp_mask_contrast"])
    if auto:
        arr = np.array(mask).astype(np.float64)
        low = np.percentile(arr, row["hybrid_comp_mask_auto_contrast_low"])
        high = np.percentile(arr, row["hybrid_comp_mask_auto_contrast_high"])
        mask = ImageOps.grayscale(Image.fromarray(np.clip(255 * (arr - low) / (high - low), 0, 255)))
    if equalize in ("After", "Both"):
        mask = ImageOps.equalize(mask)
    comp = Image.composite(prev_img, video_img, mask)
    return np.array(Image.blend(prev_img, comp, row["hybrid_comp_alpha"]))


def pictures(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    prev = (rng.random((H, W, 3)) * 255).astype(np.uint8)
    video = np.clip(prev.astype(int) + rng.integers(-90, 90, (H, W, 3)), 0, 255).astype(np.uint8)
    return prev, video


def test_every_setting_matches_deforum_within_one_level():
    prev, video = pictures()
    cases = [("blend", {}, {}), ("difference", {}, {}),
             ("difference", {"comp_mask_inverse": True}, {"inverse": True}),
             ("blend", {"comp_mask_equalize": "before"}, {"equalize": "Before"}),
             ("difference", {"comp_mask_equalize": "both"}, {"equalize": "Both"}),
             ("difference", {"comp_mask_auto_contrast": True}, {"auto": True})]
    rows = [ROW, {**ROW, "hybrid_comp_alpha": 0.6, "hybrid_comp_mask_alpha": 0.2, "hybrid_comp_mask_contrast": 1.7,
                  "hybrid_comp_mask_auto_contrast_low": 10.0, "hybrid_comp_mask_auto_contrast_high": 90.0}]
    for row in rows:
        for kind, ours, theirs in cases:
            settings = Hybrid(composite="normal", comp_mask=kind, **ours)
            got = u8(composite(tensor(prev), tensor(video), row, settings)).astype(int)
            want = deforum_composite(prev, video, kind, row, **theirs).astype(int)
            assert np.abs(got - want).max() <= 1, (kind, ours, row)


def test_white_keeps_the_image_and_black_takes_the_input_frame():
    """A blend mask at alpha 0 is the image's own grey: its white half is kept, its black half replaced."""
    image = np.zeros((H, W, 3), np.uint8)
    image[:, : W // 2] = 255
    video = np.full((H, W, 3), 90, np.uint8)
    row = {**ROW, "hybrid_comp_mask_alpha": 0.0}
    out = u8(composite(tensor(image), tensor(video), row, Hybrid(composite="normal", comp_mask="blend")))
    assert (out[:, : W // 2] == 255).all() and (out[:, W // 2:] == 90).all()
    flipped = u8(composite(tensor(image), tensor(video), row,
                           Hybrid(composite="normal", comp_mask="blend", comp_mask_inverse=True)))
    assert (flipped[:, : W // 2] == 90).all() and (flipped[:, W // 2:] == 0).all()


def test_no_mask_is_the_plain_blend_and_alpha_zero_changes_no_bit():
    prev, video = pictures(1)
    row = {**ROW, "hybrid_comp_alpha": 0.25}
    plain = composite(tensor(prev), tensor(video), row, Hybrid(composite="normal"))
    assert torch.allclose(plain, torch.lerp(tensor(prev), tensor(video), 0.25))
    image = tensor(prev)
    assert composite(image, tensor(video), {**ROW, "hybrid_comp_alpha": 0.0},
                     Hybrid(composite="normal", comp_mask="difference")) is image


def test_auto_contrast_stretches_the_percentiles():
    mask = np.tile(np.linspace(100, 150, W).astype(np.uint8), (H, 1))
    stretched = auto_contrast(mask, 0.0, 100.0)
    assert stretched.min() == 0 and stretched.max() == 255
    assert np.array_equal(auto_contrast(np.full((4, 4), 7, np.uint8), 0, 100), np.full((4, 4), 7))


def test_depth_mask_is_far_white_near_black_and_needs_a_depth():
    depth = torch.linspace(1.0, 5.0, W).repeat(H, 1)[None, None]
    mask = np.asarray(depth_u8(depth))
    assert mask[:, 0].max() == 0 and mask[:, -1].min() == 255
    prev, video = pictures(2)
    settings = Hybrid(composite="normal", comp_mask="depth")
    got = comp_mask(tensor(prev), tensor(video), depth, ROW, settings)
    assert got.shape == (1, 1, H, W) and float(got[0, 0, 0, 0]) == 0.0 and float(got[0, 0, 0, -1]) == 1.0
    try:
        comp_mask(tensor(prev), tensor(video), None, ROW, settings)
    except ValueError as error:
        assert "depth" in str(error)
    else:
        raise AssertionError("a depth mask without a depth map must fail")
