"""Deforum's per-frame image filters on device tensors: contrast, unsharp mask, seeded noise.

Random numbers are drawn on the CPU, so a seed gives the same frame on every device.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

NOISE_TYPES = ("gaussian", "perlin")


# ---- contrast and sharpening -----------------------------------------------------------------


def apply_contrast(image: torch.Tensor, factor: float) -> torch.Tensor:
    """Deforum contrast: pixel values times ``factor``, clamped to [0, 1]; 1 is the identity."""
    if factor == 1:
        return image.clone()
    return (image * factor).clamp(0.0, 1.0)


# cv2 uses these fixed binomial-like taps for sizes up to 7 when no sigma is given.
_CV2_SMALL_GAUSSIANS = {
    1: [1.0],
    3: [0.25, 0.5, 0.25],
    5: [0.0625, 0.25, 0.375, 0.25, 0.0625],
    7: [0.03125, 0.109375, 0.21875, 0.28125, 0.21875, 0.109375, 0.03125],
}


def gaussian_kernel_1d(kernel_size: int, sigma: float) -> np.ndarray:
    """``cv2.getGaussianKernel``: normalised float64 taps; sigma <= 0 derives it from the size."""
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be odd and positive, got {kernel_size}")
    if sigma <= 0 and kernel_size in _CV2_SMALL_GAUSSIANS:
        return np.array(_CV2_SMALL_GAUSSIANS[kernel_size], dtype=np.float64)
    if sigma <= 0:
        sigma = 0.3 * ((kernel_size - 1) * 0.5 - 1) + 0.8
    offsets = np.arange(kernel_size, dtype=np.float64) - (kernel_size - 1) / 2
    taps = np.exp(-(offsets**2) / (2 * sigma**2))
    return taps / taps.sum()


def gaussian_blur(image: torch.Tensor, kernel_size: int = 5, sigma: float = 1.0) -> torch.Tensor:
    """Separable gaussian blur with reflect-101 padding, matching ``cv2.GaussianBlur``."""
    taps = torch.as_tensor(gaussian_kernel_1d(kernel_size, sigma), dtype=image.dtype, device=image.device)
    channels = image.shape[1]
    pad = kernel_size // 2
    x = F.pad(image, (pad, pad, pad, pad), mode="reflect")  # torch "reflect" == cv2 BORDER_REFLECT_101
    x = F.conv2d(x, taps.view(1, 1, 1, -1).expand(channels, 1, 1, kernel_size), groups=channels)
    return F.conv2d(x, taps.view(1, 1, -1, 1).expand(channels, 1, kernel_size, 1), groups=channels)


def unsharp_mask(
    image: torch.Tensor, amount: float, kernel_size: int = 5, sigma: float = 1.0, threshold: float = 0.0
) -> torch.Tensor:
    """Deforum unsharp mask ``(1 + amount) * img - amount * blur``, clamped; where
    ``|img - blur| < threshold / 255`` (threshold in 8-bit levels) the original is kept."""
    if amount == 0:
        return image.clone()
    blurred = gaussian_blur(image, kernel_size, sigma)
    sharpened = ((1.0 + amount) * image - amount * blurred).clamp(0.0, 1.0)
    if threshold > 0:
        low_contrast = (image - blurred).abs() < threshold / 255.0
        sharpened = torch.where(low_contrast, image, sharpened)
    return sharpened


# ---- noise -----------------------------------------------------------------------------------


def _fade(t: torch.Tensor) -> torch.Tensor:
    """Perlin's quintic fade curve 6t^5 - 15t^4 + 10t^3."""
    return t * t * t * (t * (t * 6.0 - 15.0) + 10.0)


def perlin_octave(height: int, width: int, cell_px: float, generator: torch.Generator) -> torch.Tensor:
    """One octave of 2D gradient (Perlin) noise, (H, W) float64 on the CPU, lattice spacing
    ``cell_px`` pixels, random unit gradients drawn from ``generator``."""
    cells_y = math.ceil(height / cell_px) + 1
    cells_x = math.ceil(width / cell_px) + 1
    angles = torch.rand(cells_y + 1, cells_x + 1, generator=generator, dtype=torch.float64) * (2 * math.pi)
    grad_x, grad_y = torch.cos(angles), torch.sin(angles)
    v = (torch.arange(height, dtype=torch.float64) + 0.5).view(-1, 1) / cell_px
    u = (torch.arange(width, dtype=torch.float64) + 0.5).view(1, -1) / cell_px
    j0, i0 = v.floor().long(), u.floor().long()
    fv, fu = v - j0, u - i0

    def corner(dj: int, di: int) -> torch.Tensor:
        return grad_x[j0 + dj, i0 + di] * (fu - di) + grad_y[j0 + dj, i0 + di] * (fv - dj)

    wu, wv = _fade(fu), _fade(fv)
    top = torch.lerp(corner(0, 0), corner(0, 1), wu)
    bottom = torch.lerp(corner(1, 0), corner(1, 1), wu)
    return torch.lerp(top, bottom, wv)


def perlin_noise(
    height: int, width: int, generator: torch.Generator, octaves: int = 4, persistence: float = 0.5,
    cell_px: float = 64.0,
) -> torch.Tensor:
    """Fractal Perlin noise (H, W) float64 on the CPU, zero mean and unit std: octave k has cells
    ``cell_px / 2**k`` wide and weight ``persistence**k``."""
    total = torch.zeros(height, width, dtype=torch.float64)
    for octave in range(max(1, octaves)):
        total += persistence**octave * perlin_octave(height, width, max(cell_px / 2**octave, 1.0), generator)
    total -= total.mean()
    std = total.std()
    return total / std if std > 0 else total


def seeded_noise(shape, seed: int, noise_type: str = "gaussian", perlin_octaves: int = 4,
                 perlin_persistence: float = 0.5) -> torch.Tensor:
    """Unit noise of ``shape`` (N, 3, H, W), float32 on the CPU from ``torch.Generator('cpu')``:
    gaussian is independent per pixel and channel; perlin is one field per image shared by the
    three channels (luminance grain, no colour speckle)."""
    if noise_type not in NOISE_TYPES:
        raise ValueError(f"noise_type must be one of {NOISE_TYPES}, got {noise_type!r}")
    generator = torch.Generator("cpu").manual_seed(int(seed))
    if noise_type == "gaussian":
        return torch.randn(tuple(shape), generator=generator, dtype=torch.float32)
    n, c, h, w = shape
    fields = [perlin_noise(h, w, generator, perlin_octaves, perlin_persistence) for _ in range(n)]
    return torch.stack(fields).to(torch.float32).unsqueeze(1).expand(n, c, h, w).contiguous()


def add_noise(image: torch.Tensor, amount: float, seed: int, noise_type: str = "gaussian",
              perlin_octaves: int = 4, perlin_persistence: float = 0.5) -> torch.Tensor:
    """Deforum noise: in [-1, 1] space ``x' = (1 - amount) * x + amount * n`` with seeded unit
    noise n, back to [0, 1] clamped. Same seed, same output on any device; amount 0 is exact."""
    if amount == 0:
        return image.clone()
    noise = seeded_noise(image.shape, seed, noise_type, perlin_octaves, perlin_persistence)
    noise = noise.to(device=image.device, dtype=image.dtype)
    mixed = (1.0 - amount) * (image * 2.0 - 1.0) + amount * noise
    return ((mixed + 1.0) / 2.0).clamp(0.0, 1.0)
