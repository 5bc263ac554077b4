"""Text schedules: Deforum's string-valued schedules (sampler_schedule, checkpoint_schedule), one text per frame.

Deforum form `FRAME: ("TEXT"), FRAME: (TEXT), ...` (or a mapping frame -> text). A keyframe's text holds from its
frame until the next keyframe: there is nothing to interpolate. Keys are read like numeric schedule keys (a number,
or an expression of max_f such as `max_f/2`, truncated); the text is split exactly as numeric schedules are split
(top-level commas, each keyframe's first top-level colon), so a value may hold commas and colons inside its
parentheses (`0: ("C:\\models\\a.safetensors")`). The parentheses around the value and one pair of quotes inside
them are decoration; the text within is kept as written (Deforum deletes every quote and parenthesis, which would
mangle a file name such as `model (v2).safetensors`). Frames before the first keyframe take a default (the
preset's `sampler:` / `model:`); Deforum needs a keyframe at 0.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from anim.errors import ScheduleError
from anim.keyframes.keys import FrameKey, Where, parse_key, show
from anim.keyframes.schedule import MAX_SCHEDULE_CHARS, keyframe_spans

# Turns a keyframe's text into the value the render uses (e.g. an A1111 sampler label into anim's name), or raises
# ValueError with the reason; the parser adds the schedule's name and the column.
Canonical = Callable[[str], str]
_QUOTES = "'\""


@dataclass(frozen=True)
class TextKeyframe:
    """One key of a text schedule: its frame key and its text (after `canonical`)."""

    key: FrameKey
    text: str


@dataclass(frozen=True)
class TextSchedule:
    """A parsed text schedule: ``name`` and ``text`` (as given) for messages, keyframes in given order."""

    name: str
    text: str
    keyframes: tuple[TextKeyframe, ...]

    def evaluate(self, max_frames: int, default: str | None = None) -> tuple[str, ...]:
        """The text of frames 0..max_frames-1 (max_f = max_frames - 1): each key's text held until the next key;
        frames before the first key take `default` (the first key's text when None). A later key at the same frame
        wins, as in numeric schedules."""
        if isinstance(max_frames, bool) or not isinstance(max_frames, numbers.Integral) or max_frames < 0:
            raise ScheduleError(f"{self.name}: max_frames must be a whole number >= 0, got {max_frames!r}")
        by_frame = {kf.key.resolve(int(max_frames) - 1): kf.text for kf in self.keyframes}
        keys = sorted(by_frame)
        texts = [by_frame[k] for k in keys]
        index = np.searchsorted(np.array(keys), np.arange(int(max_frames)), side="right") - 1
        first = texts[0] if default is None else default
        return tuple(first if i < 0 else texts[i] for i in index)


def parse_text_schedule(spec, name: str, canonical: Canonical | None = None) -> TextSchedule:
    """Parse a text schedule: a Deforum string or a mapping {frame: text}. `canonical` checks and normalises each
    keyframe's text; its ValueError becomes a ScheduleError naming the schedule, the text and the column."""
    if isinstance(spec, TextSchedule):
        return spec
    if isinstance(spec, str):
        return TextSchedule(name, spec, _parse_string(spec, name, canonical))
    if isinstance(spec, Mapping):
        if not spec:
            raise ScheduleError(f"{name}: no keyframes in an empty mapping")
        return TextSchedule(name, repr(dict(spec)), tuple(_mapping_entry(k, v, name, canonical)
                                                          for k, v in spec.items()))
    raise ScheduleError(f"{name}: expected a schedule string such as '0: (\"Euler a\"), 30: (\"DPM++ 2M Karras\")' "
                        f"or a mapping frame -> text, got {type(spec).__name__} {spec!r}")


def undecorate_text(raw: str, offset: int = 0) -> tuple[str, int]:
    """A keyframe's value without blanks, one pair of enclosing parentheses and one pair of quotes inside them;
    returns the text and its offset."""
    text, offset = _strip(raw, offset)
    if text.startswith("(") and _closing(text) == len(text) - 1:
        text, offset = _strip(text[1:-1], offset + 1)
    if len(text) >= 2 and text[0] == text[-1] and text[0] in _QUOTES:
        text, offset = _strip(text[1:-1], offset + 1)
    return text, offset


def _strip(text: str, offset: int) -> tuple[str, int]:
    """Text without surrounding blanks, with the offset of what is left."""
    return text.strip(), offset + len(text) - len(text.lstrip())


def _closing(text: str) -> int:
    """Index of the parenthesis closing the one at text[0] (-1 when it is not closed)."""
    depth = 0
    for i, char in enumerate(text):
        depth += (char == "(") - (char == ")")
        if depth == 0:
            return i
    return -1


def _value(raw: str, where: Where, canonical: Canonical | None, frame: str | None = None) -> str:
    """A keyframe's text, undecorated and passed through `canonical`; errors located at the text's column, or at
    the error's own `column` (1-based in the text) with the keyframe's `frame` named when `canonical` gives one
    (mask expressions: anim.keyframes.mask_expr)."""
    text, offset = undecorate_text(raw, where.offset)
    located = Where(where.label, where.text, offset)
    if not text:
        raise located.error("missing text", 1)
    if canonical is None:
        return text
    try:
        return canonical(text)
    except ValueError as exc:
        column = getattr(exc, "column", None)
        if column is None:
            raise located.error(str(exc), 1) from None
        raise located.error(f"keyframe {frame if frame is not None else 0}: {exc}", column) from None


def _parse_string(text: str, name: str, canonical: Canonical | None) -> tuple[TextKeyframe, ...]:
    """Deforum form 'FRAME: ("TEXT"), ...'; a lone text without a key means '0: (TEXT)'."""
    if len(text) > MAX_SCHEDULE_CHARS:
        raise ScheduleError(f"{name}: schedule text too long ({len(text)} characters, limit {MAX_SCHEDULE_CHARS})")
    base = Where(name, text)
    spans = keyframe_spans(text, name)
    if not spans:
        raise ScheduleError(f'{name}: no keyframes in {show(text)} (expected \'FRAME: ("TEXT"), ...\')')
    keyframes, literal = [], {}  # literal frame -> column of its first keyframe
    for start, colon, end in spans:
        lead = start + len(text[start:end]) - len(text[start:end].lstrip())
        if colon < 0:
            if len(spans) > 1:
                raise base.error('expected FRAME: ("TEXT")', lead + 1)
            keyframes.append(TextKeyframe(parse_key(0, base), _value(text[start:end], Where(name, text, start),
                                                                       canonical)))
            continue
        key = _key(text, start, colon, name, single=len(spans) == 1)
        if key.frame is not None:
            if key.frame in literal:
                raise base.error(f"frame {key.frame} has two keyframes (the first at column {literal[key.frame]}); "
                                 "keep one", lead + 1)
            literal[key.frame] = lead + 1
        keyframes.append(TextKeyframe(key, _value(text[colon + 1:end], Where(name, text, colon + 1), canonical,
                                                  text[start:colon].strip())))
    return tuple(keyframes)


def _key(text: str, start: int, colon: int, name: str, single: bool) -> FrameKey:
    """The frame key text[start:colon]; for a lone piece, a hint that a text holding ':' needs a key."""
    try:
        return parse_key(text[start:colon], Where(name, text, start))
    except ScheduleError as exc:
        if not single:
            raise
        raise ScheduleError(f'{exc}; a text holding ":" needs its key, e.g. 0: ("{text.strip()}")') from None


def _mapping_entry(raw_key, raw_value, name: str, canonical: Canonical | None) -> TextKeyframe:
    """One mapping item: key -> text."""
    key_text = raw_key if isinstance(raw_key, str) else repr(raw_key)
    key = parse_key(raw_key, Where(name, key_text))
    label = f"{name}[{key_text}]"
    if not isinstance(raw_value, str):
        raise ScheduleError(f"{label}: expected text, got {type(raw_value).__name__} {raw_value!r}")
    return TextKeyframe(key, _value(raw_value, Where(label, raw_value), canonical, key_text))
