"""Deforum's hybrid-video motion: the input video's own camera motion, found between two of its frames and
applied to the previous output frame (Deforum ``hybrid_motion``: Affine | Perspective | Optical Flow).

Read from deforum-art/sd-webui-deforum, scripts/deforum_helpers/hybrid_video.py at commit
1b9301d82fb6e3c6a13d52ca31560342a47e3c02 (get_matrix_for_hybrid_motion, get_transformation_matrix_from_images,
image_transform_ransac / _affine / _perspective, get_flow_for_hybrid_motion, get_reliable_flow_from_images,
filter_flow, custom_gaussian_blur, image_transform_optical_flow, remap, extend_flow), consistency_check.py
(make_consistency) and render.py (78ed48f9): for frame t Deforum estimates the motion from input frame t-1 to
input frame t and moves the warped previous output by it. Our own code, no code taken.

- Matrix: SIFT keypoints and descriptors on the grey frames (cv2.SIFT_create defaults), brute-force L2
  k=2 matching, Lowe's ratio test at 0.75; with 8 or fewer good matches the identity. Perspective:
  cv2.findHomography, RANSAC, 5 px reprojection threshold. Affine: cv2.estimateAffinePartial2D (RANSAC,
  3 px): rotation, uniform scale and translation only, no shear (``full_affine`` uses estimateAffine2D).
  (Older Deforum, e.g. hybrid_video.py at 0244e600, tracked goodFeaturesToTrack corners with pyramidal
  Lucas-Kanade instead and warped with BORDER_REPLICATE.)
- Applying a matrix: bilinear ``cv2.warpPerspective`` / ``warpAffine`` semantics with BORDER_REFLECT_101
  (reflection about the edge pixel's centre), here on the device.
- Optical flow: forward flow from input frame t-1 to t; with the consistency check on, the flow is multiplied
  by a reliability of 1 (forward/backward consistent) or -0.75 (not; Deforum's value, which reverses and
  damps the flow there), optionally Gaussian-blurred (sigma = ``hybrid_consistency_blur`` px, truncated at one
  sigma, zero outside the frame). The image is then sampled at ``x - flow_factor * flow(x)`` (bilinear,
  reflect-101 about a frame padded by a quarter of its size on each side, as Deforum's remap does).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from anim.motion.camera2d import BORDER_MODES, source_coords_px, warp_perspective
from anim.motion.flow import estimate_flow, flow_to_tensor, pixel_grid, sample_px, to_gray_u8

HYBRID_MOTIONS = ("affine", "perspective")
HYBRID_BORDERS = (*BORDER_MODES, "reflect101")
SIFT_RATIO = 0.75  # Lowe's ratio test, Deforum's ``confidence``
HOMOGRAPHY_RANSAC_PX = 5.0
AFFINE_RANSAC_PX = 3.0  # cv2.estimateAffinePartial2D's default, which Deforum keeps
MIN_GOOD_MATCHES = 9  # Deforum falls back to the identity with 8 or fewer
UNRELIABLE_FLOW_WEIGHT = -0.75  # Deforum's reliability where the forward/backward check fails
CONSISTENCY_ALPHA = 0.01
CONSISTENCY_BETA_PX2 = 0.5
REMAP_PAD_FRACTION = 0.25  # Deforum's remap pads the frame by a quarter of each side (reflect-101)


# ---- matrices from the input video ---------------------------------------------------------------


def matched_points(gray_a: np.ndarray, gray_b: np.ndarray, ratio: float = SIFT_RATIO) -> tuple[np.ndarray, np.ndarray]:
    """(K, 1, 2) float32 point pairs (in a, in b) from SIFT features matched brute-force (L2, two nearest) and
    kept by the ratio test ``best < ratio * second``; empty arrays when either frame has too few features."""
    import cv2

    sift = cv2.SIFT_create()
    keys_a, desc_a = sift.detectAndCompute(gray_a, None)
    keys_b, desc_b = sift.detectAndCompute(gray_b, None)
    empty = np.zeros((0, 1, 2), np.float32)
    if desc_a is None or desc_b is None or len(keys_a) < 2 or len(keys_b) < 2:
        return empty, empty
    pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(desc_a, desc_b, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < ratio * p[1].distance]
    if not good:
        return empty, empty
    src = np.float32([keys_a[m.queryIdx].pt for m in good]).reshape(-1, 1, 2)
    dst = np.float32([keys_b[m.trainIdx].pt for m in good]).reshape(-1, 1, 2)
    return src, dst


def estimate_hybrid_matrix(prev, curr, motion: str = "perspective", *, full_affine: bool = False) -> np.ndarray:
    """3x3 float64 matrix moving frame ``prev``'s content to where it is in frame ``curr`` (so
    ``warp_hybrid(prev, M) ~ curr``), by features + RANSAC (module docstring); the identity when the frames do
    not give enough matches or no model fits. Frames: (H, W, 3) uint8 RGB or (1, 3, H, W) tensors in [0, 1]."""
    import cv2

    if motion not in HYBRID_MOTIONS:
        raise ValueError(f"hybrid motion must be one of {HYBRID_MOTIONS}, got {motion!r}")
    src, dst = matched_points(to_gray_u8(prev), to_gray_u8(curr))
    if len(src) < MIN_GOOD_MATCHES:
        return np.eye(3)
    if motion == "perspective":
        matrix, _ = cv2.findHomography(src, dst, cv2.RANSAC, HOMOGRAPHY_RANSAC_PX)
    else:
        fit = cv2.estimateAffine2D if full_affine else cv2.estimateAffinePartial2D
        matrix, _ = fit(src, dst, method=cv2.RANSAC, ransacReprojThreshold=AFFINE_RANSAC_PX)
    if matrix is None or not np.isfinite(matrix).all():
        return np.eye(3)
    matrix = np.asarray(matrix, np.float64)
    return np.vstack([matrix, [0.0, 0.0, 1.0]]) if matrix.shape == (2, 3) else matrix / matrix[2, 2]


# ---- sampling with Deforum's border ---------------------------------------------------------------


def reflect101(coords_px: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pixel coordinates (..., 2) folded into the frame by reflection about the edge pixels' centres (cv2
    BORDER_REFLECT_101: -1 reads pixel 1). Bilinear taps of the folded point equal cv2's folded taps."""
    sizes = torch.tensor([width, height], dtype=coords_px.dtype, device=coords_px.device)
    period = 2.0 * (sizes - 1.0)
    folded = torch.remainder(coords_px, period.clamp(min=1.0))
    folded = torch.where(folded > sizes - 1.0, period - folded, folded)
    return torch.where(sizes > 1.0, folded, torch.zeros_like(folded))


