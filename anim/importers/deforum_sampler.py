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
from anim.importers.schedule_text import join_keyframes
from anim.keyframes.schedule import keyframe_texts
from anim.keyframes.texts import undecorate_text

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
    full, suffix, schedule = with_scheduler(label, file_scheduler(r))
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


def file_scheduler(r) -> str:
    """A1111 >= 1.9's `scheduler` (the noise schedule, apart from the sampler label), lower case; '' when absent."""
    r.take("scheduler")
    return str(r.raw("scheduler") or "").strip().lower()


def with_scheduler(label: str, scheduler: str) -> tuple[str, str | None, str]:
    """(the label with the schedule `scheduler` names, e.g. "DPM++ 2M" + Karras = "DPM++ 2M Karras"; the schedule's
    label suffix, None when anim has no such schedule; the schedule). "Automatic" is the sampler's own default."""
    schedule = AUTOMATIC_SCHEDULE.get(label.lower(), "") if scheduler == "automatic" else scheduler
    suffix = SCHEDULER_SUFFIX.get(schedule)
    return (label if "karras" in label.lower() else label + (suffix or "")), suffix, schedule


def import_sampler_schedule(r) -> None:
    """enable_sampler_scheduling + sampler_schedule -> sampler_schedule with anim's names. Deforum hands each frame's
    label (casefolded) and the file's `scheduler` to A1111; a label anim lacks is noted and its keyframe left out
    (the sampler before it holds)."""
    if not flag(r.get("enable_sampler_scheduling")):
        r.take("sampler_schedule")
        return
    text = r.text_schedule("sampler_schedule")
    scheduler = file_scheduler(r)
    kept, missing, plain = [], [], []
    for key, value in keyframe_texts(text, "sampler_schedule"):
        label = undecorate_text(value)[0]
        full, _, _ = with_scheduler(label, scheduler)
        name = SAMPLER_BY_LABEL.get(full.lower()) or SAMPLER_BY_LABEL.get(label.lower())
        if name is None:
            missing.append(label)
            continue
        kept.append((key, f"({name})"))
        if full.lower() not in SAMPLER_BY_LABEL:
            plain.append(full)
    if missing:
        r.note("sampler_schedule", text, f"sampler(s) {', '.join(map(repr, missing))} not in anim: their keyframes "
                                         "are left out")
    if plain:
        r.note("sampler_schedule", text, f"{', '.join(map(repr, plain))} not in anim: the sampler's own schedule is "
                                         "used")
    if kept:
        r.put(("sampler_schedule",), join_keyframes(kept), "sampler_schedule")


def import_checkpoint_schedule(r) -> None:
    """enable_checkpoint_scheduling + checkpoint_schedule -> checkpoint_schedule: A1111 checkpoint names (a title's
    " [hash]" dropped) carried as written, with a note: anim needs each one's path (or a hub id)."""
    if not flag(r.get("enable_checkpoint_scheduling")):
        r.take("checkpoint_schedule")
        return
    text = r.text_schedule("checkpoint_schedule")
    pairs = [(key, undecorate_text(value)[0].split(" [", 1)[0].strip()) for key, value in
             keyframe_texts(text, "checkpoint_schedule")]
    r.put(("checkpoint_schedule",), join_keyframes([(key, f'("{name}")') for key, name in pairs]),
          "checkpoint_schedule")
    r.note("checkpoint_schedule", text, "A1111's checkpoint names: set each to its path (or a hub id); every model "
                                        "named is loaded and kept in memory, all SD1.5 or all SDXL")


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
