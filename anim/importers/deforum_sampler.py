"""Deforum's model, sampler and steps settings: the A1111 sampler label (a late-2022 list index in old files),
A1111 >= 1.9's separate `scheduler` (whose "Automatic" is each sampler's own default schedule), steps."""
from __future__ import annotations

from anim.importers.common import flag, path_value, whole
from anim.importers.deforum_tables import (
    AUTOMATIC_SCHEDULE,
    SAMPLER_BY_LABEL,
    SAMPLER_INDEX_2022,
    SCHEDULER_SUFFIX,
)

DEFAULT_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"


def import_model(r) -> None:
    """sd_model_name (the A1111 checkpoint's file name) -> model, with a note: anim needs its path."""
    model = path_value(r.get("sd_model_name"))
    r.take("sd_model_hash")
    if model:
        r.put(("model",), model, "sd_model_name")
        r.note("sd_model_name", model, "A1111's checkpoint file name: set model: to its path (or a hub id)")
    else:
        r.put(("model",), DEFAULT_MODEL, "sd_model_name")


def sampler_label(r) -> str:
    """The A1111 label of the file's sampler; an old integer index is read in the late-2022 list, noted
    unless 0 (only "Euler a" kept its place across A1111 versions)."""
    raw = r.get("sampler")
    label = str(raw).strip()
    if isinstance(raw, int) and not isinstance(raw, bool) or label.isdigit():
        index = int(label)
        label = SAMPLER_INDEX_2022[index] if 0 <= index < len(SAMPLER_INDEX_2022) else f"index {index}"
        if index:
            r.note("sampler", raw, f"an index into A1111's sampler list of its day, read as {label!r} (the list "
                                   "changed between versions: check it)")
    return label


def import_sampler(r) -> None:
    """sampler + scheduler -> anim's sampler name; what cannot be matched exactly is noted."""
    label = sampler_label(r)
    scheduler = str(r.raw("scheduler") or "").strip().lower()  # only files of A1111 >= 1.9 have it
    r.take("scheduler")
    if scheduler == "automatic":
        schedule = AUTOMATIC_SCHEDULE.get(label.lower(), "")
    else:
        schedule = scheduler
    suffix = SCHEDULER_SUFFIX.get(schedule)
    full = label if "karras" in label.lower() else label + (suffix or "")
    name = SAMPLER_BY_LABEL.get(full.lower())
    if name is None:
        name = SAMPLER_BY_LABEL.get(label.lower())
        if name is not None and full != label:
            r.note("scheduler", r.get("scheduler"), f"{full!r} is not in anim; {label!r} with its own schedule is used")
        elif suffix is None and schedule:
            r.note("scheduler", r.get("scheduler"), "this noise schedule is not available; the sampler's is used")
    if name is None:
        r.note("sampler", r.get("sampler"), "this sampler is not in anim; Euler a is used")
        name = "euler_a"
    r.put(("sampler",), name, "sampler")


def import_steps(r) -> None:
    """steps, or steps_schedule when enable_steps_scheduling is on; the old static `scale` is not read
    (cfg_scale_schedule drives every frame)."""
    if flag(r.get("enable_steps_scheduling")):
        r.take("steps")
        r.put(("steps",), r.schedule("steps_schedule"), "steps_schedule")
    else:
        r.take("steps_schedule")
        r.put(("steps",), max(1, whole(r.get("steps")) or 25), "steps")
    r.take("scale")