def warp_hybrid(image: torch.Tensor, matrix, border: str = "reflect101") -> torch.Tensor:
    """``cv2.warpPerspective(image, matrix)`` (bilinear) on the device for (N, C, H, W) images, with Deforum's
    hybrid border ``reflect101`` or any anim.motion.camera2d border; ``matrix`` 3x3 or 2x3 (affine)."""
    if border not in HYBRID_BORDERS:
        raise ValueError(f"border must be one of {HYBRID_BORDERS}, got {border!r}")
    matrix = np.asarray(matrix, np.float64)
    if matrix.shape == (2, 3):
        matrix = np.vstack([matrix, [0.0, 0.0, 1.0]])
    if border != "reflect101":
        return warp_perspective(image, matrix, border)
    if np.array_equal(matrix, np.eye(3)):
        return image.clone()
    height, width = image.shape[-2:]
    device = torch.device("cpu") if image.device.type == "mps" else image.device
    inverse = torch.linalg.inv(torch.as_tensor(matrix)).unsqueeze(0)
    coords = source_coords_px(inverse, height, width, device).expand(image.shape[0], -1, -1, -1)
    return sample_px(image, reflect101(coords, height, width).to(image.device), "replicate")


# ---- optical flow ---------------------------------------------------------------------------------


def gaussian_blur_truncated(mask: torch.Tensor, sigma_px: float, truncate: float = 1.0) -> torch.Tensor:
    """Separable Gaussian blur of (N, 1, H, W) with radius ``int(truncate * sigma + 0.5)``, taps normalised to
    sum 1, zeros outside the frame (scipy.ndimage.gaussian_filter with mode='constant', as Deforum calls it)."""
    radius = int(truncate * float(sigma_px) + 0.5)
    if sigma_px <= 0 or radius == 0:
        return mask
    taps = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (taps / float(sigma_px)) ** 2)
    kernel = (kernel / kernel.sum()).to(mask.dtype).to(mask.device)
    out = F.conv2d(mask, kernel.view(1, 1, 1, -1), padding=(0, radius))
    return F.conv2d(out, kernel.view(1, 1, -1, 1), padding=(radius, 0))


