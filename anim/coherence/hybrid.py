"""Step 3 for hybrid video (Deforum's hybrid_motion / hybrid_composite in 2D/3D mode): the camera-warped previous
output composited with and moved like the input video, in Deforum's order (render.py: anim_frame_warp, 'Before
Motion' composite, hybrid motion from input frame t-1 to t, 'Normal' composite; 'After Generation' blends the
input into the diffused output before its colour match), each composite through the comp mask when one is set
(anim.coherence.hybrid_mask). With cadence, in-betweens follow the video's motion (`follow_video`).

Functions of (image tensors, the frame's row, the preset's `hybrid` section); the motion maths is
anim.motion.hybrid. Input frames are (H, W, 3) uint8 RGB arrays or (1, 3, H, W) tensors in [0, 1]."""
from __future__ import annotations

import torch

from anim.coherence.hybrid_mask import comp_mask, masked_composite
from anim.media.tensors import from_uint8_hwc
from anim.motion.hybrid import estimate_hybrid_matrix, hybrid_flow, warp_by_hybrid_flow, warp_hybrid
from anim.preset.sections import Hybrid


def composite(image: torch.Tensor, source: torch.Tensor, row: dict, settings: Hybrid, depth_model=None,
              prev: torch.Tensor | None = None) -> torch.Tensor:
    """The input frame composited into `image`: through the comp mask (if any; a depth mask's map is estimated
    here, by `depth_model` from `prev` or the input frame, only when this composite runs), then blended by the
    frame's comp_alpha (0 keeps `image` bit for bit, 1 gives the composite)."""
    depth = comp_depth(settings, depth_model, prev, source, row)
    mask = comp_mask(image, source, depth, row, settings)
    return masked_composite(image, source, mask, row["hybrid_comp_alpha"])


def comp_depth(settings: Hybrid, depth_model, prev: torch.Tensor, source, row: dict) -> torch.Tensor | None:
    """The depth map a depth comp mask is made from: of the previous output ('depth', Deforum's depth of the last
    generation) or of the input frame ('video_depth'); None for other masks."""
    if settings.comp_mask == "depth":
        return depth_model.predict(prev, near=row["near"], far=row["far"])
    if settings.comp_mask == "video_depth":
        return depth_model.predict(_tensor_like(source, prev), near=row["near"], far=row["far"])
    return None


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


def hybrid_before_diffusion(warped: torch.Tensor, source, source_before, row: dict, settings: Hybrid,
                            depth_model=None, prev: torch.Tensor | None = None) -> torch.Tensor:
    """The init of a hybrid frame from the camera-warped previous output `warped`, input frame t `source` and
    the input frame of the previous key `source_before`: 'before_motion' composite, hybrid motion, 'normal'
    composite (Deforum's order; the colour/contrast/noise of step 3 follow). `depth_model` and the previous
    output `prev` serve a depth comp mask (see comp_depth)."""
    source_t = _tensor_like(source, warped)
    image = warped
    if settings.composite == "before_motion":
        image = composite(image, source_t, row, settings, depth_model, prev)
    if settings.motion != "none":
        reference = image if settings.use_prev_img else source_before
        image = hybrid_motion(image, reference, source_t, settings, float(row["hybrid_flow_factor"]))
    if settings.composite == "normal":
        image = composite(image, source_t, row, settings, depth_model, prev)
    return image


def hybrid_after_generation(image: torch.Tensor, source, row: dict, settings: Hybrid, depth_model=None,
                            prev: torch.Tensor | None = None) -> torch.Tensor:
    """Deforum's 'After Generation' composite: the input frame composited into the diffused output (frames after
    the first; before the output's colour match). Other composites return `image` unchanged."""
    if settings.composite != "after_generation" or source is None:
        return image
    return composite(image, _tensor_like(source, image), row, settings, depth_model, prev)


def follow_video(image: torch.Tensor, frame_from, frame_to, row: dict, settings: Hybrid) -> torch.Tensor:
    """A cadence in-between's key moved by the input video's motion from input frame `frame_from` (the key's) to
    `frame_to` (the in-between's), as Deforum moves its cadence frames; composites are not applied there."""
    if settings.motion == "none":
        return image
    return hybrid_motion(image, frame_from, _tensor_like(frame_to, image), settings,
                         float(row["hybrid_flow_factor"]))


def _tensor_like(frame, like: torch.Tensor) -> torch.Tensor:
    """An input frame as a (1, 3, H, W) tensor in [0, 1] on `like`'s device and dtype."""
    if isinstance(frame, torch.Tensor):
        return frame.to(like.device, like.dtype)
    return from_uint8_hwc(frame, like.device).to(like.dtype)
