"""Deforum's perspective flip: the frame tilted in 3D and seen through a pinhole camera, as a 3x3 pixel homography.

Read from deforum-art/sd-webui-deforum, scripts/deforum_helpers/animation.py at commit
141c67e94b54fb1b1dde0fa393b4ed711504c766 (also 01b1e9c31a7dc6a6368b7b82b858518fd841514f, same maths):
warpMatrix, getRotationMatrixManual, getPoints_for_PerspectiveTranformEstimation,
get_flip_perspective_matrix, flip_3d_perspective and anim_frame_warp_2d. Our own formulation, no code taken.

What Deforum builds (schedules ``perspective_flip_theta/phi/gamma/fv``, degrees per frame, fv default 53):

- the frame is a plane through the origin, corner pixels at (+-W/2, +-H/2, 0) about the centre (y down);
- it is rotated by R = Rx(phi) @ Ry(gamma) @ Rz(theta) (column vectors, standard right-handed matrices);
- a camera at distance d = sqrt(W^2 + H^2) / (2 sin(fv/2)) looks at it with an OpenGL projection of field
  of view fv; the NDC corners are scaled to Deforum's side length s = sqrt(W^2 + H^2) / cos(fv/2) and the
  homography through the four corners is fitted (cv2.getPerspectiveTransform, float32 points);
- that homography is multiplied on the right by a translation by ((W - s)/2, (H - s)/2).

The scales cancel to a unit-magnification pinhole, and because the translation is applied to the *source*
side (``M @ post``, not ``post @ M``) the pivot is not the frame centre but the point (s/2, s/2): pixel q goes
to ``pivot + d * (R p)_xy / (d - (R p)_z)`` with ``p = (q - pivot, 0)``. For 512x512 at fv 53 the pivot is
(404.5, 404.5); for 256x144 it is (164.1, 164.1), below the frame. ``centred=True`` pivots on (W/2, H/2)
instead (what the code seems to intend). Zero angles give exactly the identity (scale 1, whatever fv);
Deforum's float32 corner fit agrees with the exact matrix to ~2e-5 px. Signs, on screen (y down):
+theta turns the picture clockwise about the pivot (the opposite of the 2D ``angle``); +phi makes the bottom
edge wider than the top (the bottom comes towards the viewer); +gamma makes the left edge taller than the
right (the left comes towards the viewer).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from anim.motion.camera2d import rotation_matrix_2d, translation_matrix_2d, warp_perspective

DEFAULT_FV_DEG = 53.0  # Deforum's perspective_flip_fv default


def flip_rotation(theta_deg: float, phi_deg: float, gamma_deg: float) -> np.ndarray:
    """R = Rx(phi) @ Ry(gamma) @ Rz(theta), 3x3 float64: phi about x (rows), gamma about y (columns),
    theta in the image plane, composed in Deforum's order."""
    phi, gamma, theta = (math.radians(float(v)) for v in (phi_deg, gamma_deg, theta_deg))
    cp, sp, cg, sg, ct, st = math.cos(phi), math.sin(phi), math.cos(gamma), math.sin(gamma), math.cos(theta), \
        math.sin(theta)
    rx = np.array([[1.0, 0.0, 0.0], [0.0, cp, -sp], [0.0, sp, cp]])
    ry = np.array([[cg, 0.0, sg], [0.0, 1.0, 0.0], [-sg, 0.0, cg]])
    rz = np.array([[ct, -st, 0.0], [st, ct, 0.0], [0.0, 0.0, 1.0]])
    return rx @ ry @ rz


def flip_camera_distance_px(width: int, height: int, fv_deg: float) -> float:
    """Distance from Deforum's flip camera to the image plane, in pixels: the diagonal spans the field of view."""
    if not 0.0 < float(fv_deg) < 180.0:
        raise ValueError(f"perspective flip fv_deg must be in (0, 180), got {fv_deg}")
    return math.hypot(width, height) / (2.0 * math.sin(math.radians(float(fv_deg)) / 2.0))


