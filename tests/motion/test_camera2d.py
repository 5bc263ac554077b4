"""Kornia-style tests of the 2D camera: tiny images, exact expectations, cv2 as the reference."""

import math

import cv2
import numpy as np
import pytest
import torch

from anim.motion.camera2d import (
    BORDER_MODES,
    camera_matrix_2d,
    rotation_matrix_2d,
    translation_matrix_2d,
    warp_perspective,
    warp_perspective_reference_cv2,
)


def ramp(height=8, width=8):
    """(1, 3, H, W) image with value (x + W*y) / 256 (channels offset by 1/4): linear, so bilinear
    sampling is exact, and every value is a float32-exact multiple of 1/256 in [0, 1)."""
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    base = (xs + width * ys).float() / 256
    return torch.stack([base, base + 0.25, base + 0.5])[None]


def smooth_random(height, width, seed):
    """A random HxWx3 float32 image blurred a little, like natural image content."""
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.random((height, width, 3)).astype(np.float32), (0, 0), 1.5)


def to_tensor(hwc):
    return torch.from_numpy(np.ascontiguousarray(hwc)).permute(2, 0, 1)[None]


def to_hwc(nchw):
    return nchw[0].permute(1, 2, 0).numpy()


# ---- matrices ------------------------------------------------------------------------------


@pytest.mark.parametrize("angle_deg, zoom, cx, cy", [(0, 1, 4, 4), (30, 1.2, 4, 4), (-17.5, 0.9, 10.3, 2.1)])
def test_rotation_matrix_matches_cv2(angle_deg, zoom, cx, cy):
    expected = cv2.getRotationMatrix2D((cx, cy), angle_deg, zoom)
    np.testing.assert_allclose(rotation_matrix_2d(angle_deg, zoom, cx, cy)[:2], expected, atol=1e-12)


def test_camera_matrix_is_rotation_then_translation():
    m = camera_matrix_2d(10.0, 1.05, 3.0, -2.0, 0.5, 0.25, 64, 48)
    rot = np.vstack([cv2.getRotationMatrix2D((32.0, 12.0), 10.0, 1.05), [0, 0, 1]])
    np.testing.assert_allclose(m, rot @ translation_matrix_2d(3.0, -2.0), atol=1e-12)
    assert m.dtype == np.float64 and m.shape == (3, 3)


def test_camera_matrix_identity_for_neutral_values():
    np.testing.assert_array_equal(camera_matrix_2d(0, 1, 0, 0, 0.5, 0.5, 512, 512), np.eye(3))


def test_translation_only_matrix():
    m = camera_matrix_2d(0, 1, 2.5, -1.0, 0.5, 0.5, 16, 16)
    np.testing.assert_allclose(m, [[1, 0, 2.5], [0, 1, -1.0], [0, 0, 1]], atol=1e-12)


# ---- warp, exact ---------------------------------------------------------------------------


@pytest.mark.parametrize("border", BORDER_MODES)
def test_identity_warp_is_exact(border):
    img = torch.rand(2, 3, 5, 7)
    assert torch.equal(warp_perspective(img, np.eye(3), border), img)


def test_one_pixel_translation_shifts_one_pixel_replicate():
    img = ramp()
    out = warp_perspective(img, translation_matrix_2d(1.0, 0.0), "replicate")
    expected = torch.cat([img[..., :1], img[..., :-1]], dim=-1)  # content moves right, edge repeats
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)


def test_one_pixel_translation_down_wrap():
    img = ramp()
    out = warp_perspective(img, torch.tensor(translation_matrix_2d(0.0, 1.0)), "wrap")
    torch.testing.assert_close(out, torch.roll(img, 1, dims=-2), atol=1e-6, rtol=0)


def test_one_pixel_translation_zeros_border():
    img = ramp()
    out = warp_perspective(img, translation_matrix_2d(-1.0, 0.0), "zeros")
    expected = torch.cat([img[..., 1:], torch.zeros_like(img[..., :1])], dim=-1)
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)


def test_rotation_90_is_counter_clockwise_like_rot90():
    img = ramp()
    # (W-1)/2 = 3.5 is the pixel grid's centre, so a 90 degree turn maps the grid onto itself.
    m = camera_matrix_2d(90.0, 1.0, 0.0, 0.0, 3.5 / 8, 3.5 / 8, 8, 8)
    out = warp_perspective(img, m, "replicate")
    torch.testing.assert_close(out, torch.rot90(img, 1, dims=(-2, -1)), atol=1e-6, rtol=0)
    # torch.rot90 with k=1 moves the top-right corner to the top-left: counter-clockwise on screen
    assert out[0, 0, 0, 0] == img[0, 0, 0, 7]


