"""Deforum schedule strings as the importer rewrites them: repeated keyframes (Deforum keeps the last),
values mapped through a formula (denoise = 1 - strength). The text is split like anim's parser does:
at top-level commas and each keyframe's first colon."""
from __future__ import annotations

import re
from typing import Any, Callable

from anim.importers.common import number

_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def split_keyframes(text: str) -> list[tuple[str, str]]:
    """[(key text, value text)] of a schedule string; a piece without a colon is (“”, piece)."""
    pieces, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char in "([":
            depth += 1
        elif char in ")]":
            depth = max(0, depth - 1)
        elif char == "," and depth == 0:
            pieces.append(text[start:i])
            start = i + 1
    pieces.append(text[start:])
    out = []
    for piece in pieces:
        if not piece.strip():
            continue
        key, colon, value = piece.partition(":")
        out.append((key.strip(), value.strip()) if colon else ("", piece.strip()))
    return out


def undecorated(text: str) -> str:
    """Text without quotes and parentheses (Deforum's sanitising of keys and numeric values)."""
    return re.sub(r"[\"'()]", "", text).strip()


def literal_frame(key: str) -> int | None:
    """The frame of a literal key ("12", "(12)"), None for an expression key ("max_f-4")."""
    bare = undecorated(key)
    return int(float(bare)) if _NUMBER.match(bare) else None


def join_keyframes(pairs: list[tuple[str, str]]) -> str:
    """Back to 'KEY: VALUE, ...' text."""
    return ", ".join(f"{key}: {value}" if key else value for key, value in pairs)


def dedupe(text: str) -> tuple[str, list[int]]:
    """(schedule text where a repeated literal frame keeps only its last keyframe, as Deforum does; the frames
    that were repeated). Text without repeats comes back unchanged."""
    pairs = split_keyframes(text)
    last: dict[int, int] = {}
    for index, (key, _value) in enumerate(pairs):
        frame = literal_frame(key)
        if frame is not None:
            last[frame] = index
    kept = [pair for index, pair in enumerate(pairs)
            if literal_frame(pair[0]) is None or last[literal_frame(pair[0])] == index]
    if len(kept) == len(pairs):
        return text, []
    frames = [literal_frame(key) for key, _ in pairs]
    repeated = sorted(frame for frame in last if frames.count(frame) > 1)
    return join_keyframes(kept), repeated


def map_values(spec: Any, numeric: Callable[[float], float], template: str) -> Any:
    """A schedule with every value mapped: plain numbers by `numeric`, expressions by `template` (e.g.
    "1 - ({})"). A schedule that is a bare number maps to a number. Numeric keyframes stay numeric, so
    linear interpolation between them is kept (1 - lerp(a, b) = lerp(1 - a, 1 - b))."""
    value = number(spec) if not isinstance(spec, str) or _NUMBER.match(spec.strip()) else None
    if value is not None:
        return _tidy(numeric(value))
    if not isinstance(spec, str):
        return spec
    mapped = []
    for key, raw in split_keyframes(spec):
        bare = undecorated(raw)
        if _NUMBER.match(bare):
            mapped.append((key, f"({_tidy(numeric(float(bare)))!r})"))
        else:
            mapped.append((key, f"({template.format(raw)})"))
    return join_keyframes(mapped)


def _tidy(value: float) -> float:
    """Round away binary noise (1 - 0.65 = 0.35000000000000003 -> 0.35)."""
    return float(f"{value:.12g}")


def drop_past(text: str, last_frame: int) -> tuple[str, list[int]]:
    """(schedule text without literal keyframes after `last_frame`, the frames dropped): Deforum ignores them,
    so the value holds from the last keyframe inside the render (anim's own presets let them shape the curve)."""
    pairs = split_keyframes(text)
    kept = [(k, v) for k, v in pairs if literal_frame(k) is None or literal_frame(k) <= last_frame]
    dropped = [literal_frame(k) for k, _ in pairs if literal_frame(k) is not None and literal_frame(k) > last_frame]
    if not dropped or not kept:
        return text, []
    return join_keyframes(kept), dropped
