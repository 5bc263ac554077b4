"""The Deforum 2D camera: a per-frame 3x3 matrix and a perspective warp on the device.

Coordinates follow OpenCV: pixel (x, y) is the centre of column x, row y, with y pointing down.
The warp has the meaning of ``cv2.warpPerspective(img, M, (W, H), flags=INTER_LINEAR)``:
``dst(x, y) = src(M^-1 (x, y, 1))``, implemented with ``torch.nn.functional.grid_sample``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

BORDER_MODES = ("replicate", "reflect", "wrap", "zeros")

# grid_sample padding mode for each border name ("wrap" is done by wrapping coordinates).
_PADDING_MODE = {"replicate": "border", "reflect": "reflection", "zeros": "zeros", "wrap": "border"}


def rotation_matrix_2d(angle_deg: float, zoom: float, center_x_px: float, center_y_px: float) -> np.ndarray:
    """3x3 form of ``cv2.getRotationMatrix2D``: rotate counter-clockwise on screen by
    ``angle_deg`` and scale by ``zoom`` about the centre (which stays fixed)."""
    angle_rad = math.radians(angle_deg)
    alpha = zoom * math.cos(angle_rad)
    beta = zoom * math.sin(angle_rad)
    return np.array(
        [
            [alpha, beta, (1.0 - alpha) * center_x_px - beta * center_y_px],
            [-beta, alpha, beta * center_x_px + (1.0 - alpha) * center_y_px],
            [0.0, 0.0, 1.0],
        ],
        dtype=np.float64,
    )


def translation_matrix_2d(tx_px: float, ty_px: float) -> np.ndarray:
    """3x3 matrix moving content right by ``tx_px`` and down by ``ty_px`` pixels."""
    return np.array([[1.0, 0.0, tx_px], [0.0, 1.0, ty_px], [0.0, 0.0, 1.0]], dtype=np.float64)


def camera_matrix_2d(
    angle_deg: float,
    zoom: float,
    tx_px: float,
    ty_px: float,
    center_x_frac: float,
    center_y_frac: float,
    width: int,
    height: int,
) -> np.ndarray:
    """Deforum's per-frame 2D camera ``M_rot @ M_trans`` (3x3 float64).

    The centre is ``(width * center_x_frac, height * center_y_frac)`` exactly as Deforum computes it
    (for 0.5 that is half a pixel right/below the pixel grid's geometric centre ``(W-1)/2``).
    """
    center_x_px = width * center_x_frac
    center_y_px = height * center_y_frac
    return rotation_matrix_2d(angle_deg, zoom, center_x_px, center_y_px) @ translation_matrix_2d(tx_px, ty_px)


def _as_float64_matrices(matrix, batch: int, device: torch.device) -> torch.Tensor:
    """(B, 3, 3) float64 tensor from one 3x3 / a (B, 3, 3) numpy array or tensor."""
    if isinstance(matrix, torch.Tensor):
        m = matrix.detach().to(device="cpu", dtype=torch.float64)
    else:
        m = torch.as_tensor(np.asarray(matrix, dtype=np.float64))
    if m.shape == (2, 3):
        m = torch.cat([m, torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)], dim=0)
    if m.dim() == 2:
        m = m.unsqueeze(0)
    if m.shape[-2:] != (3, 3) or m.shape[0] not in (1, batch):
        raise ValueError(f"warp matrix must be 3x3 or ({batch}, 3, 3), got {tuple(m.shape)}")
    return m.expand(batch, 3, 3)


def _is_identity(m: torch.Tensor) -> bool:
    """True when every matrix in the batch is exactly the identity (a no-op warp)."""
    return bool(torch.equal(m, torch.eye(3, dtype=torch.float64).expand_as(m)))


def source_coords_px(inverse: torch.Tensor, height: int, width: int, device: torch.device) -> torch.Tensor:
    """(B, H, W, 2) float64 source pixel coordinates ``M^-1 (x, y, 1)`` for every output pixel."""
    ys = torch.arange(height, dtype=torch.float64, device=device)
    xs = torch.arange(width, dtype=torch.float64, device=device)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    ones = torch.ones_like(grid_x)
    homog = torch.stack([grid_x, grid_y, ones], dim=-1).reshape(-1, 3)  # (H*W, 3)
    mapped = torch.einsum("bij,pj->bpi", inverse.to(device), homog)  # (B, H*W, 3)
    denom = mapped[..., 2:3]
    # Points mapping to infinity (w = 0) are sent far outside; cv2 does the same in effect.
    denom = torch.where(denom.abs() < 1e-12, torch.full_like(denom, 1e-12), denom)
    return (mapped[..., :2] / denom).reshape(-1, height, width, 2)


def pixel_to_normalized(coords_px: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pixel-centre coordinates to grid_sample's [-1, 1] with ``align_corners=False``
    (pixel x spans [x - 0.5, x + 0.5], so -1 is the left edge of pixel 0)."""
    sizes = torch.tensor([width, height], dtype=coords_px.dtype, device=coords_px.device)
    return (2.0 * coords_px + 1.0) / sizes - 1.0


def _grid_device(device: torch.device) -> torch.device:
    """Where float64 grid math can run: the image's device, or the CPU where float64 is missing."""
    return torch.device("cpu") if device.type == "mps" else device


def warp_perspective(image: torch.Tensor, M, border: str = "replicate") -> torch.Tensor:
    """Warp ``image`` (N, 3, H, W) by the 3x3 matrix ``M`` like ``cv2.warpPerspective`` with
    INTER_LINEAR; ``border`` is replicate | reflect (cv2 BORDER_REFLECT) | wrap | zeros.

    ``M`` may be one matrix for the whole batch or one per image (N, 3, 3). The inverse and the
    sampling grid are computed in float64, then cast to the image dtype for ``grid_sample``.
    """
    if border not in BORDER_MODES:
        raise ValueError(f"border must be one of {BORDER_MODES}, got {border!r}")
    if image.dim() != 4:
        raise ValueError(f"image must be (N, C, H, W), got {tuple(image.shape)}")
    batch, _, height, width = image.shape
    matrices = _as_float64_matrices(M, batch, image.device)
    if _is_identity(matrices):
        return image.clone()

    grid_device = _grid_device(image.device)
    inverse = torch.linalg.inv(matrices)
    coords = source_coords_px(inverse, height, width, grid_device)
    source = image
    if border == "wrap":
        coords, source = _wrap_coords(coords, image, height, width)
        height, width = source.shape[-2:]
    grid = pixel_to_normalized(coords, height, width).to(device=image.device, dtype=image.dtype)
    return F.grid_sample(
        source, grid, mode="bilinear", padding_mode=_PADDING_MODE[border], align_corners=False
    )


def _wrap_coords(coords: torch.Tensor, image: torch.Tensor, height: int, width: int):
    """Wrap coordinates into [0, size) and pad the image circularly by one pixel on the right and
    bottom, so bilinear taps across the seam read the opposite edge (cv2 BORDER_WRAP)."""
    sizes = torch.tensor([width, height], dtype=coords.dtype, device=coords.device)
    wrapped = torch.remainder(coords, sizes)
    padded = F.pad(image, (0, 1, 0, 1), mode="circular")
    return wrapped, padded


def warp_perspective_reference_cv2(image_hwc: np.ndarray, M: np.ndarray, border: str) -> np.ndarray:
    """OpenCV reference of :func:`warp_perspective` for tests and comparisons (CPU, HxWxC)."""
    import cv2

    border_mode = {
        "replicate": cv2.BORDER_REPLICATE,
        "reflect": cv2.BORDER_REFLECT,
        "wrap": cv2.BORDER_WRAP,
        "zeros": cv2.BORDER_CONSTANT,
    }[border]
    height, width = image_hwc.shape[:2]
    return cv2.warpPerspective(
        image_hwc, np.asarray(M, dtype=np.float64), (width, height), flags=cv2.INTER_LINEAR,
        borderMode=border_mode, borderValue=0,
    )
