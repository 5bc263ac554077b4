"""Schedules: Deforum keyframe strings or mappings, resolved to one float per frame.

Deforum semantics (see DOMAIN.md): a numeric keyframe interpolates (linearly, or with the ease
given in mapping form) to the value at the next keyframe; an expression keyframe is evaluated at
every frame from its key until the next one. The value at a key whose value is an expression is
that expression at the key frame. Frames before the first key hold its value; after the last
numeric key the value holds. Unlike Deforum, the first key need not be 0 and keys past the last
frame still shape the curve, so a partial render agrees with the full one.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from anim.errors import ScheduleError
from anim.keyframes.expr import VARIABLES, Expr
from anim.keyframes.interp import EASE_CURVES, EASES, natural_cubic
from anim.keyframes.keys import (
    FrameKey,
    Where,
    compile_at,
    deforum_number,
    parse_key,
    show,
    undecorate,
)

MAX_SCHEDULE_CHARS = 2_000_000  # whole string; each expression inside is limited separately


@dataclass(frozen=True)
class Keyframe:
    """One key: its frame, a number or expression, and the ease of the segment it starts."""

    key: FrameKey
    number: float | None
    expr: Expr | None
    ease: str = "linear"


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule: ``name`` and ``text`` (as given) for messages, keyframes in given order."""

    name: str
    text: str
    keyframes: tuple[Keyframe, ...]

    @property
    def is_constant(self) -> bool:
        """True when every keyframe is the same plain number (the curve is flat for any length)."""
        numbers_ = {kf.number for kf in self.keyframes}
        return all(kf.expr is None for kf in self.keyframes) and len(numbers_) == 1

    def evaluate(self, max_frames: int, seed: int = 0) -> np.ndarray:
        """float64 values for frames 0..max_frames-1, with max_f = max_frames - 1 and s = seed."""
        if isinstance(max_frames, bool) or not isinstance(max_frames, numbers.Integral) or max_frames < 0:
            raise ScheduleError(f"{self.name}: max_frames must be a whole number >= 0, got {max_frames!r}")
        count, max_f = int(max_frames), int(max_frames) - 1
        keys, frames_of = _resolve_keys(self.keyframes, max_f)
        chosen = [frames_of[k] for k in keys]
        anchors = np.array([_anchor(kf, k, max_f, seed) for k, kf in zip(keys, chosen)])
        values = _interpolate(np.array(keys, dtype=np.float64), anchors, chosen, count)
        _fill_expressions(values, keys, chosen, max_f, seed)
        return self._checked(values)

    def _checked(self, values: np.ndarray) -> np.ndarray:
        """Raise naming the first frame whose value is inf or nan."""
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            frame = int(bad[0])
            raise ScheduleError(f"{self.name}: value is {float(values[frame])!r} (not finite) at frame {frame} "
                                f"in {show(self.text)}")
        return values


def _resolve_keys(keyframes, max_f: int) -> tuple[list[int], dict[int, Keyframe]]:
    """Sorted distinct frames and the keyframe at each; a later duplicate wins."""
    frames_of: dict[int, Keyframe] = {}
    for kf in keyframes:
        frames_of[kf.key.resolve(max_f)] = kf
    return sorted(frames_of), frames_of


def _anchor(kf: Keyframe, frame: int, max_f: int, seed: int) -> float:
    """A key's value at its own frame: the number, or the expression evaluated there."""
    if kf.expr is None:
        return kf.number
    return kf.expr.value_at(float(frame), max_f, seed)


def _interpolate(keys: np.ndarray, anchors: np.ndarray, chosen: list[Keyframe], count: int) -> np.ndarray:
    """Values of the numeric segments (eased toward the next anchor) for every frame, vectorised.

    Linear uses np.interp's form slope·(f - k) + a so results match Deforum's pandas bit for bit;
    expression segments get a placeholder here and are filled by _fill_expressions."""
    frames = np.arange(count, dtype=np.float64)
    last = len(keys) - 1
    seg = np.searchsorted(keys, frames, side="right") - 1
    here = np.clip(seg, 0, last)
    after = np.minimum(here + 1, last)
    inside = (seg >= 0) & (here < last)  # frames with a next key to move toward
    start, stop = anchors[here], anchors[after]
    offset = np.where(inside, frames - keys[here], 0.0)
    span = np.where(inside, keys[after] - keys[here], 1.0)
    eases = np.array([kf.ease for kf in chosen])[here]
    with np.errstate(all="ignore"):
        values = np.where(offset == 0.0, start, (stop - start) / span * offset + start)
        for ease, curve in EASE_CURVES.items():
            mask = inside & (eases == ease) & (ease != "linear")
            if mask.any():
                shaped = curve(offset[mask] / span[mask])
                values[mask] = np.where(shaped == 0.0, start[mask], start[mask] + (stop - start)[mask] * shaped)
        cubic = inside & (eases == "cubic")
        if cubic.any():
            values[cubic] = natural_cubic(keys, anchors, frames[cubic])
    return values


