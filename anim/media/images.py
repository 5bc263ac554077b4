"""Still images in: read, cover-resize and centre-crop to the render size; the preview's test card."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from anim.errors import InputError
from anim.media.tensors import from_uint8_hwc

# Transparent pixels are composited on this colour, as A1111 flattens an RGBA init image on its
# img2img_background_color (white by default).
ALPHA_BACKGROUND = (255, 255, 255)
MAX_IMAGE_PIXELS = 16384 * 16384  # larger inputs are refused (decompression bombs), before decoding


def read_rgb(path: str | Path, what: str) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB as a viewer shows it: EXIF orientation applied, 16-bit tones
    scaled (not clipped), alpha composited on ALPHA_BACKGROUND. InputError naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what}: image not found: {path}")
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise InputError(f"{what}: {path} is {width}x{height} pixels; images up to "
                                 f"{MAX_IMAGE_PIXELS:,} pixels are read (scale it down first)")
            return to_rgb_u8(ImageOps.exif_transpose(image))
    except InputError:
        raise
    except Image.DecompressionBombError:
        raise InputError(f"{what}: {path} has more pixels than an input image may ({MAX_IMAGE_PIXELS:,}); "
                         "scale it down first") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"{what}: cannot read image {path} ({exc}); re-export it as PNG or JPEG") from None


def to_rgb_u8(image: Image.Image) -> np.ndarray:
    """A decoded Pillow image as (H, W, 3) uint8: 16/32-bit grey scaled to 8 bits, alpha flattened."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        levels = np.asarray(image).astype(np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or levels.max(initial=0) > 255 else 255.0
        grey = np.clip(np.round(levels * (255.0 / top)), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))
    if image.mode == "F":
        grey = np.clip(np.round(np.asarray(image, dtype=np.float64)), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*ALPHA_BACKGROUND, 255))
        return np.asarray(Image.alpha_composite(background, rgba).convert("RGB")).copy()
    return np.asarray(image.convert("RGB")).copy()


def load_image(path: str | Path, width: int, height: int, device: torch.device, what: str) -> torch.Tensor:
    """An image file (see read_rgb), cover-resized and centre-cropped to width x height, as (1,3,H,W)."""
    return from_uint8_hwc(cover_resize(read_rgb(path, what), width, height), device)


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
