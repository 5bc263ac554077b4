"""Steps 3 and 6 of the loop: make the init coherent (colour, contrast, sharpening, noise, flow) and
colour match the output again, as small functions of (image tensor, frame row, preset)."""
from __future__ import annotations

import numpy as np
import torch

from anim.coherence.color import match_histograms
from anim.coherence.filters import add_noise, apply_contrast, unsharp_mask
from anim.coherence.masks import masked_noise
from anim.motion.flow import consistency_mask, estimate_flow, warp_by_flow
from anim.preset import Preset


def follow_flow(prev: torch.Tensor, source_now: np.ndarray, source_before: np.ndarray,
                method: str = "dis") -> tuple[torch.Tensor, torch.Tensor]:
    """Video input: the previous output moved along the INPUT video's optical flow (from the input frame it was
    made from to the current one), and where forward and backward flow agree (1, 1, H, W) in {0, 1}: elsewhere
    the content was occluded or revealed, and the previous output says nothing about it."""
    forward = estimate_flow(source_now, source_before, method)  # now(x) ~ before(x + flow(x))
    backward = estimate_flow(source_before, source_now, method)
    mask = torch.from_numpy(consistency_mask(forward, backward)).to(prev.device, prev.dtype)[None, None]
    return warp_by_flow(prev, forward), mask


def flow_coherence(base: torch.Tensor, followed: torch.Tensor, mask: torch.Tensor, strength: float) -> torch.Tensor:
    """The init with the flow-carried previous output blended in by `strength` where the flow is trusted
    (elsewhere it keeps `base`, the input frame)."""
    return base + (strength * mask) * (followed - base)


def match_space(color_coherence: str) -> str:
    """The colour space a `color_coherence` setting matches in: video_input matches in LAB (Deforum's
    maintain_colors treats every mode but RGB/HSV as LAB)."""
    return "lab" if color_coherence == "video_input" else color_coherence


def video_reference_frame(frame: int, keys: list[int], every_n: int) -> int:
    """color_coherence video_input: the input frame whose colours `frame` matches. Deforum takes the input
    frame afresh at each key frame that is a multiple of `every_n`, so it is the last such key at or before
    `frame` (frame 0 is always one)."""
    return max(k for k in keys if k <= frame and k % every_n == 0)


def prepare_init(image: torch.Tensor, reference, row: dict, preset: Preset,
                 noise_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Step 3: colour match to the reference, contrast, unsharp mask, seeded noise (Deforum's order); with a
    `noise_mask` (1, 1, H, W) the noise goes only inside it (Deforum's noise mask)."""
    if reference is not None and preset.color_coherence != "none":
        image = match_histograms(image, reference, match_space(preset.color_coherence))
    if row["contrast"] != 1.0:
        image = apply_contrast(image, row["contrast"])
    if row["unsharp_amount"] != 0.0:
        image = unsharp_mask(image, row["unsharp_amount"], kernel_size=int(row["unsharp_kernel"]),
                             sigma=row["unsharp_sigma"], threshold=row["unsharp_threshold"])
    if row["noise"] > 0.0:
        noised = add_noise(image, row["noise"], seed=int(row["seed"]), noise_type=preset.noise_type,
                           perlin_octaves=preset.perlin_octaves, perlin_persistence=preset.perlin_persistence)
        image = masked_noise(image, noised, noise_mask)
    return image


def finish(image: torch.Tensor, reference, preset: Preset) -> torch.Tensor:
    """Step 6: colour match the diffused output to the reference again."""
    if reference is not None and preset.color_coherence != "none":
        return match_histograms(image, reference, match_space(preset.color_coherence))
    return image
