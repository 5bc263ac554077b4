"""Test-only numpy + cv2 reference ("oracle") of Deforum's perspective flip and its 2D combination.

Written from a reading of deforum-art/sd-webui-deforum, scripts/deforum_helpers/animation.py (commit 141c67e9:
warpMatrix, getRotationMatrixManual, getPoints_for_PerspectiveTranformEstimation, get_flip_perspective_matrix,
anim_frame_warp_2d). No code was copied; it imports neither torch nor anim. It follows Deforum's route
literally (4x4 camera matrices, project four corners, fit the homography with cv2 on float32 points, then a
float32 translation multiplied on the right), where anim.motion.perspective_flip uses a closed form.
"""

import math

import cv2
import numpy as np


def axis_rotation_4x4(axis, angle_rad):
    """Homogeneous 4x4 right-handed rotation about x, y or z (column vectors)."""
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    i, j = {"x": (1, 2), "y": (2, 0), "z": (0, 1)}[axis]
    out = np.eye(4)
    out[i, i], out[j, j], out[i, j], out[j, i] = c, c, -s, s
    return out


def projection_4x4(half_fov_rad, near, far):
    """OpenGL-style perspective projection (the w row is -z)."""
    out = np.zeros((4, 4))
    out[0, 0] = out[1, 1] = 1.0 / math.tan(half_fov_rad)
    out[2, 2] = -(far + near) / (far - near)
    out[2, 3] = -2.0 * far * near / (far - near)
    out[3, 2] = -1.0
    return out


def flip_matrix(width, height, theta_deg, phi_deg, gamma_deg, fv_deg):
    """Deforum's bM (3x3, not normalised) for one frame of perspective flip."""
    half = math.radians(fv_deg) / 2.0
    diagonal = math.sqrt(width * width + height * height)
    side = diagonal / math.cos(half)  # "scale" is always 1 in Deforum's call
    distance = diagonal / (2.0 * math.sin(half))
    rotation = (axis_rotation_4x4("x", math.radians(phi_deg)) @ axis_rotation_4x4("y", math.radians(gamma_deg))
                @ axis_rotation_4x4("z", math.radians(theta_deg)))
    push = np.eye(4)
    push[2, 3] = -distance
    full = projection_4x4(half, distance - diagonal / 2.0, distance + diagonal / 2.0) @ push @ rotation
    corners = np.array([[[-width / 2, height / 2, 0.0], [width / 2, height / 2, 0.0],
                         [width / 2, -height / 2, 0.0], [-width / 2, -height / 2, 0.0]]])
    projected = cv2.perspectiveTransform(corners, full)
    source = (corners[0, :, :2] + [width / 2.0, height / 2.0]).astype(np.float32)
    target = ((projected[0, :, :2] + 1.0) * (0.5 * side)).astype(np.float32)
    fitted = cv2.getPerspectiveTransform(source, target)
    shift = np.vstack([np.float32([[1, 0, (width - side) / 2], [0, 1, (height - side) / 2]]), [0, 0, 1]])
    return fitted @ shift


def frame_matrix_2d(width, height, angle_deg, zoom, tx, ty, center_x_frac, center_y_frac, flip=None):
    """What anim_frame_warp_2d hands to cv2.warpPerspective. With a flip, Deforum's three-argument np.matmul
    treats the translation as the ``out`` buffer, so the result is flip @ rotation (translation unused)."""
    rotation = np.vstack([cv2.getRotationMatrix2D((width * center_x_frac, height * center_y_frac), angle_deg, zoom),
                          [0, 0, 1]])
    translation = np.array([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])
    return rotation @ translation if flip is None else flip @ rotation


def warp(image, matrix, border):
    """cv2.warpPerspective as Deforum calls it (INTER_LINEAR; wrap, else replicate)."""
    mode = cv2.BORDER_WRAP if border == "wrap" else cv2.BORDER_REPLICATE
    height, width = image.shape[:2]
    return cv2.warpPerspective(image, np.asarray(matrix, np.float64), (width, height), borderMode=mode)
