"""Flow-guided latent fusion (Rerender-A-Video): during a window of denoising steps, the model's predicted
clean latent is pulled toward a guide latent (the previous output carried along the input video's optical flow)
where the flow can be trusted, so what the last frame settled on is kept instead of re-invented.

It works on any diffusers scheduler without knowing its algorithm: at each step the model's output is turned
into the clean latent it implies at the noise level the model saw, that latent is blended with the guide, and the
output the model would have had to give for the blended latent is handed to the scheduler's own `step`.
With weight 0 nothing is installed: frames are bit-identical to renders without fusion.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from anim.diffusion.samplers import patched


@dataclass
class FusionInput:
    """One diffusion call's fusion: the guide's clean latent (1, 4, h, w), where to trust it (1, 1, h, w) in
    [0, 1], the blend weight, and the step window as fractions of the steps run (ControlNet's convention)."""

    guide: torch.Tensor
    mask: torch.Tensor
    weight: float
    start: float = 0.0
    end: float = 1.0


def in_window(step: int, total: int, start: float, end: float) -> bool:
    """Whether step `step` of `total` lies in [start, end] (diffusers' control_guidance_start/end rule)."""
    return not (step / total < start or (step + 1) / total > end)


def vp_levels(alphas_cumprod: torch.Tensor, timestep, c_in: float) -> tuple[float, float]:
    """(alpha, sigma) with c_in * sample = alpha * x0 + sigma * noise at this step.

    `c_in` is the factor the scheduler scaled the model input by: 1 for variance-preserving schedulers (DDIM,
    DPM++ 2M, UniPC: the level comes from the timestep), 1/sqrt(s^2 + 1) for the sigma family (Euler, Heun,
    LMS, DPM2: sample = x0 + s * noise)."""
    if c_in < 1.0 - 1e-7:
        sigma = math.sqrt(max(1.0 / (c_in * c_in) - 1.0, 0.0))
        return c_in, sigma * c_in
    index = int(round(float(timestep)))
    index = min(max(index, 0), len(alphas_cumprod) - 1)
    alpha_bar = float(alphas_cumprod[index])
    return math.sqrt(alpha_bar), math.sqrt(1.0 - alpha_bar)


def fuse_output(output: torch.Tensor, sample: torch.Tensor, *, c_in: float, alpha: float, sigma: float,
                prediction: str, guide: torch.Tensor, amount: torch.Tensor) -> torch.Tensor:
    """The model output that implies clean latent lerp(x0, guide, amount), where x0 is what `output` implies
    for `sample` (epsilon or v prediction)."""
    if sigma <= 1e-8:
        return output
    scaled = sample.double() * c_in
    out = output.double()
    if prediction == "v_prediction":
        x0 = alpha * scaled - sigma * out
    else:
        x0 = (scaled - sigma * out) / alpha
    fused = x0 + amount.double() * (guide.double() - x0)
    new = (alpha * scaled - fused) / sigma if prediction == "v_prediction" else (scaled - alpha * fused) / sigma
    return new.to(output.dtype)


def scale_factor(before: torch.Tensor, after: torch.Tensor) -> float | None:
    """The scalar a scheduler's scale_model_input multiplied by (None when the input is all zeros)."""
    norm = float(torch.linalg.vector_norm(before.double()))
    return float(torch.linalg.vector_norm(after.double())) / norm if norm > 0 else None


@contextmanager
def fused(scheduler, fusion: FusionInput, prediction: str = "epsilon"):
    """Fusion on one call's scheduler (a fresh instance per call): its `scale_model_input` and `step` are
    wrapped for the block, and put back after."""
    seen = {"c_in": 1.0, "steps": 0}
    amount = (float(fusion.weight) * fusion.mask).clamp(0.0, 1.0)

    def wrap_scale(scale):
        def scale_model_input(sample, *args, **kwargs):
            out = scale(sample, *args, **kwargs)
            factor = scale_factor(sample, out)
            if factor is not None:
                seen["c_in"] = factor
            return out
        return scale_model_input

    def wrap_step(step):
        def fused_step(model_output, timestep, sample, *args, **kwargs):
            index, seen["steps"] = seen["steps"], seen["steps"] + 1
            total = max(1, len(scheduler.timesteps) - int(getattr(scheduler, "begin_index", None) or 0))
            if in_window(index, total, fusion.start, fusion.end):
                alpha, sigma = vp_levels(scheduler.alphas_cumprod, timestep, seen["c_in"])
                model_output = fuse_output(model_output, sample, c_in=seen["c_in"], alpha=alpha, sigma=sigma,
                                           prediction=prediction, guide=fusion.guide.to(sample.device),
                                           amount=amount.to(sample.device))
            return step(model_output, timestep, sample, *args, **kwargs)
        return fused_step

    with patched(scheduler, "scale_model_input", wrap_scale), patched(scheduler, "step", wrap_step):
        yield scheduler


def latent_mask(mask: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """A pixel mask (1, 1, H, W) averaged down to the latent grid (1, 1, h, w)."""
    return torch.nn.functional.interpolate(mask.float(), size=(height, width), mode="area")
