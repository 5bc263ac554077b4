"""Still images in: read, cover-resize and centre-crop to the render size; the preview's test card."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from anim.errors import InputError
from anim.media.tensors import from_uint8_hwc


def load_image(path: str | Path, width: int, height: int, device: torch.device, what: str) -> torch.Tensor:
    """An image file, cover-resized and centre-cropped to width x height, as a (1,3,H,W) tensor."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what}: file not found: {path}")
    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"{what}: cannot read image {path}: {exc}") from None
    return from_uint8_hwc(cover_resize(np.asarray(rgb), width, height), device)


def cover_geometry(src_w: int, src_h: int, width: int, height: int) -> tuple[int, int, int, int]:
    """(scaled_w, scaled_h, left, top): scale to cover width x height, then the centre crop's offset."""
    scale = max(width / src_w, height / src_h)
    new_w, new_h = max(width, round(src_w * scale)), max(height, round(src_h * scale))
    return new_w, new_h, (new_w - width) // 2, (new_h - height) // 2


def cover_resize(image_u8: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale so the image covers width x height, then centre-crop (no distortion, no borders)."""
    h, w = image_u8.shape[:2]
    new_w, new_h, left, top = cover_geometry(w, h, width, height)
    resized = np.asarray(Image.fromarray(image_u8).resize((new_w, new_h), Image.Resampling.LANCZOS))
    return np.ascontiguousarray(resized[top:top + height, left:left + width])


def make_test_card(width: int, height: int) -> np.ndarray:
    """A deterministic test card (colour ramps, grid, centre target) so camera motion is easy to read."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    card = np.stack([x / max(width - 1, 1), y / max(height - 1, 1), 1.0 - x / max(width - 1, 1)], axis=-1)
    card = 0.25 + 0.5 * card
    step = max(8, min(width, height) // 8)
    grid = ((x.astype(int) % step) < 2) | ((y.astype(int) % step) < 2)
    card[grid] = 0.95
    radius = np.hypot(x - width / 2, y - height / 2)
    ring = np.abs(radius - min(width, height) / 4) < 2
    card[ring] = (0.9, 0.1, 0.1)
    card[(np.abs(x - width / 2) < 1.5) | (np.abs(y - height / 2) < 1.5)] = 0.05
    # an arrow-like wedge in the top-left quadrant makes rotation direction unambiguous
    wedge = (x < width / 2) & (y < height / 2) & (x + 2 * y < min(width, height) / 2)
    card[wedge] = (0.1, 0.2, 0.9)
    return np.round(card * 255).clip(0, 255).astype(np.uint8)
