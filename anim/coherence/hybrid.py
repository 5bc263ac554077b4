"""Step 3 for hybrid video (Deforum's hybrid_motion / hybrid_composite in 2D/3D mode): the camera-warped previous
output composited with and moved like the input video, in Deforum's order (render.py: anim_frame_warp, 'Before
Motion' composite, hybrid motion from input frame t-1 to t, 'Normal' composite; 'After Generation' blends the
input into the diffused output before its colour match). Comp masks are not supported.

Functions of (image tensors, the frame's row, the preset's `hybrid` section); the motion maths is
anim.motion.hybrid. Input frames are (H, W, 3) uint8 RGB arrays or (1, 3, H, W) tensors in [0, 1]."""
from __future__ import annotations

import torch

from anim.media.tensors import from_uint8_hwc
from anim.motion.hybrid import estimate_hybrid_matrix, hybrid_flow, warp_by_hybrid_flow, warp_hybrid
from anim.preset.sections import Hybrid


def composite(image: torch.Tensor, source: torch.Tensor, alpha: float) -> torch.Tensor:
    """The input frame blended into `image` by `alpha` (PIL Image.blend, as Deforum: 0 keeps `image`, 1 gives
    `source`); alpha 0 returns `image` itself, so a composite that does nothing changes no bit."""
    alpha = float(alpha)
    if alpha == 0.0:
        return image
    return torch.lerp(image, source.to(image.dtype), alpha)


def hybrid_motion(image: torch.Tensor, reference, source, settings: Hybrid, flow_factor: float) -> torch.Tensor:
    """`image` moved by the motion from `reference` (input frame t-1, or the previous output with use_prev_img)
    to `source` (input frame t): a perspective/affine matrix (reflect-101 border) or the optical flow scaled by
    `flow_factor` (with Deforum's consistency weighting when asked)."""
    if settings.motion in ("perspective", "affine"):
        return warp_hybrid(image, estimate_hybrid_matrix(reference, source, settings.motion))
    if settings.motion == "optical_flow":
        flow = hybrid_flow(_tensor_like(reference, image), _tensor_like(source, image), settings.flow_method,
                           consistency=settings.flow_consistency, blur_sigma_px=settings.consistency_blur)
        return warp_by_hybrid_flow(image, flow, flow_factor)
    return image


def hybrid_before_diffusion(warped: torch.Tensor, source, source_before, row: dict, settings: Hybrid
                            ) -> torch.Tensor:
    """The init of a hybrid frame from the camera-warped previous output `warped`, input frame t `source` and
    input frame t-1 `source_before`: 'before_motion' composite, hybrid motion, 'normal' composite (Deforum's
    order; the colour/contrast/noise of step 3 follow)."""
    source_t = _tensor_like(source, warped)
    image = warped
    if settings.composite == "before_motion":
        image = composite(image, source_t, row["hybrid_comp_alpha"])
    if settings.motion != "none":
        reference = image if settings.use_prev_img else source_before
        image = hybrid_motion(image, reference, source_t, settings, float(row["hybrid_flow_factor"]))
    if settings.composite == "normal":
        image = composite(image, source_t, row["hybrid_comp_alpha"])
    return image


def hybrid_after_generation(image: torch.Tensor, source, row: dict, settings: Hybrid) -> torch.Tensor:
    """Deforum's 'After Generation' composite: the input frame blended into the diffused output (frames after
    the first; before the output's colour match). Other composites return `image` unchanged."""
    if settings.composite != "after_generation" or source is None:
        return image
    return composite(image, _tensor_like(source, image), row["hybrid_comp_alpha"])


def _tensor_like(frame, like: torch.Tensor) -> torch.Tensor:
    """An input frame as a (1, 3, H, W) tensor in [0, 1] on `like`'s device and dtype."""
    if isinstance(frame, torch.Tensor):
        return frame.to(like.device, like.dtype)
    return from_uint8_hwc(frame, like.device).to(like.dtype)
