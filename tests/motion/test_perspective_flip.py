"""Deforum's perspective flip against an independent cv2 oracle (deforum_flip_oracle), plus signs and identity."""

import math

import cv2
import numpy as np
import pytest
import torch

from anim.motion.camera2d import camera_matrix_2d, rotation_matrix_2d, translation_matrix_2d, warp_perspective
from anim.motion.perspective_flip import (
    camera_matrix_2d_with_flip,
    combine_with_2d,
    flip_border,
    flip_pivot_px,
    perspective_flip_matrix,
    prewarp_3d,
)
from tests.motion import deforum_flip_oracle as oracle

SIZES = [(256, 256), (256, 144)]
# (theta, phi, gamma, fv) in degrees
ANGLE_SETS = [(10, 0, 0, 53), (0, 12, 0, 53), (0, 0, -15, 53), (5, -8, 12, 40), (-20, 15, 20, 90), (3, 4, -5, 120)]
MARGIN = 24  # px kept off the frame edge when comparing warps


def texture(height, width, seed=0, sigma=2.5):
    """float32 RGB texture in [0, 1], smooth enough that bilinear rounding differences stay far below 1/255."""
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.random((height, width, 3)).astype(np.float32), (0, 0), sigma)
    return (base - base.min()) / (base.max() - base.min())


def to_tensor(hwc):
    return torch.from_numpy(np.ascontiguousarray(hwc)).permute(2, 0, 1)[None]


def to_hwc(nchw):
    return nchw[0].permute(1, 2, 0).numpy()


def grid_points(width, height, step=16):
    ys, xs = np.mgrid[0:height:step, 0:width:step].astype(np.float64)
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


def apply(matrix, points):
    mapped = np.c_[points, np.ones(len(points))] @ np.asarray(matrix, np.float64).T
    return mapped[:, :2] / mapped[:, 2:]


# ---- the matrix ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("width, height", SIZES + [(512, 512), (768, 432)])
@pytest.mark.parametrize("fv_deg", [20, 53, 120])
def test_zero_angles_are_exactly_the_identity(width, height, fv_deg):
    np.testing.assert_array_equal(perspective_flip_matrix(width, height, 0, 0, 0, fv_deg), np.eye(3))
    # Deforum's own route (float32 corner fit) is the identity up to float32 rounding: no scale change.
    theirs = oracle.flip_matrix(width, height, 0, 0, 0, fv_deg)
    points = grid_points(width, height)
    assert np.abs(apply(theirs, points) - points).max() < 1e-4


@pytest.mark.parametrize("width, height", SIZES)
@pytest.mark.parametrize("theta, phi, gamma, fv", ANGLE_SETS)
def test_matrix_matches_deforum_construction(width, height, theta, phi, gamma, fv):
    ours = perspective_flip_matrix(width, height, theta, phi, gamma, fv)
    theirs = oracle.flip_matrix(width, height, theta, phi, gamma, fv)
    points = grid_points(width, height)
    assert np.abs(apply(ours, points) - apply(theirs, points)).max() < 1e-4  # px; theirs fits float32 corners


@pytest.mark.parametrize("width, height", SIZES)
@pytest.mark.parametrize("theta, phi, gamma, fv", ANGLE_SETS)
def test_warp_matches_deforum_within_one_level(width, height, theta, phi, gamma, fv):
    image = texture(height, width)
    expected = oracle.warp(image, oracle.flip_matrix(width, height, theta, phi, gamma, fv), "replicate")
    ours = to_hwc(warp_perspective(to_tensor(image), perspective_flip_matrix(width, height, theta, phi, gamma, fv)))
    inner = (slice(MARGIN, -MARGIN), slice(MARGIN, -MARGIN))
    assert np.abs(ours[inner] - expected[inner]).max() <= 1 / 255


def test_pivot_is_deforums_side_over_two_not_the_centre():
    side = math.hypot(256, 144) / math.cos(math.radians(26.5))
    assert flip_pivot_px(256, 144, 53) == pytest.approx((side / 2, side / 2))
    assert flip_pivot_px(256, 144, 53, centred=True) == (128.0, 72.0)
    for centred in (False, True):
        pivot = np.array([flip_pivot_px(256, 144, 53, centred)])
        matrix = perspective_flip_matrix(256, 144, 25, 0, 0, 53, centred=centred)
        np.testing.assert_allclose(apply(matrix, pivot), pivot, atol=1e-9)  # theta turns about the pivot


# ---- signs ------------------------------------------------------------------------------------------


def test_positive_theta_turns_clockwise_on_screen():
    matrix = perspective_flip_matrix(256, 144, 30, 0, 0, 53)
    pivot = flip_pivot_px(256, 144, 53)
    np.testing.assert_allclose(matrix[:2], cv2.getRotationMatrix2D(pivot, -30, 1.0), atol=1e-9)
    right_of_pivot = apply(matrix, np.array([[pivot[0] + 50.0, pivot[1]]]))[0]
    assert right_of_pivot[1] > pivot[1] + 20  # a point right of the pivot swings down: clockwise (y down)


