"""Deforum's A1111-side schedules: clip skip, variation seeds, the img2img noise multiplier and DDIM eta, each read
only when its enable_* switch is on (Deforum's render loop reads them so), plus blank-frame rerolls.

A file older than a switch rendered without it: the noise multiplier (on by default since mid-2023) counts only when
the file has `enable_noise_multiplier_scheduling`. Late-2022 files keep A1111's variation seed behind
`seed_enable_extras` (subseed, subseed_strength).
"""
from __future__ import annotations

import re

from anim.importers.common import flag, number, whole
from anim.importers.reader import Reader

SWITCHED = (  # (switch, schedule, anim key, anim's default: a schedule that is only that is left out)
    ("enable_clipskip_scheduling", "clipskip_schedule", ("clip_skip",), 1.0),
    ("enable_subseed_scheduling", "subseed_schedule", ("subseed",), -1.0),
    ("enable_subseed_scheduling", "subseed_strength_schedule", ("subseed_strength",), 0.0),
    ("enable_noise_multiplier_scheduling", "noise_multiplier_schedule", ("noise_multiplier",), 1.0),
    ("enable_ddim_eta_scheduling", "ddim_eta_schedule", ("ddim_eta",), 0.0),
    ("enable_ancestral_eta_scheduling", "ancestral_eta_schedule", ("ancestral_eta",), 1.0),
)
CONSTANT = re.compile(r"^0:\(([-+0-9.eE]+)\)$")


def constant(spec) -> float | None:
    """The value of a schedule that is one keyframe at 0 with a number (None otherwise)."""
    if isinstance(spec, (int, float)):
        return float(spec)
    match = CONSTANT.match("".join(str(spec).split()))
    return float(match.group(1)) if match else None


def import_a1111(r: Reader) -> None:
    """The switched schedules, the old variation seed and DDIM eta, blank-frame rerolls (see the module)."""
    for switch, key, path, default in SWITCHED:
        on = flag(r.get(switch)) and (switch != "enable_noise_multiplier_scheduling" or switch in r.settings)
        spec = r.schedule(key) if on else None
        if on and constant(spec) != default:
            r.put(path, spec, key)
        r.take(key)
    _old_variation_seed(r)
    eta = number(r.raw("ddim_eta"))
    if eta and not flag(r.get("enable_ddim_eta_scheduling")):
        r.put(("ddim_eta",), eta, "ddim_eta")
    r.take("ddim_eta")
    mode = str(r.get("reroll_blank_frames") or "ignore").strip().lower()
    if mode in ("reroll", "interrupt"):
        r.put(("reroll_blank_frames",), mode, "reroll_blank_frames")
        r.put(("reroll_patience",), max(1, whole(r.get("reroll_patience")) or 10), "reroll_patience")
    r.take("reroll_blank_frames")


def _old_variation_seed(r: Reader) -> None:
    """Late-2022 files: subseed / subseed_strength behind seed_enable_extras (a subseed of -1 was random)."""
    if not flag(r.get("seed_enable_extras")) or flag(r.get("enable_subseed_scheduling")):
        return
    subseed, strength = whole(r.get("subseed")), number(r.get("subseed_strength")) or 0.0
    if not strength:
        r.take("subseed")
        r.take("subseed_strength")
        return
    if subseed is None or subseed < 0:
        r.note("subseed", r.get("subseed"), "a random variation seed is not carried: give subseed a number")
        r.take("subseed_strength")
        return
    r.put(("subseed",), subseed % 2**32, "subseed")
    r.put(("subseed_strength",), min(max(strength, 0.0), 1.0), "subseed_strength")
