"""The per-frame image stages of the loop, as small functions of (image tensor, frame row, preset)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from anim.coherence import add_noise, apply_contrast, from_uint8_hwc, match_histograms, unsharp_mask
from anim.errors import InputError, PresetError
from anim.motion.camera2d import camera_matrix_2d, warp_perspective
from anim.preset import Preset


def camera_matrix(row: dict, width: int, height: int) -> np.ndarray:
    """The frame's 2D camera matrix from its row (Deforum: rotate+zoom about the centre, then translate)."""
    return camera_matrix_2d(
        angle_deg=row["angle"], zoom=row["zoom"], tx_px=row["translation_x"], ty_px=row["translation_y"],
        center_x_frac=row["transform_center_x"], center_y_frac=row["transform_center_y"],
        width=width, height=height,
    )


def warp(image: torch.Tensor, row: dict, preset: Preset) -> torch.Tensor:
    """Step 2: move the previous frame by this frame's camera motion."""
    mode = preset.motion.mode
    if mode == "none":
        return image
    if mode == "2d":
        return warp_perspective(image, camera_matrix(row, preset.width, preset.height), border=preset.motion.border)
    raise PresetError("motion.mode: '3d' needs the depth camera, which is not built yet; use 2d or none")


def prepare_init(image: torch.Tensor, reference, row: dict, preset: Preset) -> torch.Tensor:
    """Step 3: colour match to the reference, contrast, unsharp mask, seeded noise (Deforum's order)."""
    if reference is not None and preset.color_coherence != "none":
        image = match_histograms(image, reference, preset.color_coherence)
    if row["contrast"] != 1.0:
        image = apply_contrast(image, row["contrast"])
    if row["unsharp_amount"] != 0.0:
        image = unsharp_mask(image, row["unsharp_amount"], kernel_size=int(row["unsharp_kernel"]),
                             sigma=row["unsharp_sigma"], threshold=row["unsharp_threshold"])
    if row["noise"] > 0.0:
        image = add_noise(image, row["noise"], seed=int(row["seed"]), noise_type=preset.noise_type)
    return image


def finish(image: torch.Tensor, reference, preset: Preset) -> torch.Tensor:
    """Step 6: colour match the diffused output to the reference again."""
    if reference is not None and preset.color_coherence != "none":
        return match_histograms(image, reference, preset.color_coherence)
    return image


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


def cover_resize(image_u8: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale so the image covers width x height, then centre-crop (no distortion, no borders)."""
    h, w = image_u8.shape[:2]
    scale = max(width / w, height / h)
    new_w, new_h = max(width, round(w * scale)), max(height, round(h * scale))
    resized = np.asarray(Image.fromarray(image_u8).resize((new_w, new_h), Image.Resampling.LANCZOS))
    top, left = (new_h - height) // 2, (new_w - width) // 2
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


def has_bad_pixels(image: torch.Tensor) -> bool:
    """True when the model produced NaN/inf (fp16 overflow in some VAEs)."""
    return not bool(torch.isfinite(image).all())
