"""Deforum's hybrid composite mask (hybrid_comp_mask_type and its settings, hybrid_video.hybrid_composite): which
pixels of the image a hybrid composite keeps (white) and which it takes from the input frame (black).

The mask is made as Deforum makes it, in 8-bit greys with PIL's own operations, in Deforum's order: the source
(depth, a grey blend or a grey difference), invert, equalise 'before', contrast, auto-contrast between two
percentiles, equalise 'after'. One deliberate difference: a depth mask is the depth map normalised per frame
(far = white); Deforum normalises by the lowest and highest depth seen so far in the run, which depends on
which frames ran before (a resumed render would differ)."""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageChops, ImageEnhance, ImageOps

from anim.media.tensors import to_uint8_hwc
from anim.preset.sections import Hybrid


def grey_u8(image: torch.Tensor) -> Image.Image:
    """A (1, 3, H, W) [0, 1] image as PIL's 8-bit grey (ImageOps.grayscale of its 8-bit RGB)."""
    return ImageOps.grayscale(Image.fromarray(to_uint8_hwc(image)))


def depth_u8(depth: torch.Tensor) -> Image.Image:
    """A (1, 1, H, W) depth map as 8-bit grey, normalised per frame (nearest 0, farthest 255; flat -> black)."""
    d = depth[0, 0].double().cpu().numpy()
    span = float(d.max() - d.min())
    scaled = (d - d.min()) / span * 255.0 if span > 0 else np.zeros_like(d)
    return Image.fromarray(np.clip(scaled, 0, 255).astype(np.uint8))


def auto_contrast(mask: np.ndarray, low_pct: float, high_pct: float) -> np.ndarray:
    """Deforum's autocontrast_grayscale: stretch the `low_pct`..`high_pct` percentiles to 0..255, clipped, then
    to 8 bits as PIL converts floats (truncated). Equal percentiles leave the mask as it is (Deforum divides
    by zero there)."""
    low, high = np.percentile(mask, low_pct), np.percentile(mask, high_pct)
    if high == low:
        return mask
    stretched = np.clip(255.0 * (mask.astype(np.float64) - low) / (high - low), 0, 255)
    return stretched.astype(np.uint8)


def comp_mask(image: torch.Tensor, source: torch.Tensor, depth: torch.Tensor | None, row: dict,
              settings: Hybrid) -> torch.Tensor | None:
    """The composite mask of a frame as (1, 1, H, W) in [0, 1] (1 keeps `image`), or None without a mask.
    `image` is the picture being composited, `source` the input frame, `depth` the depth map the mask kind
    needs (of the previous output for 'depth', of the input frame for 'video_depth')."""
    kind = settings.comp_mask
    if kind == "none":
        return None
    if kind in ("depth", "video_depth"):
        if depth is None:
            raise ValueError(f"hybrid comp_mask {kind} needs a depth map")
        mask = depth_u8(depth)
    elif kind == "blend":
        mask = Image.blend(grey_u8(image), grey_u8(source), float(row["hybrid_comp_mask_alpha"]))
    else:  # difference
        mask = ImageChops.difference(grey_u8(image), grey_u8(source))
    if settings.comp_mask_inverse:
        mask = ImageOps.invert(mask)
    if settings.comp_mask_equalize in ("before", "both"):
        mask = ImageOps.equalize(mask)
    mask = ImageEnhance.Contrast(mask).enhance(float(row["hybrid_comp_mask_contrast"]))
    if settings.comp_mask_auto_contrast:
        mask = Image.fromarray(auto_contrast(np.asarray(mask), float(row["hybrid_comp_mask_auto_contrast_low"]),
                                             float(row["hybrid_comp_mask_auto_contrast_high"])))
    if settings.comp_mask_equalize in ("after", "both"):
        mask = ImageOps.equalize(mask)
    values = torch.from_numpy(np.asarray(mask, dtype=np.float32) / 255.0)
    return values[None, None].to(image.device, image.dtype)


def masked_composite(image: torch.Tensor, source: torch.Tensor, mask: torch.Tensor | None,
                     alpha: float) -> torch.Tensor:
    """Deforum's composite: the input frame where the mask is black, `image` where white (PIL Image.composite),
    then blended into `image` by `alpha` (Image.blend; 0 keeps `image`, 1 gives the composite). Without a mask
    the composite is the input frame itself; alpha 0 returns `image` unchanged, bit for bit."""
    alpha = float(alpha)
    if alpha == 0.0:
        return image
    source = source.to(image.dtype)
    composed = source if mask is None else torch.lerp(source, image, mask)
    return torch.lerp(image, composed, alpha)
