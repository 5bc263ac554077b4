"""Mask maths for Deforum's masks (A1111 inpainting semantics: white = the area that changes).

Reading: a mask file is its grey levels (alpha ignored, as Deforum's convert('RGB')), or the init image's alpha,
cover-resized like the init image; brightness then contrast as Deforum's prepare_mask (PIL ImageEnhance: blend with
black / with the mean grey). Composing: masks are binary (>= 128 is white) for the expression operators, as
Deforum's mode-'1' masks. Diffusing: A1111's mask blur (Gaussian, kernel 2*int(4*sigma+0.5)+1), the latent mask
(bicubic down to the latent grid, rounded), the `fill` init (masking.fill), the overlay mask clip(2*blurred).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageFilter, ImageOps, UnidentifiedImageError

from anim.coherence.filters import gaussian_blur
from anim.errors import InputError
from anim.media.images import MAX_IMAGE_PIXELS, cover_resize
from anim.media.tensors import to_uint8_hwc

# A1111 masking.fill: (blur radius, times composited) from wide to sharp
FILL_PASSES = ((256, 1), (64, 1), (16, 2), (4, 4), (2, 2), (0, 1))


def _open(path: str | Path, what: str) -> Image.Image:
    """The decoded image (EXIF orientation applied), or an InputError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what}: mask image not found: {path}")
    try:
        with Image.open(path) as image:
            if image.size[0] * image.size[1] > MAX_IMAGE_PIXELS:
                raise InputError(f"{what}: {path} is too large ({image.size[0]}x{image.size[1]} pixels)")
            return ImageOps.exif_transpose(image).copy()
    except InputError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise InputError(f"{what}: cannot read mask image {path} ({exc})") from None


def _fit_grey(grey: Image.Image, width: int, height: int) -> np.ndarray:
    """A mode-L image cover-resized and centre-cropped to width x height (as the init image), (H, W) uint8."""
    rgb = np.repeat(np.asarray(grey.convert("L"))[..., None], 3, axis=2)
    return np.ascontiguousarray(cover_resize(rgb, width, height)[..., 0])


def read_mask(path: str | Path, width: int, height: int, what: str) -> np.ndarray:
    """A mask image's grey levels at the render size, (H, W) uint8; alpha is ignored (Deforum reads RGB)."""
    return _fit_grey(_open(path, what).convert("RGB").convert("L"), width, height)


def read_alpha(path: str | Path, width: int, height: int, what: str) -> np.ndarray | None:
    """The image's alpha channel at the render size, (H, W) uint8, or None when it is blank (all 0 or all 255:
    Deforum then ignores alpha as a mask)."""
    alpha = _fit_grey(_open(path, what).convert("RGBA").getchannel("A"), width, height)
    return None if alpha.min() == alpha.max() and int(alpha.min()) in (0, 255) else alpha


def grey_of(image_u8: np.ndarray) -> np.ndarray:
    """(H, W) uint8 luminance of an (H, W, 3) uint8 RGB frame (PIL's convert('L'), as Deforum reads mask frames)."""
    return np.asarray(Image.fromarray(np.ascontiguousarray(image_u8)).convert("L"))


def adjust_mask(mask_u8: np.ndarray, brightness: float = 1.0, contrast: float = 1.0) -> np.ndarray:
    """Deforum's prepare_mask: brightness (blend with black), then contrast (blend with the mean grey), each
    skipped at 1; (H, W) uint8."""
    image = Image.fromarray(mask_u8, mode="L")
    if brightness != 1:
        image = ImageEnhance.Brightness(image).enhance(float(brightness))
    if contrast != 1:
        image = ImageEnhance.Contrast(image).enhance(float(contrast))
    return np.asarray(image)


def binary(levels: np.ndarray, threshold: float = 128) -> np.ndarray:
    """A mask's white area as booleans (>= threshold; 128 for 8-bit levels, 0.5 for probabilities)."""
    return np.asarray(levels) >= threshold


