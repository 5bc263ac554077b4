"""A1111 prompt attention syntax: ``(x)`` ×1.1, ``[x]`` ÷1.1, ``(x:1.3)``, escapes and BREAK.

Behaviour follows AUTOMATIC1111's parser as users know it: nesting multiplies, an unclosed
bracket weights the rest of the text, a closer with no opener is literal text, ``\\(`` etc. are
literal brackets and a lone backslash vanishes. Two deliberate differences: BREAK always keeps
weight -1 (A1111 lets brackets scale it) and empty segments are dropped before merging.
"""

from __future__ import annotations

import re

ROUND_MULTIPLIER = 1.1
SQUARE_MULTIPLIER = 1 / 1.1
BREAK = "BREAK"

_TOKEN = re.compile(
    r"\\[()\[\]\\]"                     # escaped bracket or backslash: literal
    r"|\\"                              # lone backslash: dropped
    r"|\(|\["                           # openers
    r"|:\s*(?P<weight>[+-]?[.\d]+)\s*\)"  # ':1.3)' closes a round bracket with an explicit weight
    r"|\)|\]"                           # closers
    r"|[^\\()\[\]:]+"                   # plain text
    r"|:"                               # a colon that is just text
)
_BREAK_SPLIT = re.compile(r"\s*\bBREAK\b\s*")


def _scale(segments: list[list], start: int, factor: float) -> None:
    """Multiply the weights of segments[start:] (BREAK markers keep -1)."""
    for segment in segments[start:]:
        if not segment[2]:
            segment[1] *= factor


def _add_text(segments: list[list], text: str) -> None:
    """Append plain text, turning each standalone BREAK into a marker segment."""
    for i, part in enumerate(_BREAK_SPLIT.split(text)):
        if i > 0:
            segments.append([BREAK, -1.0, True])
        segments.append([part, 1.0, False])


def _weight(text: str | None) -> float | None:
    """The explicit weight in ':1.3)', or None if it is not a number (then it is literal text)."""
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _merge(segments: list[list]) -> list[tuple[str, float]]:
    """Drop empty text, join neighbours of equal weight (never BREAK markers)."""
    merged: list[list] = []
    for text, weight, is_break in segments:
        if text == "":
            continue
        if merged and not is_break and not merged[-1][2] and merged[-1][1] == weight:
            merged[-1][0] += text
        else:
            merged.append([text, weight, is_break])
    return [(text, float(weight)) for text, weight, _ in merged] or [("", 1.0)]


def parse_weighted(text: str) -> list[tuple[str, float]]:
    """Split a prompt into (text, weight) segments with A1111's multipliers; BREAK -> ("BREAK", -1.0).

    >>> parse_weighted("a (b:1.3) [c]")
    [('a ', 1.0), ('b', 1.3), (' ', 1.0), ('c', 0.9090909090909091)]
    """
    segments: list[list] = []
    round_open: list[int] = []
    square_open: list[int] = []
    for match in _TOKEN.finditer(text):
        token = match.group(0)
        weight = _weight(match.group("weight"))
        if token.startswith("\\"):
            segments.append([token[1:], 1.0, False])
        elif token == "(":
            round_open.append(len(segments))
        elif token == "[":
            square_open.append(len(segments))
        elif weight is not None and round_open:
            _scale(segments, round_open.pop(), weight)
        elif token == ")" and round_open:
            _scale(segments, round_open.pop(), ROUND_MULTIPLIER)
        elif token == "]" and square_open:
            _scale(segments, square_open.pop(), SQUARE_MULTIPLIER)
        else:
            _add_text(segments, token)
    for start in round_open:
        _scale(segments, start, ROUND_MULTIPLIER)
    for start in square_open:
        _scale(segments, start, SQUARE_MULTIPLIER)
    return _merge(segments)