def test_rotation_90_matches_cv2_direction():
    img = smooth_random(8, 8, 3)
    m = camera_matrix_2d(90.0, 1.0, 0.0, 0.0, 3.5 / 8, 3.5 / 8, 8, 8)
    ref = warp_perspective_reference_cv2(img, m, "replicate")
    np.testing.assert_allclose(to_hwc(warp_perspective(to_tensor(img), m)), ref, atol=1e-4)


def test_zoom_2x_about_centre_samples_expected_pixels():
    img = ramp()
    m = camera_matrix_2d(0.0, 2.0, 0.0, 0.0, 0.5, 0.5, 8, 8)  # centre (4, 4)
    out = warp_perspective(img, m, "replicate")
    # dst(x, y) = src(4 + (x - 4) / 2, 4 + (y - 4) / 2) = src(2 + x/2, 2 + y/2); the ramp is linear
    ys, xs = torch.meshgrid(torch.arange(8.0), torch.arange(8.0), indexing="ij")
    base = ((2 + xs / 2) + 8 * (2 + ys / 2)) / 256
    expected = torch.stack([base, base + 0.25, base + 0.5])[None]
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)
    assert out[0, 0, 4, 4] == img[0, 0, 4, 4]  # the centre stays put


def test_batch_with_per_image_matrices():
    img = ramp().expand(2, 3, 8, 8).contiguous()
    mats = np.stack([np.eye(3), translation_matrix_2d(1.0, 0.0)])
    out = warp_perspective(img, mats)
    torch.testing.assert_close(out[0], img[0])
    torch.testing.assert_close(out[1:], warp_perspective(img[1:], mats[1]))


def test_bad_border_and_shape():
    with pytest.raises(ValueError, match="border"):
        warp_perspective(torch.zeros(1, 3, 4, 4), np.eye(3), "mirror")
    with pytest.raises(ValueError):
        warp_perspective(torch.zeros(3, 4, 4), np.eye(3))


def test_output_keeps_dtype_and_device():
    img = torch.rand(1, 3, 6, 6)
    out = warp_perspective(img, translation_matrix_2d(0.5, 0.25))
    assert out.dtype == img.dtype and out.device == img.device and out.shape == img.shape


# ---- warp vs OpenCV ------------------------------------------------------------------------


def mild_matrix(rng, width, height):
    m = camera_matrix_2d(
        angle_deg=rng.uniform(-5, 5), zoom=rng.uniform(0.95, 1.05), tx_px=rng.uniform(-3, 3),
        ty_px=rng.uniform(-3, 3), center_x_frac=rng.uniform(0.3, 0.7), center_y_frac=rng.uniform(0.3, 0.7),
        width=width, height=height,
    )
    m[2, :2] = rng.uniform(-2e-4, 2e-4, size=2)  # a touch of perspective
    return m


@pytest.mark.parametrize("border", BORDER_MODES)
def test_warp_matches_cv2_on_random_image(border):
    rng = np.random.default_rng(7)
    img = rng.random((48, 64, 3)).astype(np.float32)
    m = mild_matrix(rng, 64, 48)
    ref = warp_perspective_reference_cv2(img, m, border)
    out = to_hwc(warp_perspective(to_tensor(img), m, border))
    assert np.abs(out - ref)[2:-2, 2:-2].mean() < 1 / 255
    assert np.abs(out - ref).mean() < 1 / 255  # the border handling agrees too


@pytest.mark.parametrize("border", ["replicate", "wrap"])
def test_repeated_warp_matches_cv2_loop(border):
    rng = np.random.default_rng(11)
    img = smooth_random(48, 64, 5)
    matrices = [mild_matrix(rng, 64, 48) for _ in range(10)]
    ref, out = img, to_tensor(img)
    for m in matrices:
        ref = warp_perspective_reference_cv2(ref, m, border)
        out = warp_perspective(out, m, border)
    diff = np.abs(to_hwc(out) - ref)
    assert diff[4:-4, 4:-4].mean() < 2 / 255


def test_float64_image_supported():
    img = torch.rand(1, 3, 6, 6, dtype=torch.float64)
    out = warp_perspective(img, rotation_matrix_2d(10.0, 1.0, 3.0, 3.0))
    assert out.dtype == torch.float64 and not math.isnan(out.sum().item())