def corners_after(matrix, width, height):
    corners = np.array([[0.0, 0.0], [width, 0.0], [width, height], [0.0, height]])  # TL TR BR BL
    return apply(matrix, corners)


def test_positive_phi_widens_the_bottom_edge():
    tl, tr, br, bl = corners_after(perspective_flip_matrix(256, 144, 0, 20, 0, 53), 256, 144)
    assert br[0] - bl[0] > tr[0] - tl[0] + 5
    tl, tr, br, bl = corners_after(perspective_flip_matrix(256, 144, 0, -20, 0, 53), 256, 144)
    assert br[0] - bl[0] < tr[0] - tl[0] - 5


def test_positive_gamma_makes_the_left_edge_taller():
    tl, tr, br, bl = corners_after(perspective_flip_matrix(256, 144, 0, 0, 20, 53), 256, 144)
    assert bl[1] - tl[1] > br[1] - tr[1] + 5


def test_wider_field_of_view_is_stronger_perspective():
    def keystone(fv):
        tl, tr, br, bl = corners_after(perspective_flip_matrix(256, 256, 0, 20, 0, fv, centred=True), 256, 256)
        return (br[0] - bl[0]) / (tr[0] - tl[0])
    assert 1.0 < keystone(20) < keystone(53) < keystone(120)


def test_field_of_view_is_validated():
    for fv in (0, 180, -5):
        with pytest.raises(ValueError, match="fv_deg"):
            perspective_flip_matrix(64, 64, 1, 2, 3, fv)


# ---- the 2D combination ------------------------------------------------------------------------------


def test_numpy_three_argument_matmul_stores_into_the_third():
    """The reading behind combine_with_2d: numpy's matmul(a, b, c) is a @ b written into c."""
    a, b = np.diag([2.0, 3.0, 1.0]), rotation_matrix_2d(10, 1.1, 5, 6)
    c = translation_matrix_2d(7.0, -4.0)
    result = np.matmul(a, b, c)
    assert result is c
    np.testing.assert_allclose(result, a @ b)


@pytest.mark.parametrize("width, height", SIZES)
def test_flip_drops_the_2d_translation_like_deforum(width, height):
    flip = perspective_flip_matrix(width, height, 4, 6, -3, 53)
    args = dict(angle_deg=2.0, zoom=1.04, tx_px=5.0, ty_px=-3.0, center_x_frac=0.5, center_y_frac=0.4,
                width=width, height=height)
    ours = camera_matrix_2d_with_flip(flip, **args)
    theirs = oracle.frame_matrix_2d(width, height, 2.0, 1.04, 5.0, -3.0, 0.5, 0.4,
                                    flip=oracle.flip_matrix(width, height, 4, 6, -3, 53))
    points = grid_points(width, height)
    assert np.abs(apply(ours, points) - apply(theirs, points)).max() < 1e-4
    no_translation = camera_matrix_2d_with_flip(flip, **{**args, "tx_px": 0.0, "ty_px": 0.0})
    np.testing.assert_allclose(ours, no_translation, atol=1e-12)
    kept = camera_matrix_2d_with_flip(flip, **args, keep_translation=True)
    np.testing.assert_allclose(kept, flip @ camera_matrix_2d(**args), atol=1e-12)


def test_zero_flip_leaves_rotation_and_zoom():
    flip = perspective_flip_matrix(64, 48, 0, 0, 0, 53)
    rotation, translation = rotation_matrix_2d(7, 1.1, 32, 24), translation_matrix_2d(3, 4)
    np.testing.assert_array_equal(combine_with_2d(flip, rotation, translation), rotation)


@pytest.mark.parametrize("border", ["replicate", "wrap"])
def test_2d_warp_with_flip_matches_deforum(border):
    width, height = 256, 144
    image = texture(height, width, seed=3)
    flip = perspective_flip_matrix(width, height, -6, 10, 8, 60)
    ours_m = camera_matrix_2d_with_flip(flip, 3.0, 1.03, 4.0, 2.0, 0.5, 0.5, width, height)
    theirs_m = oracle.frame_matrix_2d(width, height, 3.0, 1.03, 4.0, 2.0, 0.5, 0.5,
                                      flip=oracle.flip_matrix(width, height, -6, 10, 8, 60))
    ours = to_hwc(warp_perspective(to_tensor(image), ours_m, flip_border(border)))
    expected = oracle.warp(image, theirs_m, border)
    inner = (slice(MARGIN, -MARGIN), slice(MARGIN, -MARGIN))
    assert np.abs(ours[inner] - expected[inner]).max() <= 1 / 255


def test_border_rule_and_3d_prewarp():
    assert [flip_border(b) for b in ("wrap", "replicate", "reflect", "zeros")] == ["wrap"] + ["replicate"] * 3
    image = to_tensor(texture(64, 96, seed=5))
    flip = perspective_flip_matrix(96, 64, 5, 5, 5, 53)
    expected = warp_perspective(image, flip, "replicate")
    np.testing.assert_array_equal(prewarp_3d(image, flip, "zeros").numpy(), expected.numpy())
    assert torch.equal(prewarp_3d(image, perspective_flip_matrix(96, 64, 0, 0, 0)), image)
