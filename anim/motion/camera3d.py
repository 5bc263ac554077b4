"""The 3D camera: depth reprojection of the previous frame, one grid_sample.

Two projections. ``deforum`` (the preset default) is Deforum's own construction, in
anim.motion.deforum3d: the same numbers move a frame as Deforum moves it. ``pinhole``, below, is a
metric pinhole camera in pixels (an explicit choice, ``motion.projection: pinhole``).

Model. A pinhole camera looks down +Z with X right and Y down (screen axes, as in
anim.motion.camera2d). The principal point is the image centre ((W-1)/2, (H-1)/2) and the focal
length is ``f = (min(W, H) / 2) / tan(fov_deg / 2)`` pixels, so ``fov_deg`` spans the shorter
side. Each frame the camera moves by a small rigid motion (R, t): the pose of the new camera in
the old camera's coordinates, ``P_old = R @ P_new + t``.

For every output pixel x we take the depth Z at x (the previous frame's depth stands in for the
new frame's, as in Deforum), unproject it to P_new, move it into the old camera by (R, t) -- the
inverse of the camera's motion, seen from the points -- and project it: that is the pixel of the
previous frame to sample. One bilinear grid_sample then makes the new frame.

Units. All lengths -- translation_x/y/z, depth, near, far -- are Deforum's translation units,
1/200 of the unit cube (``TRANSLATION_UNITS_PER_CUBE``). Depth is the distance along the optical
axis, larger = farther, clamped to [near, far]. ``depth=None`` means a flat scene at ``near``.

Signs (per frame, chosen to agree with the 2D camera):
- ``tx > 0`` moves content right (the camera moves left), like 2D ``translation_x``;
  ``ty > 0`` moves content down (the camera moves up), like 2D ``translation_y``.
- ``tz > 0`` moves the camera forward: the image zooms in (like 2D ``zoom > 1``). With flat depth
  Z, tz is exactly a centred zoom by ``(Z + tz) / Z`` (see ``equivalent_zoom``).
- ``rz_deg > 0`` rotates content counter-clockwise on screen, exactly like the 2D ``angle``.
- ``ry_deg > 0`` turns the camera the way ``tx > 0`` moves it: content moves right;
  ``rx_deg > 0`` turns it the way ``ty > 0`` moves it: content moves down.
Rotations are composed as ``R = Rx(rx) @ Ry(-ry) @ Rz(rz)`` (right-handed rotations about the
camera axes); per-frame angles are small, so the order matters little.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from anim.motion.deforum3d import rotation_xyz, source_coords_deforum, translation_world
from anim.motion.flow import border_mode, pixel_grid, sample_px

TRANSLATION_UNITS_PER_CUBE = 200.0
DEFAULT_FOV_DEG = 40.0
DEFAULT_NEAR = 200.0
DEFAULT_FAR = 10000.0
PROJECTIONS = ("deforum", "pinhole")  # motion.projection: Deforum's construction, or this module's pinhole
_BEHIND_CAMERA_PX = -1.0e6  # projection target for points that were behind the old camera


# ---- small pure math -------------------------------------------------------------------------


def focal_length_px(fov_deg: float, width: int, height: int) -> float:
    """Pinhole focal length in pixels for a field of view across the shorter image side."""
    if not 0.0 < fov_deg < 180.0:
        raise ValueError(f"fov_deg must be in (0, 180), got {fov_deg}")
    return (min(width, height) / 2.0) / math.tan(math.radians(fov_deg) / 2.0)


def principal_point_px(width: int, height: int) -> tuple[float, float]:
    """The geometric image centre in pixel-centre coordinates (zoom/rotation keep it fixed)."""
    return (width - 1) / 2.0, (height - 1) / 2.0


def _rot_x(angle_rad: float) -> np.ndarray:
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _rot_y(angle_rad: float) -> np.ndarray:
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rot_z(angle_rad: float) -> np.ndarray:
    c, s = math.cos(angle_rad), math.sin(angle_rad)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def camera_rotation(rx_deg: float, ry_deg: float, rz_deg: float) -> np.ndarray:
    """3x3 float64 rotation of the new camera in the old camera's axes (signs: module docstring)."""
    return _rot_x(math.radians(rx_deg)) @ _rot_y(-math.radians(ry_deg)) @ _rot_z(math.radians(rz_deg))


