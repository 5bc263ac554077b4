"""Sampler names (A1111 vocabulary) mapped to diffusers schedulers.

The k-diffusion family (Euler, Heun, LMS, DPM2, DPM++) uses A1111's default timestep schedule:
evenly spaced from the last training step to 0 ("linspace"); DDIM/PLMS/UniPC/LCM keep the model's
own spacing. Karras variants use Karras sigmas.
"""

from __future__ import annotations

import inspect
import json
from typing import NamedTuple

from anim.errors import ModelError


class Sampler(NamedTuple):
    """One table row: diffusers scheduler class name, constructor overrides, A1111 label."""

    scheduler: str
    kwargs: dict
    label: str


_K = {"timestep_spacing": "linspace"}  # A1111 / k-diffusion default schedule
_KARRAS = {"use_karras_sigmas": True}
_2M = {"algorithm_type": "dpmsolver++", "solver_order": 2}
_2M_SDE = {"algorithm_type": "sde-dpmsolver++", "solver_order": 2}

SAMPLERS: dict[str, Sampler] = {
    "euler": Sampler("EulerDiscreteScheduler", _K, "Euler"),
    "euler_a": Sampler("EulerAncestralDiscreteScheduler", _K, "Euler a"),
    "heun": Sampler("HeunDiscreteScheduler", _K, "Heun"),
    "lms": Sampler("LMSDiscreteScheduler", _K, "LMS"),
    "lms_karras": Sampler("LMSDiscreteScheduler", _KARRAS, "LMS Karras"),
    "dpm2": Sampler("KDPM2DiscreteScheduler", _K, "DPM2"),
    "dpm2_karras": Sampler("KDPM2DiscreteScheduler", _KARRAS, "DPM2 Karras"),
    "dpm2_a": Sampler("KDPM2AncestralDiscreteScheduler", _K, "DPM2 a"),
    "dpm2_a_karras": Sampler("KDPM2AncestralDiscreteScheduler", _KARRAS, "DPM2 a Karras"),
    "dpmpp_2m": Sampler("DPMSolverMultistepScheduler", {**_2M, **_K}, "DPM++ 2M"),
    "dpmpp_2m_karras": Sampler("DPMSolverMultistepScheduler", {**_2M, **_KARRAS}, "DPM++ 2M Karras"),
    "dpmpp_2m_sde": Sampler("DPMSolverMultistepScheduler", {**_2M_SDE, **_K}, "DPM++ 2M SDE"),
    "dpmpp_2m_sde_karras": Sampler("DPMSolverMultistepScheduler", {**_2M_SDE, **_KARRAS}, "DPM++ 2M SDE Karras"),
    "dpmpp_3m_sde": Sampler("DPMSolverMultistepScheduler", {**_2M_SDE, "solver_order": 3, **_K}, "DPM++ 3M SDE"),
    "dpmpp_sde": Sampler("DPMSolverSDEScheduler", _K, "DPM++ SDE"),
    "dpmpp_sde_karras": Sampler("DPMSolverSDEScheduler", _KARRAS, "DPM++ SDE Karras"),
    "ddim": Sampler("DDIMScheduler", {}, "DDIM"),
    "pndm": Sampler("PNDMScheduler", {"skip_prk_steps": True}, "PLMS"),
    "plms": Sampler("PNDMScheduler", {"skip_prk_steps": True}, "PLMS"),
    "unipc": Sampler("UniPCMultistepScheduler", {}, "UniPC"),
    "deis": Sampler("DEISMultistepScheduler", {}, "DEIS"),
    "lcm": Sampler("LCMScheduler", {}, "LCM"),
}

_CACHE: dict[tuple[str, str], object] = {}


def sampler_names() -> list[str]:
    """All valid sampler names, in table order."""
    return list(SAMPLERS)


def _row(name: str) -> Sampler:
    """The table row for `name`, or a ModelError listing the valid names."""
    row = SAMPLERS.get(str(name).lower())
    if row is None:
        raise ModelError(f"unknown sampler {name!r}; valid: {', '.join(SAMPLERS)}")
    return row


def a1111_label(name: str) -> str:
    """The sampler's name as A1111 writes it in PNG `parameters` (e.g. 'Euler a')."""
    return _row(name).label


def make_scheduler(name: str, scheduler_config: dict):
    """A diffusers scheduler for `name` built from the model's scheduler config; cached per (name, config)."""
    import diffusers

    row = _row(name)
    key = (str(name).lower(), json.dumps(scheduler_config, sort_keys=True, default=str))
    if key not in _CACHE:
        cls = getattr(diffusers, row.scheduler)
        accepted = inspect.signature(cls.__init__).parameters
        config = {k: v for k, v in scheduler_config.items() if k in accepted}  # no 'unexpected key' warnings
        _CACHE[key] = cls.from_config({**config, **row.kwargs})
    return _CACHE[key]


def seed_scheduler(scheduler, seed: int) -> None:
    """Seed schedulers that draw their own noise (DPM++ SDE's Brownian tree) so runs repeat exactly."""
    if hasattr(scheduler, "noise_sampler_seed"):
        scheduler.noise_sampler_seed = int(seed)
        scheduler.noise_sampler = None
