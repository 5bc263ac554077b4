"""Image tensors <-> 8-bit arrays: the exact round trip a PNG makes."""

from __future__ import annotations

import numpy as np
import torch

# ---- 8-bit round trip ------------------------------------------------------------------------


def quantize_u8(image: torch.Tensor) -> torch.Tensor:
    """Round to 8-bit levels and back (exactly what a PNG round trip gives)."""
    return torch.round(image.clamp(0.0, 1.0) * 255.0) / 255.0


def to_uint8_hwc(image: torch.Tensor) -> np.ndarray:
    """One image (1, 3, H, W) or (3, H, W) in [0, 1] to an (H, W, 3) uint8 array on the CPU."""
    if image.dim() == 4:
        if image.shape[0] != 1:
            raise ValueError(f"to_uint8_hwc takes one image, got a batch of {image.shape[0]}")
        image = image[0]
    levels = torch.round(image.detach().clamp(0.0, 1.0) * 255.0).to(torch.uint8)
    return levels.permute(1, 2, 0).contiguous().cpu().numpy()


def from_uint8_hwc(array: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """(H, W, 3) uint8 array to a (1, 3, H, W) float32 tensor in [0, 1] on ``device``;
    ``from_uint8_hwc(to_uint8_hwc(x))`` equals ``quantize_u8(x)`` bit for bit."""
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 array, got {array.dtype} {array.shape}")
    levels = torch.from_numpy(np.array(array, copy=True, order="C")).to(device)
    return (levels.permute(2, 0, 1).unsqueeze(0).to(torch.float32) / 255.0).contiguous()