def camera_translation(tx: float, ty: float, tz: float) -> np.ndarray:
    """Position of the new camera in the old camera's axes (translation units): content follows
    +tx right and +ty down, so the camera moves the other way; +tz is forward."""
    return np.array([-float(tx), -float(ty), float(tz)])


def equivalent_zoom(depth: float, tz: float) -> float:
    """The 2D zoom that ``tz`` gives for a flat scene at ``depth`` (both in translation units)."""
    return (depth + tz) / depth


def is_still(tx, ty, tz, rx_deg, ry_deg, rz_deg) -> bool:
    """True when the motion is exactly zero (the warp is then an exact copy)."""
    return all(float(v) == 0.0 for v in (tx, ty, tz, rx_deg, ry_deg, rz_deg))


# ---- depth to source coordinates ---------------------------------------------------------------


def prepare_depth(depth, batch: int, height: int, width: int, near: float, far: float,
                  device: torch.device) -> torch.Tensor:
    """(B, H, W) float64 depth clamped to [near, far]: None is flat at ``near``; a (N or 1, 1, h, w)
    tensor of another size is resized bilinearly."""
    if not 0.0 < near < far:
        raise ValueError(f"need 0 < near < far, got near={near}, far={far}")
    if depth is None:
        return torch.full((batch, height, width), float(near), dtype=torch.float64, device=device)
    if depth.dim() != 4 or depth.shape[1] != 1 or depth.shape[0] not in (1, batch):
        raise ValueError(f"depth must be (N, 1, H, W) with N in (1, {batch}), got {tuple(depth.shape)}")
    d = depth.detach().to(device=device, dtype=torch.float64)
    if d.shape[-2:] != (height, width):
        d = F.interpolate(d, size=(height, width), mode="bilinear", align_corners=False)
    return d[:, 0].clamp(near, far).expand(batch, height, width)


def source_coords_3d(depth: torch.Tensor, rotation: np.ndarray, translation: np.ndarray,
                     focal_px: float) -> torch.Tensor:
    """(B, H, W, 2) float64 pixel coordinates in the previous frame for every output pixel, given
    the (B, H, W) float64 depth and the new camera's pose (rotation, translation) in the old one.

    ``P_old = R @ (Z * ray) + t`` with ``ray = ((x - cx) / f, (y - cy) / f, 1)``; ``R @ ray`` is a sum
    of a per-column and a per-row term, so it is built by broadcasting (no per-pixel matmul)."""
    _, height, width = depth.shape
    cx, cy = principal_point_px(width, height)
    kw = {"dtype": torch.float64, "device": depth.device}
    ray_x = ((torch.arange(width, **kw) - cx) / focal_px).view(1, 1, width)
    ray_y = ((torch.arange(height, **kw) - cy) / focal_px).view(1, height, 1)
    old = [depth * (rotation[i][0] * ray_x + rotation[i][1] * ray_y + rotation[i][2]) + float(translation[i])
           for i in range(3)]
    in_front = old[2] > 1e-9 * depth
    scale = focal_px / torch.where(in_front, old[2], torch.ones_like(old[2]))
    coords = torch.stack([cx + old[0] * scale, cy + old[1] * scale], dim=-1)
    return torch.where(in_front.unsqueeze(-1), coords, torch.full_like(coords, _BEHIND_CAMERA_PX))


def _grid_device(device: torch.device) -> torch.device:
    """float64 grid math runs on the image's device, or the CPU where float64 is missing (MPS)."""
    return torch.device("cpu") if device.type == "mps" else device


def world_depth(depth, batch: int, height: int, width: int, near: float, far: float,
                device: torch.device) -> torch.Tensor:
    """(B, H, W) float64 depth in Deforum's world units: 1 when flat (None) whatever ``near`` is; a depth
    map (in [near, far]) goes to z = 2 - disparity in [1, 2] (nearest 1, farthest 2), as Deforum maps its
    MiDaS output (normalised disparity; Deforum also histogram-equalises it, which anim does not)."""
    if depth is None:
        return torch.ones((batch, height, width), dtype=torch.float64, device=device)
    d = prepare_depth(depth, batch, height, width, near, far, device)
    disparity = ((1.0 / d) - 1.0 / far) / (1.0 / near - 1.0 / far)
    return 2.0 - disparity.clamp(0.0, 1.0)


