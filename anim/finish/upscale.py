"""Upscaling frames: Lanczos (Pillow, no weights) or an ESRGAN-family model file read by spandrel, run in tiles.

A model file is read as tensors only (.safetensors; a pickle only with allow_pickle, weights-only); spandrel detects
the architecture and scale from the weights. A model of a larger scale than asked (a 4x model for factor 2) is run
and its output resized down with Lanczos; a smaller one is an error.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from anim.errors import ModelError

KEY = "output.upscale.model"
WHAT = "an ESRGAN-family upscaler (.safetensors, or .pth with allow_pickle)"
TILE_PAD_PX = 16  # input pixels of context around each tile, cut from its output (hides the seams)


def lanczos(image_u8: np.ndarray, factor: int) -> np.ndarray:
    """(H, W, 3) uint8 resized to factor x its sides with Lanczos."""
    height, width = image_u8.shape[:2]
    return resize(image_u8, width * factor, height * factor)


def resize(image_u8: np.ndarray, width: int, height: int) -> np.ndarray:
    """(H, W, 3) uint8 resized to width x height with Lanczos (unchanged when it already is)."""
    if image_u8.shape[:2] == (height, width):
        return image_u8
    return np.asarray(Image.fromarray(image_u8).resize((width, height), Image.Resampling.LANCZOS))


def tile_spans(size_px: int, tile_px: int) -> list[tuple[int, int]]:
    """[start, stop) spans of at most `tile_px` covering 0..size_px (one span when tile_px is 0 or covers it)."""
    if tile_px <= 0 or tile_px >= size_px:
        return [(0, size_px)]
    return [(start, min(start + tile_px, size_px)) for start in range(0, size_px, tile_px)]


def run_tiled(model: Callable, image, scale: int, tile_px: int, pad_px: int = TILE_PAD_PX):
    """`model` ((1, C, h, w) -> (1, C, h*scale, w*scale)) over `image` tile by tile, each with `pad_px` of context
    that is cut from its output, so the memory is bounded by the tile and the result has no seams."""
    import torch

    _, channels, height, width = image.shape
    out = torch.empty((1, channels, height * scale, width * scale), dtype=image.dtype, device=image.device)
    for y0, y1 in tile_spans(height, tile_px):
        for x0, x1 in tile_spans(width, tile_px):
            py0, py1 = max(0, y0 - pad_px), min(height, y1 + pad_px)
            px0, px1 = max(0, x0 - pad_px), min(width, x1 + pad_px)
            piece = model(image[:, :, py0:py1, px0:px1])
            top, left = (y0 - py0) * scale, (x0 - px0) * scale
            out[:, :, y0 * scale:y1 * scale, x0 * scale:x1 * scale] = \
                piece[:, :, top:top + (y1 - y0) * scale, left:left + (x1 - x0) * scale]
    return out


def load_spandrel(path: Path, *, allow_pickle: bool, device, factor: int):
    """The upscaler in a weights file as a spandrel ImageModelDescriptor on `device`; ModelError when spandrel
    does not know it, it is no image-to-image upscaler, or its scale is below `factor`."""
    import spandrel

    from anim.finish.weights import read_weights

    raw = read_weights(KEY, path, allow_pickle, WHAT)
    try:
        model = spandrel.ModelLoader(device=device).load_from_state_dict(spandrel.canonicalize_state_dict(raw))
    except (spandrel.UnsupportedModelError, KeyError, ValueError, RuntimeError) as exc:
        raise ModelError(f"{KEY}: {path}: spandrel does not recognise this model ({type(exc).__name__}); "
                         f"expected {WHAT}") from None
    if not isinstance(model, spandrel.ImageModelDescriptor) or model.input_channels != 3 or model.scale < 2:
        raise ModelError(f"{KEY}: {path} is a {model.architecture.name} model of scale {model.scale}, not an RGB "
                         f"upscaler; expected {WHAT}")
    if model.scale < factor:
        raise ModelError(f"{KEY}: {path} upscales {model.scale}x, less than output.upscale.factor {factor}; use "
                         f"factor {model.scale} or a {factor}x model")
    return model.eval()


def model_upscaler(path: Path, *, factor: int, tile_px: int, allow_pickle: bool, device) -> Callable:
    """(H, W, 3) uint8 -> (H*factor, W*factor, 3) uint8 through the model file, in tiles of `tile_px`."""
    import torch
    from spandrel import ModelTiling

    from anim.media.tensors import from_uint8_hwc, to_uint8_hwc

    model = load_spandrel(path, allow_pickle=allow_pickle, device=device, factor=factor)
    tile_px = 0 if model.tiling == ModelTiling.INTERNAL else tile_px  # a model that must see the whole frame

    @torch.inference_mode()
    def upscale(image_u8: np.ndarray) -> np.ndarray:
        out = run_tiled(model, from_uint8_hwc(image_u8, device), model.scale, tile_px)
        height, width = image_u8.shape[:2]
        return resize(to_uint8_hwc(out), width * factor, height * factor)

    return upscale


def upscaler(spec, *, allow_pickle: bool, device: str) -> Callable:
    """The frame function of output.upscale: Lanczos, or the model file (loaded once, on the preset's device)."""
    if spec.model == "lanczos":
        return lambda image_u8: lanczos(image_u8, spec.factor)
    from anim.finish.weights import pick_device

    return model_upscaler(Path(spec.model), factor=spec.factor, tile_px=spec.tile, allow_pickle=allow_pickle,
                          device=pick_device(device))
