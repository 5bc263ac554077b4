"""Frame keys and keyframe text: Deforum's decoration rules, number test and error wording.

Shared by schedules and prompts so both read `max_f/2`, `"10"`, `(10)` and `10` the same way.
"""

from __future__ import annotations

import math
import numbers
import re
from dataclasses import dataclass

from anim.errors import ScheduleError
from anim.keyframes.expr import Expr, ExprError, compile_expr

# Deforum's own test for "this keyframe is a plain number" (applied after removing quotes/parens).
DEFORUM_NUMBER = re.compile(r"(?=.)([+-]?([0-9]*)(\.([0-9]+))?)")
KEY_NAMES = ("max_f",)
MAX_ABS_KEY = 10**9  # frames; a key past this is surely a typo and would overflow int64 maths
_QUOTES = "'\""
_SHOWN_CHARS = 120


def show(text: str, column: int | None = None) -> str:
    """Text for a one-line message: blanks for newlines/tabs (columns stay true), long text cut
    to a window around ``column``."""
    flat = re.sub(r"[\r\n\t]", " ", text)
    if len(flat) <= _SHOWN_CHARS:
        return f'"{flat}"'
    centre = (column or 1) - 1
    start = max(0, min(centre - _SHOWN_CHARS // 2, len(flat) - _SHOWN_CHARS))
    window = flat[start:start + _SHOWN_CHARS]
    return '"' + ("…" if start else "") + window + ("…" if start + _SHOWN_CHARS < len(flat) else "") + '"'


@dataclass(frozen=True)
class Where:
    """Where a piece of text came from, for messages: label (schedule name), the full text shown,
    and the 0-based offset of the piece inside that text."""

    label: str
    text: str
    offset: int = 0

    def error(self, reason: str, column_in_piece: int) -> ScheduleError:
        """ScheduleError 'label: reason at column N in "text"' with N counted in the full text."""
        column = self.offset + column_in_piece
        return ScheduleError(f"{self.label}: {reason} at column {column} in {show(self.text, column)}")

    def runtime(self, reason: str) -> ScheduleError:
        """ScheduleError for a problem found while evaluating (reason names the frame)."""
        return ScheduleError(f"{self.label}: {reason} in {show(self.text)}")


def sanitize(text: str) -> str:
    """Deforum's sanitize: drop every quote and parenthesis (no stripping afterwards)."""
    return re.sub(r"[()'\"]", "", text)


def deforum_number(raw: str) -> str | None:
    """The number text if ``raw`` (already stripped) is a plain Deforum number, else None.

    Deforum strips the value, removes quotes and parentheses, then matches its regex: so '(5)',
    '"5"', '-.5' are numbers, while '1.', '1e3' and '( 5 )' are expressions."""
    clean = sanitize(raw)
    return clean if DEFORUM_NUMBER.fullmatch(clean) else None


def undecorate(text: str, offset: int = 0) -> tuple[str, int]:
    """Strip surrounding blanks and quotes; return the rest and its new offset."""
    start, end = 0, len(text)
    while start < end and (text[start].isspace() or text[start] in _QUOTES):
        start += 1
    while end > start and (text[end - 1].isspace() or text[end - 1] in _QUOTES):
        end -= 1
    return text[start:end], offset + start


def compile_at(text: str, where: Where, allowed: tuple[str, ...], role: str) -> Expr:
    """compile_expr plus a name check, with errors located in the full text of ``where``."""
    try:
        expr = compile_expr(text)
        expr.check_names(allowed, role)
    except ExprError as err:
        raise where.error(err.reason, err.column) from None
    return expr


@dataclass(frozen=True)
class FrameKey:
    """A keyframe's frame: a literal int, or an expression over max_f resolved later."""

    frame: int | None
    expr: Expr | None
    where: Where

    def resolve(self, max_f: int) -> int:
        """The frame number, truncated toward zero like Deforum's int(numexpr(...))."""
        if self.expr is None:
            return self.frame
        value = self.expr.value_at(0.0, max_f)
        if not math.isfinite(value) or abs(value) > MAX_ABS_KEY:
            raise self.where.runtime(f"frame key {self.expr.text!r} gives {value!r} with max_f={max_f}")
        return int(value)


def _check_range(frame: int, where: Where) -> int:
    if abs(frame) > MAX_ABS_KEY:
        raise where.error(f"frame key {frame} is out of range (limit ±{MAX_ABS_KEY})", 1)
    return frame


def parse_key(key, where: Where) -> FrameKey:
    """Read a frame key: an int, a float (truncated), or text — a number or an expression of max_f."""
    if isinstance(key, bool) or not isinstance(key, (numbers.Real, str)):
        raise where.error(f"frame key must be a number or text, got {type(key).__name__} {key!r}", 1)
    if isinstance(key, numbers.Real):
        if not math.isfinite(float(key)):
            raise where.error(f"frame key {key!r} is not finite", 1)
        return FrameKey(_check_range(int(key), where), None, where)
    text, offset = undecorate(key, where.offset)
    located = Where(where.label, where.text, offset)
    if not text:
        raise located.error("missing frame number", 1)
    number = deforum_number(text)
    if number is not None:
        try:
            return FrameKey(_check_range(int(float(number)), located), None, located)
        except ValueError:
            raise located.error(f"bad frame number {text!r}", 1) from None
    return FrameKey(None, compile_at(text, located, KEY_NAMES, "a frame key"), located)


def resolve_key(key, max_f: int, *, name: str = "key") -> int:
    """A frame key (int, or text such as '10', '(10)', 'max_f/2') as an int frame for this max_f."""
    text = key if isinstance(key, str) else repr(key)
    return parse_key(key, Where(name, text)).resolve(max_f)