def _coords(image, depth, tx, ty, tz, rx_deg, ry_deg, rz_deg, fov_deg, near, far,
            projection: str = "pinhole", aspect_ratio: float = 1.0) -> torch.Tensor:
    """Shared body of warp_3d / flow_3d: float64 source pixel coordinates (B, H, W, 2)."""
    if image.dim() != 4:
        raise ValueError(f"image must be (N, C, H, W), got {tuple(image.shape)}")
    batch, _, height, width = image.shape
    device = _grid_device(image.device)
    if projection == "deforum":
        z = world_depth(depth, batch, height, width, near, far, device)
        return source_coords_deforum(z, rotation_xyz(rx_deg, ry_deg, rz_deg), translation_world(tx, ty, tz),
                                     fov_deg, aspect_ratio)
    if projection != "pinhole":
        raise ValueError(f"projection must be one of {PROJECTIONS}, got {projection!r}")
    z = prepare_depth(depth, batch, height, width, near, far, device)
    return source_coords_3d(z, camera_rotation(rx_deg, ry_deg, rz_deg), camera_translation(tx, ty, tz),
                            focal_length_px(fov_deg, width, height))


# ---- public ----------------------------------------------------------------------------------


def warp_3d(image: torch.Tensor, depth: torch.Tensor | None = None, *, tx: float = 0.0, ty: float = 0.0,
            tz: float = 0.0, rx_deg: float = 0.0, ry_deg: float = 0.0, rz_deg: float = 0.0,
            fov_deg: float = DEFAULT_FOV_DEG, near: float = DEFAULT_NEAR, far: float = DEFAULT_FAR,
            border: str = "replicate", projection: str = "pinhole", aspect_ratio: float = 1.0,
            sampling: str = "bilinear") -> torch.Tensor:
    """The previous frame ``image`` (N, C, H, W) as seen after one frame of 3D camera motion.

    ``depth`` (N or 1, 1, H, W) is the previous frame's depth in translation units (None = flat at
    ``near``); motion, units and signs are described in the module docstring. ``border`` is
    replicate | reflect (alias reflection) | wrap | zeros. Zero motion returns an exact copy.
    ``projection`` "deforum" follows anim.motion.deforum3d (the motion Deforum's numbers give; ``aspect_ratio``
    scales its horizontal projection), "pinhole" the camera of this module's docstring. ``sampling`` is
    bilinear | bicubic | nearest. Bilinear equals ``warp_by_flow(image, flow_3d(image, depth, ...), border)``."""
    border = border_mode(border)
    if is_still(tx, ty, tz, rx_deg, ry_deg, rz_deg):
        return image.clone()
    coords = _coords(image, depth, tx, ty, tz, rx_deg, ry_deg, rz_deg, fov_deg, near, far, projection, aspect_ratio)
    return sample_px(image, coords, border, sampling)


def flow_3d(image: torch.Tensor, depth: torch.Tensor | None = None, *, tx: float = 0.0, ty: float = 0.0,
            tz: float = 0.0, rx_deg: float = 0.0, ry_deg: float = 0.0, rz_deg: float = 0.0,
            fov_deg: float = DEFAULT_FOV_DEG, near: float = DEFAULT_NEAR, far: float = DEFAULT_FAR,
            projection: str = "pinhole", aspect_ratio: float = 1.0) -> torch.Tensor:
    """The sampling field of :func:`warp_3d` as a flow (N, 2, H, W) float32 in pixels on the image's
    device: ``warp_3d(image)(x) = image(x + flow(x))`` (destination pixel -> source offset, the
    convention of anim.motion.flow). ``image`` only gives the batch, size and device. Useful for
    cadence (scale the motion for an in-between frame) and flow-guided blending."""
    batch, _, height, width = image.shape
    if is_still(tx, ty, tz, rx_deg, ry_deg, rz_deg):
        return torch.zeros(batch, 2, height, width, dtype=torch.float32, device=image.device)
    coords = _coords(image, depth, tx, ty, tz, rx_deg, ry_deg, rz_deg, fov_deg, near, far, projection, aspect_ratio)
    offset = coords - pixel_grid(height, width, dtype=torch.float64, device=coords.device)
    return offset.permute(0, 3, 1, 2).to(device=image.device, dtype=torch.float32).contiguous()
