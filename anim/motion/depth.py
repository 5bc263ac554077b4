"""Depth for the 3D camera: `flat`, a built-in `tiny` DPT, or a transformers depth model, offline.

Convention. ``DepthModel.predict(image, near=, far=)`` returns (1, 1, H, W) float32 depth in
Deforum translation units (the units of anim.motion.camera3d), larger = farther, within
[near, far]. Depth models predict relative *inverse* depth (disparity: DPT/MiDaS, Depth Anything)
or metric depth (GLPN, ZoeDepth, Depth Pro, Depth Anything metric); either is turned into a
disparity, normalised per frame to [0, 1] (min -> 0, max -> 1), and mapped linearly in inverse
depth: ``1 / depth = lerp(1 / far, 1 / near, disparity)``, so the nearest pixel lands on ``near``
and the farthest on ``far`` -- the affine ambiguity of relative disparity is fixed by the two
planes, as Deforum's near/far settings do. A constant prediction gives a flat scene at ``near``.

Loading (flat, the built-in tiny DPT, local folders, the hub cache) lives with the other model loaders
in anim.models.depth (re-exported by anim.models). Preprocessing is the checkpoint's image processor (resize with keep_aspect_ratio /
ensure_multiple_of, bicubic, then mean/std) redone on the device, so frames do not leave it;
processors of another shape are called on the CPU instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from anim.motion.camera3d import DEFAULT_FAR, DEFAULT_NEAR

# ---- depth conventions (pure) -----------------------------------------------------------------


def normalise_disparity(disparity: torch.Tensor) -> torch.Tensor | None:
    """Per-image min/max normalisation of (N, 1, H, W) disparity to [0, 1]; None when constant."""
    flat = disparity.reshape(disparity.shape[0], -1)
    low = flat.min(dim=1).values.view(-1, 1, 1, 1)
    high = flat.max(dim=1).values.view(-1, 1, 1, 1)
    span = high - low
    if bool((span <= 1e-6 * high.abs().clamp_min(1e-30)).any()):
        return None
    return (disparity - low) / span


def disparity_to_depth(disparity01: torch.Tensor, near: float, far: float) -> torch.Tensor:
    """Depth in [near, far] from normalised disparity (1 = nearest), linear in inverse depth."""
    if not 0.0 < near < far:
        raise ValueError(f"need 0 < near < far, got near={near}, far={far}")
    inverse = (1.0 / far) + disparity01 * (1.0 / near - 1.0 / far)
    return 1.0 / inverse


def flat_depth(height: int, width: int, near: float, device, batch: int = 1) -> torch.Tensor:
    """A flat scene at ``near``: (N, 1, H, W) float32."""
    return torch.full((batch, 1, height, width), float(near), dtype=torch.float32, device=device)


def processor_input_size(height: int, width: int, target_h: int, target_w: int, keep_aspect_ratio: bool,
                         multiple: int) -> tuple[int, int]:
    """The (h, w) a DPT-style processor resizes an image to: target size, or (keep_aspect_ratio)
    one scale for both sides, whichever of the two scales is closer to 1; sides rounded to a
    multiple of ``multiple``."""
    scale_h, scale_w = target_h / height, target_w / width
    if keep_aspect_ratio:
        scale_h = scale_w = scale_w if abs(1 - scale_w) < abs(1 - scale_h) else scale_h
    multiple = max(1, int(multiple or 1))

    def constrain(value: float) -> int:
        return max(multiple, int(round(value / multiple)) * multiple)

    return constrain(height * scale_h), constrain(width * scale_w)


# ---- the model ----------------------------------------------------------------------------------


@dataclass
class DepthModel:
    """A loaded depth estimator (or `flat`); ``predict`` gives depth by the module's convention."""

    name: str
    model: Any = None
    processor: Any = None
    device: torch.device = torch.device("cpu")
    dtype: torch.dtype = torch.float32
    metric: bool = False  # the network predicts depth (larger = farther) rather than disparity

    def predict(self, image: torch.Tensor, *, near: float = DEFAULT_NEAR, far: float = DEFAULT_FAR) -> torch.Tensor:
        """(1, 3, H, W) float image in [0, 1] -> (1, 1, H, W) float32 depth in [near, far] on its device."""
        if image.dim() != 4 or image.shape[1] != 3:
            raise ValueError(f"image must be (N, 3, H, W), got {tuple(image.shape)}")
        batch, _, height, width = image.shape
        if self.model is None:
            disparity01 = None
        else:
            raw = self._raw(image)  # (N, 1, H, W) float32
            disparity = 1.0 / raw.clamp_min(1e-6) if self.metric else raw
            disparity01 = normalise_disparity(disparity)
        if disparity01 is None:
            return flat_depth(height, width, near, image.device, batch)
        return disparity_to_depth(disparity01, near, far).to(device=image.device, dtype=torch.float32)

    def _raw(self, image: torch.Tensor) -> torch.Tensor:
        """The network's prediction resized (bilinear) to the image size, float32 (N, 1, H, W)."""
        height, width = image.shape[-2:]
        pixel_values = self._preprocess(image)
        with torch.no_grad():
            out = self.model(pixel_values=pixel_values).predicted_depth
        if out.dim() == 3:
            out = out.unsqueeze(1)
        out = F.interpolate(out.to(torch.float32), size=(height, width), mode="bilinear", align_corners=False)
        return out.to(image.device)

    def _preprocess(self, image: torch.Tensor) -> torch.Tensor:
        """Pixel values for the network: on the device for DPT-style processors, else via the processor."""
        proc = self.processor
        size = getattr(proc, "size", None)
        target = (getattr(size, "height", None), getattr(size, "width", None)) if size is not None else (None, None)
        if isinstance(size, dict):
            target = (size.get("height"), size.get("width"))
        mean, std = getattr(proc, "image_mean", None), getattr(proc, "image_std", None)
        if None in target or mean is None or std is None:
            arrays = [np.round(img.detach().clamp(0, 1).permute(1, 2, 0).float().cpu().numpy() * 255).astype(np.uint8)
                      for img in image]
            values = proc(images=arrays, return_tensors="pt")["pixel_values"]
            return values.to(device=self.device, dtype=self.dtype)
        in_h, in_w = processor_input_size(image.shape[-2], image.shape[-1], int(target[0]), int(target[1]),
                                          bool(getattr(proc, "keep_aspect_ratio", False)),
                                          int(getattr(proc, "ensure_multiple_of", 1) or 1))
        x = image.to(device=self.device, dtype=torch.float32)
        if (in_h, in_w) != tuple(x.shape[-2:]):
            x = F.interpolate(x, size=(in_h, in_w), mode="bicubic", align_corners=False, antialias=True)
        x = x.clamp(0.0, 1.0)
        if getattr(proc, "do_normalize", True):
            m = torch.tensor(mean, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
            s = torch.tensor(std, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
            x = (x - m) / s
        return x.to(self.dtype)


# ---- saving -------------------------------------------------------------------------------------


def depth_to_png_levels(depth, bits: int = 16) -> np.ndarray:
    """(H, W) uint16/uint8 image of normalised inverse depth: white = nearest, black = farthest
    (the look of MiDaS / ControlNet depth maps); a flat depth is all black."""
    if bits not in (8, 16):
        raise ValueError(f"bits must be 8 or 16, got {bits}")
    if isinstance(depth, torch.Tensor):
        depth = depth.detach().to("cpu", torch.float64).numpy()
    d = np.asarray(depth, np.float64)
    if d.ndim < 2 or int(np.prod(d.shape[:-2])) != 1:
        raise ValueError(f"depth must be (H, W) or (1, 1, H, W), got {np.shape(depth)}")
    d = d.reshape(d.shape[-2:])
    inverse = 1.0 / np.maximum(d, 1e-12)
    low, high = inverse.min(), inverse.max()
    unit = (inverse - low) / (high - low) if high - low > 1e-12 * high else np.zeros_like(inverse)
    top = 65535 if bits == 16 else 255
    return np.round(unit * top).astype(np.uint16 if bits == 16 else np.uint8)


def save_depth_png(depth, path, *, bits: int = 16) -> Path:
    """Write ``depth`` (tensor (1, 1, H, W) / (H, W) or array) as a grayscale PNG (16-bit by default)
    by :func:`depth_to_png_levels`, atomically. Returns the path."""
    import cv2

    from anim.media.files import atomic_write_bytes

    ok, encoded = cv2.imencode(".png", depth_to_png_levels(depth, bits))
    if not ok:
        raise ValueError(f"could not encode the depth map for {path}")
    atomic_write_bytes(Path(path), encoded.tobytes())
    return Path(path)