def _fill_expressions(values: np.ndarray, keys: list[int], chosen: list[Keyframe], max_f: int, seed: int) -> None:
    """Evaluate each expression keyframe over the frames of its own segment, in place."""
    count = len(values)
    for i, (key, kf) in enumerate(zip(keys, chosen)):
        if kf.expr is None:
            continue
        lo = max(key, 0)
        hi = min(keys[i + 1], count) if i + 1 < len(keys) else count
        if lo < hi:
            values[lo:hi] = kf.expr.evaluate(np.arange(lo, hi, dtype=np.float64), max_f, seed)


# -- parsing --------------------------------------------------------------------------------------

def _parse_value(raw: str, where: Where) -> tuple[float | None, Expr | None]:
    """A keyframe value from text: a Deforum number, else an expression of t, max_f, s."""
    stripped, offset = _strip_blanks(raw, where.offset)
    located = Where(where.label, where.text, offset)
    if not stripped:
        raise located.error("missing value", 1)
    number = deforum_number(stripped)
    if number is not None:
        try:
            return float(number), None
        except ValueError:
            raise located.error(f"bad number {stripped!r}", 1) from None
    text, offset = undecorate(stripped, offset)
    located = Where(where.label, where.text, offset)
    if not text:
        raise located.error("missing value", 1)
    return None, compile_at(text, located, VARIABLES, "a value")


def _strip_blanks(text: str, offset: int) -> tuple[str, int]:
    """Strip surrounding whitespace only (Deforum strips before its number test); track the offset."""
    start = len(text) - len(text.lstrip())
    return text.strip(), offset + start


def _top_level(text: str, start: int, end: int, sep: str, where: Where) -> list[tuple[int, int]]:
    """Spans of text[start:end] split at ``sep`` outside parentheses; unbalanced parens are errors."""
    spans, opened, begin = [], [], start
    for i in range(start, end):
        char = text[i]
        if char == "(":
            opened.append(i)
        elif char == ")":
            if not opened:
                raise Where(where.label, where.text).error("unmatched ')'", i + 1)
            opened.pop()
        elif char == sep and not opened:
            spans.append((begin, i))
            begin = i + 1
    if opened:
        raise Where(where.label, where.text).error("unclosed '('", opened[0] + 1)
    spans.append((begin, end))
    return spans


def _first_colon(text: str, start: int, end: int) -> int:
    """Index of the first ':' outside parentheses in text[start:end], or -1."""
    depth = 0
    for i in range(start, end):
        depth += text[i] == "("
        depth -= text[i] == ")"
        if text[i] == ":" and depth == 0:
            return i
    return -1


def _parse_string(text: str, name: str) -> tuple[Keyframe, ...]:
    """Deforum form 'FRAME:(VALUE), ...', split only at top-level commas and the first colon."""
    if len(text) > MAX_SCHEDULE_CHARS:
        raise ScheduleError(f"{name}: schedule text too long ({len(text)} characters, "
                            f"limit {MAX_SCHEDULE_CHARS})")
    base = Where(name, text)
    spans = [span for span in _top_level(text, 0, len(text), ",", base) if text[span[0]:span[1]].strip()]
    if not spans:
        raise ScheduleError(f'{name}: no keyframes in {show(text)} (expected "FRAME:(VALUE), ...")')
    keyframes = []
    literal: dict[int, int] = {}  # literal frame -> column of its first keyframe
    for start, end in spans:
        colon = _first_colon(text, start, end)
        if colon < 0:
            if len(spans) == 1:  # a lone value such as "1.02" means "0:(1.02)"
                number, expr = _parse_value(text[start:end], Where(name, text, start))
                keyframes.append(Keyframe(parse_key(0, base), number, expr))
                continue
            lead = start + len(text[start:end]) - len(text[start:end].lstrip())
            raise base.error('expected "FRAME:(VALUE)"', lead + 1)
        key = parse_key(text[start:colon], Where(name, text, start))
        if key.frame is not None:
            if key.frame in literal:
                raise base.error(f"frame {key.frame} has two keyframes (the first at column {literal[key.frame]}); "
                                 "keep one", start + 1 + len(text[start:colon]) - len(text[start:colon].lstrip()))
            literal[key.frame] = start + 1
        number, expr = _parse_value(text[colon + 1:end], Where(name, text, colon + 1))
        keyframes.append(Keyframe(key, number, expr))
    return tuple(keyframes)


