"""Deforum's 3D camera construction, so the same numbers move a frame as Deforum moves it.

Deforum (anim_frame_warp_3d / transform_image_3d_new, after Disco Diffusion) does not model a
pinhole camera in pixels. It puts the output pixel grid into a world of normalised units:

- the world point of output pixel (i, j) is (x_i, y_j, z) with x = linspace(-1, 1, W) over the
  columns, y = linspace(-1, 1, H) over the rows, and z the depth in world units (1 when flat);
- the new camera sees a point X (a row vector) at ``X @ R + T`` with ``R = Rx @ Ry @ Rz`` from the
  per-frame angles and ``T = (-tx, +ty, -tz) / 200``; the old camera is the identity;
- both cameras project ``(x, y, z) -> (x / (z tan(fov/2) aspect), y / (z tan(fov/2)))`` (near and
  far do not enter); the offset is projected-new minus projected-old;
- the sampling grid is the pixel-centre grid (grid_sample, align_corners=False) minus the offset.

So +translation_x moves content left, +translation_z zooms in, and the aspect ratio (Deforum's
``aspect_ratio_schedule``, default 1) scales the horizontal projection. Coordinates here are
returned in pixels (float64) for anim.motion.flow.sample_px.
"""

from __future__ import annotations

import math

import numpy as np
import torch

TRANSLATION_SCALE = 1.0 / 200.0  # Deforum (after Disco): translation units per world unit
_BEHIND_CAMERA_PX = -1.0e6  # sampled position for points the new camera sees behind itself


def rotation_xyz(rx_deg: float, ry_deg: float, rz_deg: float) -> np.ndarray:
    """R = Rx @ Ry @ Rz (right-handed, radians from degrees), applied to row vectors as X @ R."""
    a, b, c = (math.radians(float(v)) for v in (rx_deg, ry_deg, rz_deg))
    rx = np.array([[1.0, 0.0, 0.0], [0.0, math.cos(a), -math.sin(a)], [0.0, math.sin(a), math.cos(a)]])
    ry = np.array([[math.cos(b), 0.0, math.sin(b)], [0.0, 1.0, 0.0], [-math.sin(b), 0.0, math.cos(b)]])
    rz = np.array([[math.cos(c), -math.sin(c), 0.0], [math.sin(c), math.cos(c), 0.0], [0.0, 0.0, 1.0]])
    return rx @ ry @ rz


def translation_world(tx: float, ty: float, tz: float) -> np.ndarray:
    """Deforum's camera translation in world units: (-tx, +ty, -tz) / 200."""
    return np.array([-float(tx), float(ty), -float(tz)]) * TRANSLATION_SCALE


def source_coords_deforum(z: torch.Tensor, rotation: np.ndarray, translation: np.ndarray, fov_deg: float,
                          aspect_ratio: float) -> torch.Tensor:
    """(B, H, W, 2) float64 pixel coordinates in the previous frame for every output pixel, given the
    (B, H, W) float64 world depth ``z`` (Deforum's construction, module docstring)."""
    if not 0.0 < fov_deg < 180.0:
        raise ValueError(f"fov_deg must be in (0, 180), got {fov_deg}")
    if not aspect_ratio > 0.0:
        raise ValueError(f"aspect_ratio must be > 0, got {aspect_ratio}")
    _, height, width = z.shape
    kw = {"dtype": torch.float64, "device": z.device}
    x = torch.linspace(-1.0, 1.0, width, **kw).view(1, 1, width)
    y = torch.linspace(-1.0, 1.0, height, **kw).view(1, height, 1)
    scale_y = 1.0 / math.tan(math.radians(fov_deg) / 2.0)
    scale_x = scale_y / float(aspect_ratio)
    new = [x * rotation[0][j] + y * rotation[1][j] + z * rotation[2][j] + float(translation[j]) for j in range(3)]
    in_front = new[2] > 1e-9
    depth_new = torch.where(in_front, new[2], torch.ones_like(new[2]))
    offset_x = scale_x * (new[0] / depth_new - x / z)
    offset_y = scale_y * (new[1] / depth_new - y / z)
    # grid = centre - offset in [-1, 1] units; a unit of the grid is half the image in pixels.
    col = torch.arange(width, **kw).view(1, 1, width)
    row = torch.arange(height, **kw).view(1, height, 1)
    coords = torch.stack([(col - offset_x * (width / 2.0)).expand_as(z),
                          (row - offset_y * (height / 2.0)).expand_as(z)], dim=-1)
    return torch.where(in_front.unsqueeze(-1), coords, torch.full_like(coords, _BEHIND_CAMERA_PX))
