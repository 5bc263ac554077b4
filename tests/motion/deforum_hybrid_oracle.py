"""Test-only numpy + cv2 + scipy reference ("oracle") of Deforum's hybrid-video motion.

Written from a reading of deforum-art/sd-webui-deforum, scripts/deforum_helpers/hybrid_video.py (commit
1b9301d8: get_transformation_matrix_from_images, image_transform_affine/perspective, image_transform_optical_flow,
remap, extend_flow, get_reliable_flow_from_images, custom_gaussian_blur, filter_flow) and consistency_check.py
(make_consistency). No code was copied; it imports neither torch nor anim. Images are HxWxC arrays.
"""

import cv2
import numpy as np
from scipy.ndimage import gaussian_filter


def ransac_matrix(gray_a, gray_b, motion):
    """Deforum's matrix between two grey uint8 frames: SIFT, BFMatcher knn(2), ratio 0.75, then
    findHomography(RANSAC, 5) or estimateAffinePartial2D; None stands for Deforum's identity fallback."""
    sift = cv2.SIFT_create()
    kp_a, des_a = sift.detectAndCompute(gray_a, None)
    kp_b, des_b = sift.detectAndCompute(gray_b, None)
    good = [m for m, n in cv2.BFMatcher().knnMatch(des_a, des_b, k=2) if m.distance < 0.75 * n.distance]
    if len(good) <= 8:
        return None
    src = np.float32([kp_a[m.queryIdx].pt for m in good]).reshape(-1, 1, 2)
    dst = np.float32([kp_b[m.trainIdx].pt for m in good]).reshape(-1, 1, 2)
    if motion == "perspective":
        return cv2.findHomography(src, dst, cv2.RANSAC, 5.0)[0]
    return cv2.estimateAffinePartial2D(src, dst)[0]


def transform(image, matrix):
    """image_transform_ransac: warpAffine for 2x3, warpPerspective for 3x3, BORDER_REFLECT_101, bilinear."""
    height, width = image.shape[:2]
    if np.shape(matrix) == (2, 3):
        return cv2.warpAffine(image, matrix, (width, height), borderMode=cv2.BORDER_REFLECT_101)
    return cv2.warpPerspective(image, matrix, (width, height), borderMode=cv2.BORDER_REFLECT_101)


def flow_transform(image, flow, flow_factor):
    """image_transform_optical_flow: absolute map x - factor * flow, remapped inside a frame padded by a
    quarter (reflect-101 both for the padding and for cv2.remap), then cropped back."""
    height, width = image.shape[:2]
    pad_y, pad_x = int(height * 0.25), int(width * 0.25)
    big = cv2.copyMakeBorder(image, pad_y, pad_y, pad_x, pad_x, cv2.BORDER_REFLECT_101)
    grid_x, grid_y = np.meshgrid(np.arange(big.shape[1]), np.arange(big.shape[0]))
    mapping = np.dstack([grid_x, grid_y]).astype(np.float32)
    inner = -np.asarray(flow, np.float32) * flow_factor
    inner[..., 0] += np.arange(width) + pad_x
    inner[..., 1] += np.arange(height)[:, None] + pad_y
    mapping[pad_y:pad_y + height, pad_x:pad_x + width] = inner
    out = cv2.remap(big, mapping, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    return out[pad_y:pad_y + height, pad_x:pad_x + width]


def reliability(fwd, bwd, blur_sigma):
    """make_consistency channel 0 (1 consistent, -0.75 not), then the truncate=1 constant-mode Gaussian."""
    height, width = fwd.shape[:2]
    ys, xs = np.mgrid[:height, :width].astype(np.float64)
    tx, ty = xs + fwd[..., 0], ys + fwd[..., 1]
    cx, cy = np.clip(tx, 0, width - 2), np.clip(ty, 0, height - 2)
    x0, y0 = np.floor(cx).astype(int), np.floor(cy).astype(int)
    ax, ay = (cx - x0)[..., None], (cy - y0)[..., None]
    b = np.asarray(bwd, np.float64)
    top = b[y0, x0] * (1 - ax) + b[y0, x0 + 1] * ax
    bottom = b[y0 + 1, x0] * (1 - ax) + b[y0 + 1, x0 + 1] * ax
    b_at = top * (1 - ay) + bottom * ay
    diff = ((fwd + b_at) ** 2).sum(-1)
    limit = 0.01 * ((b_at**2).sum(-1) + (fwd**2).sum(-1)) + 0.5
    out = np.where(diff >= limit, -0.75, 1.0)
    if blur_sigma > 0:
        out = gaussian_filter(out, sigma=blur_sigma, mode="constant", cval=0.0, truncate=1.0)
    return out
