"""The sampler vocabulary (A1111 names) and what each means in diffusers: a plain table, no torch.

The k-diffusion family (Euler, Heun, LMS, DPM2, DPM++) uses A1111's default timestep schedule:
evenly spaced from the last training step to 0 ("linspace"); DDIM/PLMS/UniPC/LCM keep the model's
own spacing. Karras variants use Karras sigmas. anim.diffusion.samplers builds the schedulers.
"""
from __future__ import annotations

import difflib
from typing import NamedTuple


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


def sampler_names() -> list[str]:
    """All valid sampler names, in table order."""
    return list(SAMPLERS)


def sampler_by_name(text: str) -> str:
    """anim's name of a sampler given by anim's name (`euler_a`) or A1111's label (`Euler a`), in any case (Deforum
    casefolds its sampler_schedule); ValueError naming the valid names otherwise."""
    wanted = text.strip().casefold()
    by_label = {row.label.casefold(): name for name, row in SAMPLERS.items() if name != "pndm"}  # PLMS -> plms
    found = wanted if wanted in SAMPLERS else by_label.get(wanted)
    if found is None:
        shown = {**{name: name for name in SAMPLERS}, **{row.label.casefold(): row.label for row in SAMPLERS.values()}}
        close = difflib.get_close_matches(wanted, list(shown), n=1)
        hint = f"did you mean '{shown[close[0]]}'? " if close else ""
        raise ValueError(f"unknown sampler '{text}'; {hint}valid: {', '.join(sampler_names())} "
                         "(or their A1111 labels, e.g. 'Euler a', 'DPM++ 2M Karras')")
    return found
