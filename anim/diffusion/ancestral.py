"""A1111's "Eta for ancestral samplers" on diffusers' Euler a: how much fresh noise each step adds.

k-diffusion's ancestral step goes down to sigma_down and adds noise of sigma_up, with sigma_up = min(sigma_to,
eta * sqrt(sigma_to^2 (sigma_from^2 - sigma_to^2) / sigma_from^2)) and sigma_down = sqrt(sigma_to^2 - sigma_up^2);
diffusers' EulerAncestralDiscreteScheduler is the eta = 1 case. Its own step still runs (same noise draw from the
call's generator); the wrapper reads the step's noise back out of its result and recombines with eta's sigmas.
eta 0 is plain Euler; eta 1 installs nothing (bit-identical).
"""
from __future__ import annotations

import math
from contextlib import nullcontext

from anim.diffusion.samplers import patched
from anim.errors import ModelError

UNSUPPORTED = ("KDPM2AncestralDiscreteScheduler", "DPMSolverSDEScheduler")  # ancestral, but not wrapped here


def ancestral_sigmas(sigma_from: float, sigma_to: float, eta: float) -> tuple[float, float]:
    """(sigma_down, sigma_up) of an ancestral step with `eta` (k-diffusion's get_ancestral_step)."""
    if sigma_to <= 0.0:
        return 0.0, 0.0
    up = min(sigma_to, eta * math.sqrt(sigma_to ** 2 * (sigma_from ** 2 - sigma_to ** 2) / sigma_from ** 2))
    return math.sqrt(max(sigma_to ** 2 - up ** 2, 0.0)), up


def ancestral_eta(scheduler, eta: float):
    """The context for one call: Euler a's steps with `eta`; nothing at eta 1 or for samplers without ancestral
    noise (A1111 ignores the setting there); a clear error for ancestral samplers this does not wrap."""
    name = type(scheduler).__name__
    sde = getattr(getattr(scheduler, "config", None), "algorithm_type", "").startswith("sde")
    if float(eta) == 1.0:
        return nullcontext()
    if name in UNSUPPORTED or sde:
        raise ModelError(f"ancestral_eta {eta}: only Euler a takes it here; this frame's sampler ({name}) would "
                         "ignore it, so set ancestral_eta: 1 or use euler_a")
    if name != "EulerAncestralDiscreteScheduler":
        return nullcontext()
    return patched(scheduler, "step", lambda original: _with_eta(scheduler, original, float(eta)))


def _with_eta(scheduler, original, eta: float):
    """Euler a's `step` recombined with eta's sigmas (module docstring)."""
    def step(model_output, timestep, sample, *args, **kwargs):
        index = scheduler.step_index if scheduler.step_index is not None else scheduler.index_for_timestep(timestep)
        sigma, sigma_to = float(scheduler.sigmas[index]), float(scheduler.sigmas[index + 1])
        result = original(model_output, timestep, sample, *args, **kwargs)
        prev, x0 = (result[0], result[1]) if isinstance(result, tuple) else (result.prev_sample,
                                                                               result.pred_original_sample)
        down_1, up_1 = ancestral_sigmas(sigma, sigma_to, 1.0)
        if up_1 <= 0.0:
            return result
        sample32 = sample.float()
        towards = (sample32 - x0) / sigma  # the ODE derivative
        noise = (prev.float() - sample32 - towards * (down_1 - sigma)) / up_1
        down, up = ancestral_sigmas(sigma, sigma_to, eta)
        new = (sample32 + towards * (down - sigma) + noise * up).to(prev.dtype)
        if isinstance(result, tuple):
            return (new, *result[1:])
        result.prev_sample = new
        return result

    return step
