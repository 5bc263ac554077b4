"""Deforum schedule strings as the importer rewrites them: repeated keyframes (Deforum keeps the last),
keyframes past the end (Deforum ignores them), values mapped through a formula (denoise = 1 - strength).
The text is split, and keys and numbers are read, by anim's own schedule parser (anim.keyframes)."""
from __future__ import annotations

from typing import Any, Callable

from anim.errors import ScheduleError
from anim.importers.common import number
from anim.keyframes.keys import Where, deforum_number, parse_key
from anim.keyframes.schedule import keyframe_texts


def literal_frame(key: str) -> int | None:
    """The frame of a literal key ("12", "(12)"), None for an expression key ("max_f-4") or no key."""
    if not key:
        return None
    try:
        return parse_key(key, Where("key", key)).frame
    except ScheduleError:
        return None  # a bad key: the schedule's own parse reports it


def _keyed(text: str) -> list[tuple[str, str, int | None]]:
    """(key text, value text, literal frame or None) of each keyframe."""
    return [(key, value, literal_frame(key)) for key, value in keyframe_texts(text)]


def join_keyframes(pairs: list[tuple[str, str]]) -> str:
    """Back to 'KEY: VALUE, ...' text."""
    return ", ".join(f"{key}: {value}" if key else value for key, value in pairs)


def dedupe(text: str) -> tuple[str, list[int]]:
    """(schedule text where a repeated literal frame keeps only its last keyframe, as Deforum does; the frames
    that were repeated). Text without repeats comes back unchanged."""
    keyed = _keyed(text)
    last = {frame: index for index, (_, _, frame) in enumerate(keyed) if frame is not None}
    kept = [(key, value) for index, (key, value, frame) in enumerate(keyed) if frame is None or last[frame] == index]
    if len(kept) == len(keyed):
        return text, []
    frames = [frame for _, _, frame in keyed]
    repeated = sorted(frame for frame in last if frames.count(frame) > 1)
    return join_keyframes(kept), repeated


def map_values(spec: Any, numeric: Callable[[float], float], template: str) -> Any:
    """A schedule with every value mapped: plain numbers by `numeric`, expressions by `template` (e.g.
    "1 - ({})"). A schedule that is a bare number maps to a number. Numeric keyframes stay numeric, so
    linear interpolation between them is kept (1 - lerp(a, b) = lerp(1 - a, 1 - b))."""
    if not isinstance(spec, str) or deforum_number(spec.strip()) is not None:
        value = number(spec)
        return spec if value is None else _tidy(numeric(value))
    mapped = []
    for key, raw in keyframe_texts(spec):
        plain = deforum_number(raw)
        mapped.append((key, f"({_tidy(numeric(float(plain)))!r})" if plain is not None else
                       f"({template.format(raw)})"))
    return join_keyframes(mapped)


def _tidy(value: float) -> float:
    """Round away binary noise (1 - 0.65 = 0.35000000000000003 -> 0.35)."""
    return float(f"{value:.12g}")


def drop_past(text: str, last_frame: int) -> tuple[str, list[int]]:
    """(schedule text without literal keyframes after `last_frame`, the frames dropped): Deforum ignores them,
    so the value holds from the last keyframe inside the render (anim's own presets let them shape the curve)."""
    keyed = _keyed(text)
    kept = [(key, value) for key, value, frame in keyed if frame is None or frame <= last_frame]
    dropped = [frame for _, _, frame in keyed if frame is not None and frame > last_frame]
    if not dropped or not kept:
        return text, []
    return join_keyframes(kept), dropped
