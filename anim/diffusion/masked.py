"""Masked img2img with a normal (4-channel) UNet, as A1111 inpaints with one and Deforum's masks use it.

The call's scheduler is wrapped so its first `add_noise` (img2img's noising of the encoded init) first changes the
init latent inside the mask by the fill (A1111: `latent_noise` puts seeded noise there, `latent_nothing` zeros;
`fill` and `original` act on the image before encoding). After every step a step-end callback puts the init
latent back outside the mask at the next step's noise level (its own noise, as diffusers' inpainting pipeline
does for a 4-channel UNet), and after the last step the clean init latent: outside the mask the final latents
are the init latents exactly. Callbacks already in the call run first; their result is then masked.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch

from anim.diffusion.noise import seed_noise
from anim.diffusion.samplers import patched

LATENT_FILLS = ("latent_noise", "latent_nothing")


@dataclass
class MaskInput:
    """One call's mask: where the latents change (1, 1, h, w) in {0, 1} (1 = denoised), the fill, and the seed of
    `latent_noise`'s noise."""

    change: torch.Tensor
    fill: str = "original"
    seed: int = 0


def filled_latent(x0: torch.Tensor, change: torch.Tensor, fill: str, seed: int) -> torch.Tensor:
    """The init latent with A1111's latent fill inside the mask: seeded unit noise (latent_noise), zeros
    (latent_nothing), or unchanged (the image-space fills)."""
    if fill not in LATENT_FILLS:
        return x0
    keep = 1.0 - change
    if fill == "latent_nothing":
        return x0 * keep
    noise = seed_noise(seed, tuple(x0.shape[1:])).to(x0.device, x0.dtype)[None].expand_as(x0)
    return x0 * keep + noise * change


def keep_outside(latents: torch.Tensor, kept: torch.Tensor, change: torch.Tensor) -> torch.Tensor:
    """`latents` inside the mask, `kept` outside it (exactly, where the mask is 0)."""
    return torch.where(change > 0, latents * change + kept * (1.0 - change), kept)


def _steps_run(pipe, scheduler) -> torch.Tensor:
    """The timesteps this call runs (img2img runs the tail of the scheduler's timesteps)."""
    total = int(getattr(pipe, "_num_timesteps", 0) or len(scheduler.timesteps))
    return scheduler.timesteps[len(scheduler.timesteps) - total:]


@contextmanager
def masked(pipe, kwargs: dict, mask: MaskInput):
    """For one img2img call of `pipe` with `kwargs`: the latent fill and the per-step blend (see the module
    docstring). Yields a dict that holds the call's init latent `x0` and noise once the call has started."""
    scheduler = pipe.scheduler
    state: dict = {}
    before = kwargs.get("callback_on_step_end")

    def wrap(original):
        def add_noise(original_samples, noise, timesteps):
            if "x0" in state:
                return original(original_samples, noise, timesteps)
            change = mask.change.to(original_samples.device, original_samples.dtype)
            x0 = filled_latent(original_samples, change, mask.fill, mask.seed)
            state.update(x0=x0, noise=noise, change=change, add=original)
            return original(x0, noise, timesteps)
        return add_noise

    def callback(pipe_, index: int, timestep, tensors: dict) -> dict:
        out = dict(before(pipe_, index, timestep, tensors) or {}) if before is not None else {}
        latents = out.get("latents", tensors["latents"])
        if "x0" not in state:
            return out
        steps = _steps_run(pipe_, scheduler)
        x0, change = state["x0"].to(latents.dtype), state["change"].to(latents.dtype)
        if index + 1 >= len(steps):
            kept = x0
        else:
            kept = state["add"](state["x0"], state["noise"], steps[index + 1].reshape(1)).to(latents.dtype)
        out["latents"] = keep_outside(latents, kept, change)
        return out

    kwargs["callback_on_step_end"] = callback
    inputs = list(kwargs.get("callback_on_step_end_tensor_inputs") or [])
    kwargs["callback_on_step_end_tensor_inputs"] = inputs + (["latents"] if "latents" not in inputs else [])
    with patched(scheduler, "add_noise", wrap):
        yield state