def flow_reliability(fwd, bwd, blur_sigma_px: float = 0.0):
    """Deforum's reliability of the forward flow a->b (consistency_check.make_consistency, channel 0): 1 where
    ``|f + b(x + f)|^2 < 0.01 (|f|^2 + |b(x + f)|^2) + 0.5``, else -0.75, with ``b`` read bilinearly at
    ``x + f`` clamped to [0, size - 2] (Deforum counts flow leaving the frame as reliable); then blurred by
    :func:`gaussian_blur_truncated` when ``blur_sigma_px`` > 0. (anim.motion.flow.consistency_mask is the 0/1
    test that also rejects flow leaving the frame.) Flows as in anim.motion.flow; returns (H, W) float32 for
    numpy flows, (N, 1, H, W) float32 for tensors."""
    as_numpy = not isinstance(fwd, torch.Tensor)
    fwd_t = flow_to_tensor(fwd).to(torch.float32)
    bwd_t = flow_to_tensor(bwd, fwd_t.device).to(torch.float32)
    height, width = fwd_t.shape[-2:]
    target = pixel_grid(height, width, dtype=torch.float32, device=fwd_t.device) + fwd_t.permute(0, 2, 3, 1)
    upper = torch.tensor([max(width - 2, 0), max(height - 2, 0)], dtype=torch.float32, device=fwd_t.device)
    target = torch.minimum(target.clamp(min=0.0), upper)
    bwd_at = sample_px(bwd_t, target, "replicate")
    round_trip = ((fwd_t + bwd_at) ** 2).sum(1, keepdim=True)
    threshold = CONSISTENCY_ALPHA * ((bwd_at**2).sum(1, keepdim=True) + (fwd_t**2).sum(1, keepdim=True))
    reliable = torch.where(round_trip >= threshold + CONSISTENCY_BETA_PX2,
                           torch.full_like(round_trip, UNRELIABLE_FLOW_WEIGHT), torch.ones_like(round_trip))
    reliable = gaussian_blur_truncated(reliable, blur_sigma_px)
    return reliable[0, 0].cpu().numpy() if as_numpy else reliable


def hybrid_flow(prev, curr, method: str = "dis", *, consistency: bool = False, blur_sigma_px: float = 2.0):
    """Deforum's hybrid optical flow from input frame ``prev`` to ``curr`` (anim.motion.flow.estimate_flow;
    ``dis`` is Deforum's "DIS Medium", ``raft`` its "RAFT"), times :func:`flow_reliability` when
    ``consistency`` (Deforum's hybrid_flow_consistency / hybrid_consistency_blur). Layout as given."""
    fwd = estimate_flow(prev, curr, method)
    if not consistency:
        return fwd
    weight = flow_reliability(fwd, estimate_flow(curr, prev, method), blur_sigma_px)
    if isinstance(fwd, torch.Tensor):
        return fwd * weight
    return fwd * weight[..., None]


def warp_by_hybrid_flow(image: torch.Tensor, flow, flow_factor: float = 1.0, border: str = "reflect101"
                        ) -> torch.Tensor:
    """Move ``image`` (N, C, H, W) along the forward ``flow`` (prev -> curr) like Deforum's
    image_transform_optical_flow: ``out(x) = image(x - flow_factor * flow(x))``, bilinear. ``reflect101``
    reproduces Deforum's remap (reflect-101 about a quarter-size reflect-101 padding); other borders as in
    anim.motion.flow.sample_px. A zero flow or factor returns an exact copy."""
    if border not in HYBRID_BORDERS:
        raise ValueError(f"border must be one of {HYBRID_BORDERS}, got {border!r}")
    flow_t = flow_to_tensor(flow, image.device).to(torch.float32)
    if flow_t.shape[-2:] != image.shape[-2:]:
        raise ValueError(f"flow size {tuple(flow_t.shape[-2:])} differs from image size {tuple(image.shape[-2:])}")
    if flow_factor == 0 or not bool(flow_t.any()):
        return image.clone()
    height, width = image.shape[-2:]
    coords = pixel_grid(height, width, dtype=torch.float32, device=image.device)
    coords = coords - float(flow_factor) * flow_t.permute(0, 2, 3, 1)
    coords = coords.expand(image.shape[0], -1, -1, -1) if coords.shape[0] != image.shape[0] else coords
    if border != "reflect101":
        return sample_px(image, coords, border)
    pad_x, pad_y = math.floor(width * REMAP_PAD_FRACTION), math.floor(height * REMAP_PAD_FRACTION)
    pad = torch.tensor([pad_x, pad_y], dtype=coords.dtype, device=coords.device)
    coords = reflect101(reflect101(coords + pad, height + 2 * pad_y, width + 2 * pad_x) - pad, height, width)
    return sample_px(image, coords, "replicate")