def keyframe_texts(text: str, name: str = "schedule") -> list[tuple[str, str]]:
    """(key text, value text) of each keyframe of a Deforum string, split exactly as the parser splits it
    (top-level commas, each keyframe's first top-level colon); a lone value has the key ''. For tools that
    rewrite schedule text (anim.importers); ScheduleError on unbalanced parentheses."""
    return [("", text[start:end].strip()) if colon < 0 else (text[start:colon].strip(), text[colon + 1:end].strip())
            for start, colon, end in keyframe_spans(text, name)]


def keyframe_spans(text: str, name: str = "schedule") -> list[tuple[int, int, int]]:
    """(start, colon, end) of each non-blank keyframe of a Deforum string, split as keyframe_texts splits it: the
    key is text[start:colon], the value text[colon+1:end]; colon is -1 for a piece without one. Offsets let a
    caller name the column of a bad value (anim.keyframes.texts); ScheduleError on unbalanced parentheses."""
    return [(start, _first_colon(text, start, end), end)
            for start, end in _top_level(text, 0, len(text), ",", Where(name, text)) if text[start:end].strip()]


def _mapping_entry(raw_key, raw_value, name: str) -> Keyframe:
    """One mapping item: key -> number | expression text | {value: ..., ease: ...}."""
    key_text = raw_key if isinstance(raw_key, str) else repr(raw_key)
    key = parse_key(raw_key, Where(name, key_text))
    label = f"{name}[{key_text}]"
    ease = "linear"
    if isinstance(raw_value, Mapping):
        unknown = sorted(str(k) for k in raw_value if k not in ("value", "ease"))
        if unknown or "value" not in raw_value:
            raise ScheduleError(f"{label}: a keyframe mapping needs 'value' and may have 'ease'; "
                                f"got keys {sorted(map(str, raw_value))}")
        ease = raw_value.get("ease", "linear")
        if ease not in EASES:
            raise ScheduleError(f"{label}: unknown ease {ease!r}; valid: {', '.join(EASES)}")
        raw_value = raw_value["value"]
    number, expr = _plain_value(raw_value, label)
    if expr is not None and ease != "linear":
        raise ScheduleError(f"{label}: ease {ease!r} does not apply to an expression value "
                            f"(an expression is evaluated at every frame of its segment)")
    return Keyframe(key, number, expr, ease)


def _plain_value(raw_value, label: str) -> tuple[float | None, Expr | None]:
    """A mapping value: a finite number, or text read like a string-form value."""
    if isinstance(raw_value, bool) or not isinstance(raw_value, (numbers.Real, str)):
        raise ScheduleError(f"{label}: value must be a number or expression text, "
                            f"got {type(raw_value).__name__} {raw_value!r}")
    if isinstance(raw_value, str):
        return _parse_value(raw_value, Where(label, raw_value))
    if not math.isfinite(float(raw_value)):
        raise ScheduleError(f"{label}: value {raw_value!r} is not finite")
    return float(raw_value), None


def parse_schedule(spec, name: str) -> Schedule:
    """Parse a schedule: Deforum string, plain number, or mapping {frame: value | {value, ease}}.

    Syntax is checked now; frame keys that use max_f are resolved by Schedule.evaluate."""
    if isinstance(spec, Schedule):
        return spec
    if isinstance(spec, str):
        return Schedule(name, spec, _parse_string(spec, name))
    if isinstance(spec, Mapping):
        if not spec:
            raise ScheduleError(f"{name}: no keyframes in an empty mapping")
        text = repr(dict(spec))
        return Schedule(name, text, tuple(_mapping_entry(k, v, name) for k, v in spec.items()))
    if isinstance(spec, numbers.Real) and not isinstance(spec, bool):
        number, _ = _plain_value(spec, name)
        return Schedule(name, repr(spec), (Keyframe(parse_key(0, Where(name, "0")), number, None),))
    raise ScheduleError(f"{name}: expected a schedule string, a number or a mapping, "
                        f"got {type(spec).__name__} {spec!r}")