def as_tensor(mask: np.ndarray, invert: bool, device, dtype=torch.float32) -> torch.Tensor:
    """A boolean (H, W) mask as (1, 1, H, W) in {0, 1}, inverted when asked (A1111 inpainting_mask_invert)."""
    values = np.logical_not(mask) if invert else np.asarray(mask, dtype=bool)
    return torch.from_numpy(values.astype(np.float32))[None, None].to(device, dtype)


def blur_mask(mask: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """A1111's mask blur: a Gaussian of `sigma_px` with its kernel 2*int(4*sigma+0.5)+1 (reflect-101 borders)."""
    if sigma_px <= 0:
        return mask
    kernel = 2 * int(4 * float(sigma_px) + 0.5) + 1
    size = min(mask.shape[-2:])
    while kernel // 2 >= size:  # reflect padding needs a kernel radius under the image size
        kernel -= 2
    return gaussian_blur(mask.float(), kernel, float(sigma_px)).clamp(0.0, 1.0).to(mask.dtype)


def latent_mask(mask: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """A1111's latent mask: the (blurred) pixel mask as 8-bit levels, bicubic down to (height, width), rounded to
    {0, 1}; (1, 1, height, width) on the mask's device."""
    levels = (mask[0, 0].detach().float().cpu().numpy() * 255.0).round().clip(0, 255).astype(np.uint8)
    small = np.asarray(Image.fromarray(levels, mode="L").resize((int(width), int(height)), Image.Resampling.BICUBIC))
    return torch.from_numpy(np.around(small.astype(np.float32) / 255.0))[None, None].to(mask.device)


def overlay_mask(blurred: torch.Tensor) -> torch.Tensor:
    """A1111's mask_for_overlay: the blurred mask doubled and clipped, so the generated area reaches its edge."""
    return (blurred * 2.0).clamp(0.0, 1.0)


def overlay(generated: torch.Tensor, init: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The init pasted back outside the mask: exactly the init where the mask is 0."""
    weight = mask.to(generated.device, generated.dtype)
    return torch.where(weight > 0, generated * weight + init * (1.0 - weight), init)


def fill_masked(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """A1111's `fill`: inside the mask, the colours around it smeared in by ever sharper blurs of the unmasked
    image (premultiplied alpha); exactly `image` where the mask is 0. (1, 3, H, W) in [0, 1]."""
    rgb = to_uint8_hwc(image)
    levels = (mask[0, 0].detach().float().cpu().numpy() * 255.0).round().clip(0, 255).astype(np.uint8)
    keep = ImageOps.invert(Image.fromarray(levels, mode="L"))
    masked = Image.new("RGBa", keep.size)
    masked.paste(Image.fromarray(rgb).convert("RGBA").convert("RGBa"), mask=keep)
    out = Image.new("RGBA", keep.size)
    for radius, repeats in FILL_PASSES:
        blurred = masked.filter(ImageFilter.GaussianBlur(radius)).convert("RGBA") if radius else \
            masked.convert("RGBA")
        for _ in range(repeats):
            out.alpha_composite(blurred)
    filled = torch.from_numpy(np.asarray(out.convert("RGB")).astype(np.float32) / 255.0)
    filled = filled.permute(2, 0, 1)[None].to(image.device, image.dtype)
    return torch.where(mask.to(image.device) > 0, filled, image)


def masked_noise(image: torch.Tensor, noised: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """The noised image inside the noise mask, the image unchanged outside it."""
    if mask is None:
        return noised
    return torch.lerp(image, noised, mask.to(image.device, image.dtype))


def desaturate_outside(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """--preview's mask view: colour where the frame changes, grey where it is kept (grey twice is grey, so the
    camera preview that feeds each frame into the next stays steady)."""
    grey = (image * torch.tensor([0.299, 0.587, 0.114], device=image.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
    return torch.lerp(grey.expand_as(image), image, mask.to(image.device, image.dtype))
