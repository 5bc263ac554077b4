"""3D camera: exact identities against the 2D camera, sign conventions, depth parallax."""

import math

import cv2
import numpy as np
import pytest
import torch

from anim.motion.camera2d import (
    rotation_matrix_2d,
    translation_matrix_2d,
    warp_perspective,
)
from anim.motion.camera3d import (
    DEFAULT_NEAR,
    camera_rotation,
    equivalent_zoom,
    flow_3d,
    focal_length_px,
    principal_point_px,
    warp_3d,
)
from anim.motion.flow import warp_by_flow

SIZE = 48
MARGIN = 8  # interior used for comparisons (the borders differ only by edge handling)


def smooth_image(height=SIZE, width=SIZE, seed=0):
    rng = np.random.default_rng(seed)
    hwc = cv2.GaussianBlur(rng.random((height, width, 3)).astype(np.float32), (0, 0), 1.5)
    return torch.from_numpy(np.ascontiguousarray(hwc)).permute(2, 0, 1)[None]


def interior_mad(a, b):
    return float((a - b)[..., MARGIN:-MARGIN, MARGIN:-MARGIN].abs().mean())


def centred(matrix_fn, *args, width=SIZE, height=SIZE):
    cx, cy = principal_point_px(width, height)
    return matrix_fn(*args, cx, cy)


def test_zero_motion_is_an_exact_copy():
    image = smooth_image()
    depth = torch.linspace(200, 900, SIZE * SIZE).reshape(1, 1, SIZE, SIZE)
    out = warp_3d(image, depth)
    assert torch.equal(out, image) and out is not image
    assert torch.equal(flow_3d(image, depth), torch.zeros(1, 2, SIZE, SIZE))


@pytest.mark.parametrize("depth_value, tz", [(DEFAULT_NEAR, 10.0), (500.0, 25.0), (500.0, -20.0)])
def test_translation_z_with_flat_depth_is_a_centred_zoom(depth_value, tz):
    image = smooth_image()
    depth = None if depth_value == DEFAULT_NEAR else torch.full((1, 1, SIZE, SIZE), depth_value)
    zoom = equivalent_zoom(depth_value, tz)
    expected = warp_perspective(image, centred(rotation_matrix_2d, 0.0, zoom))
    assert interior_mad(warp_3d(image, depth, tz=tz), expected) < 1e-5
    assert (zoom > 1) == (tz > 0)  # forward zooms in


@pytest.mark.parametrize("angle_deg", [3.0, -7.5, 30.0])
def test_rotation_z_is_the_2d_angle(angle_deg):
    image = smooth_image()
    expected = warp_perspective(image, centred(rotation_matrix_2d, angle_deg, 1.0))
    assert interior_mad(warp_3d(image, None, rz_deg=angle_deg), expected) < 1e-5


@pytest.mark.parametrize("tx, ty", [(4.0, 0.0), (0.0, -6.0), (3.0, 2.0)])
def test_translation_xy_moves_content_like_2d_translation(tx, ty):
    image = smooth_image()
    depth_value = 400.0
    px_per_unit = focal_length_px(40.0, SIZE, SIZE) / depth_value
    expected = warp_perspective(image, translation_matrix_2d(tx * px_per_unit, ty * px_per_unit))
    out = warp_3d(image, torch.full((1, 1, SIZE, SIZE), depth_value), tx=tx, ty=ty, fov_deg=40.0)
    assert interior_mad(out, expected) < 1e-5


def test_rotation_x_y_signs_follow_translation_signs():
    image = smooth_image()
    centre = SIZE // 2
    flow_ry = flow_3d(image, None, ry_deg=1.0)[0, :, centre, centre]
    flow_tx = flow_3d(image, None, tx=5.0)[0, :, centre, centre]
    flow_rx = flow_3d(image, None, rx_deg=1.0)[0, :, centre, centre]
    flow_ty = flow_3d(image, None, ty=5.0)[0, :, centre, centre]
    # dst -> src offsets: content moving right/down samples from the left/above.
    assert flow_tx[0] < 0 and flow_ry[0] < 0 and abs(flow_ry[1]) < 1e-3
    assert flow_ty[1] < 0 and flow_rx[1] < 0 and abs(flow_rx[0]) < 1e-3


def test_near_pixels_move_more_than_far_ones_under_tx():
    image = smooth_image()
    depth = torch.full((1, 1, SIZE, SIZE), 2000.0)
    depth[..., : SIZE // 2] = 200.0  # left half near, right half far
    flow = flow_3d(image, depth, tx=10.0, fov_deg=40.0)
    f_px = focal_length_px(40.0, SIZE, SIZE)
    torch.testing.assert_close(flow[0, 0, :, : SIZE // 2], torch.full((SIZE, SIZE // 2), -f_px * 10 / 200.0))
    torch.testing.assert_close(flow[0, 0, :, SIZE // 2 :], torch.full((SIZE, SIZE // 2), -f_px * 10 / 2000.0))
    assert float(flow[0, 1].abs().max()) < 1e-6


def test_warp_equals_warp_by_its_flow():
    image = smooth_image()
    depth = 200.0 + 800.0 * smooth_image(seed=3)[:, :1]
    motion = dict(tx=3.0, ty=-2.0, tz=8.0, rx_deg=0.5, ry_deg=-0.7, rz_deg=2.0, fov_deg=50.0)
    out = warp_3d(image, depth, **motion)
    via_flow = warp_by_flow(image, flow_3d(image, depth, **motion))
    torch.testing.assert_close(out, via_flow, atol=1e-5, rtol=0)


def test_rotation_matrix_is_orthonormal_and_composes_about_axes():
    rot = camera_rotation(10.0, -20.0, 30.0)
    np.testing.assert_allclose(rot @ rot.T, np.eye(3), atol=1e-12)
    assert math.isclose(np.linalg.det(rot), 1.0)
    c, s = math.cos(math.radians(30)), math.sin(math.radians(30))
    np.testing.assert_allclose(camera_rotation(0, 0, 30.0), [[c, -s, 0], [s, c, 0], [0, 0, 1]], atol=1e-12)


def test_depth_is_resized_clamped_and_broadcast_over_the_batch():
    images = torch.cat([smooth_image(seed=1), smooth_image(seed=2)])
    small = torch.full((1, 1, 12, 12), 50.0)  # below near: clamped to near
    out = warp_3d(images, small, tz=10.0, near=200.0)
    expected = warp_3d(images, None, tz=10.0, near=200.0)
    torch.testing.assert_close(out, expected)
    assert out.shape == images.shape


def test_points_behind_the_old_camera_fall_back_to_the_border():
    image = smooth_image()
    out = warp_3d(image, None, tz=-500.0, near=200.0, border="zeros")
    assert torch.isfinite(out).all()
    assert float(out.abs().max()) == 0.0  # every point was behind the old camera


@pytest.mark.parametrize("border", ["replicate", "reflect", "reflection", "wrap", "zeros"])
def test_border_modes(border):
    out = warp_3d(smooth_image(), None, tz=-30.0, border=border)
    assert out.shape == (1, 3, SIZE, SIZE) and torch.isfinite(out).all()


def test_bad_arguments():
    with pytest.raises(ValueError, match="border"):
        warp_3d(smooth_image(), None, tz=1.0, border="mirror")
    with pytest.raises(ValueError, match="near"):
        warp_3d(smooth_image(), None, tz=1.0, near=0.0)
    with pytest.raises(ValueError, match="fov"):
        warp_3d(smooth_image(), None, tz=1.0, fov_deg=180.0)