def flip_pivot_px(width: int, height: int, fv_deg: float, centred: bool = False) -> tuple[float, float]:
    """The point the flip turns about: Deforum's (s/2, s/2) with s = sqrt(W^2 + H^2) / cos(fv/2), or the
    frame centre (W/2, H/2) when ``centred``."""
    if centred:
        return width / 2.0, height / 2.0
    side = math.hypot(width, height) / math.cos(math.radians(float(fv_deg)) / 2.0)
    return side / 2.0, side / 2.0


def perspective_flip_matrix(width: int, height: int, theta_deg: float, phi_deg: float, gamma_deg: float,
                            fv_deg: float = DEFAULT_FV_DEG, *, centred: bool = False) -> np.ndarray:
    """Deforum's perspective-flip homography (3x3 float64, [2, 2] = 1) for a ``width`` x ``height`` frame, with
    the meaning of ``cv2.warpPerspective``: it maps a source pixel to where it lands (module docstring)."""
    distance = flip_camera_distance_px(width, height, fv_deg)
    r = flip_rotation(theta_deg, phi_deg, gamma_deg)
    # Plane point p = (px, py, 0): numerator d * (R p)_xy, denominator d - (R p)_z; divided through by d.
    about_pivot = np.array([[r[0, 0], r[0, 1], 0.0],
                            [r[1, 0], r[1, 1], 0.0],
                            [-r[2, 0] / distance, -r[2, 1] / distance, 1.0]])
    pivot_x, pivot_y = flip_pivot_px(width, height, fv_deg, centred)
    matrix = translation_matrix_2d(pivot_x, pivot_y) @ about_pivot @ translation_matrix_2d(-pivot_x, -pivot_y)
    return matrix / matrix[2, 2]


def combine_with_2d(flip: np.ndarray, rotation: np.ndarray, translation: np.ndarray, *,
                    keep_translation: bool = False) -> np.ndarray:
    """The matrix Deforum's 2D warp uses when the flip is on: ``flip @ rotation``.

    Deforum writes ``np.matmul(bM, rot_mat, trans_mat)``; numpy's third positional argument is ``out``, so
    the product is ``bM @ rot_mat`` (stored into trans_mat) and translation_x/y are ignored while the flip is
    enabled. ``keep_translation=True`` gives the evidently intended ``flip @ rotation @ translation``."""
    flip, rotation, translation = (np.asarray(m, dtype=np.float64) for m in (flip, rotation, translation))
    return flip @ rotation @ translation if keep_translation else flip @ rotation


def camera_matrix_2d_with_flip(flip: np.ndarray, angle_deg: float, zoom: float, tx_px: float, ty_px: float,
                               center_x_frac: float, center_y_frac: float, width: int, height: int, *,
                               keep_translation: bool = False) -> np.ndarray:
    """Deforum's per-frame 2D matrix with the perspective flip on (anim.motion.camera2d.camera_matrix_2d's
    arguments plus the flip matrix): see :func:`combine_with_2d` for the translation caveat."""
    rotation = rotation_matrix_2d(angle_deg, zoom, width * center_x_frac, height * center_y_frac)
    return combine_with_2d(flip, rotation, translation_matrix_2d(tx_px, ty_px), keep_translation=keep_translation)


def flip_border(border: str) -> str:
    """The border Deforum warps with when the flip is on (2D warp and 3D pre-warp): wrap stays wrap, every
    other setting replicates."""
    return "wrap" if border == "wrap" else "replicate"


def prewarp_3d(image: torch.Tensor, flip: np.ndarray, border: str = "replicate") -> torch.Tensor:
    """3D mode: Deforum warps the previous frame by the flip alone (bilinear, :func:`flip_border`) before the
    depth reprojection; ``image`` is (N, C, H, W)."""
    return warp_perspective(image, flip, flip_border(border))
