"""Prompt keyframes resolved to one row per frame, with optional embedding crossfades.

Each frame uses the prompt of the latest keyframe at or before it (frames before the first key
take the first). With ``blend_frames`` N > 0, the N frames before each keyframe k crossfade from
the previous prompt to k's: the engine conditions on lerp(embed(prompt), embed(blend_prompt),
blend_weight), with the weight a smoothstep rising from 0 at the window start toward 1 at k.
Backtick expressions in a prompt (``(cat:`0.5+0.5*sin(t/4)`)``, Deforum's syntax) are evaluated at
each frame (``t``, ``max_f``, ``s``) and replaced by their value.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from anim.errors import ScheduleError
from anim.keyframes.expr import compile_expr
from anim.keyframes.keys import Where, parse_key

NEG_MARKER = "--neg"
BACKTICK = re.compile(r"`([^`]*)`")


@dataclass(frozen=True)
class PromptFrame:
    """One frame's text conditioning: lerp(embed(prompt), embed(blend_prompt), blend_weight)."""

    prompt: str
    negative_prompt: str
    blend_prompt: str
    blend_negative_prompt: str
    blend_weight: float = 0.0


def join_parts(*parts: str) -> str:
    """Join non-empty, trimmed parts with ', '."""
    return ", ".join(p.strip() for p in parts if p and p.strip())


def split_negative(text: str) -> tuple[str, str]:
    """Split a keyframe's text at the first '--neg' into (positive, negative), both trimmed."""
    positive, _, negative = text.partition(NEG_MARKER)
    return positive.strip(), negative.strip()


def smoothstep(u: np.ndarray) -> np.ndarray:
    """3u² - 2u³ on [0, 1]: starts and ends with zero slope, so crossfades have no kink."""
    u = np.clip(u, 0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)


def _keyed_texts(prompts: Mapping, max_frames: int, name: str) -> list[tuple[int, str]]:
    """(frame, text) for each keyframe, sorted by frame; a later duplicate frame wins."""
    if not isinstance(prompts, Mapping) or not prompts:
        raise ScheduleError(f"{name}: expected a non-empty mapping of frame -> prompt, got {prompts!r}")
    by_frame: dict[int, str] = {}
    for raw_key, text in prompts.items():
        key_text = raw_key if isinstance(raw_key, str) else repr(raw_key)
        frame = parse_key(raw_key, Where(name, key_text)).resolve(max_frames - 1)
        if text is None:
            text = ""
        if not isinstance(text, str):
            raise ScheduleError(f"{name}[{key_text}]: prompt must be text, got {type(text).__name__} {text!r}")
        by_frame[frame] = text
    return sorted(by_frame.items())


def resolve_prompts(prompts: Mapping, max_frames: int, *, negative_prompt: str = "",
                    positive_prompt: str = "", blend_frames: int = 0,
                    name: str = "prompts", seed: int = 0) -> list[PromptFrame]:
    """One PromptFrame per frame 0..max_frames-1 (see the module docstring for the rules)."""
    if isinstance(max_frames, bool) or not isinstance(max_frames, numbers.Integral) or max_frames < 0:
        raise ScheduleError(f"{name}: max_frames must be a whole number >= 0, got {max_frames!r}")
    if isinstance(blend_frames, bool) or not isinstance(blend_frames, numbers.Integral) or blend_frames < 0:
        raise ScheduleError(f"{name}: blend frames must be a whole number >= 0, got {blend_frames!r}")
    keyed = _keyed_texts(prompts, max_frames, name)
    texts = []
    for _, text in keyed:
        positive, negative = split_negative(text)
        texts.append((join_parts(positive_prompt, positive), join_parts(negative, negative_prompt)))
    keys = np.array([frame for frame, _ in keyed])
    frames = np.arange(max_frames)
    index = np.clip(np.searchsorted(keys, frames, side="right") - 1, 0, len(keys) - 1)
    rows = [PromptFrame(*texts[i], *texts[i], 0.0) for i in index]
    if blend_frames > 0:
        _add_blends(rows, keys, texts, blend_frames)
    if any("`" in text for pair in texts for text in pair):
        rows = [_with_values(row, frame, max_frames - 1, seed, name) for frame, row in enumerate(rows)]
    return rows


def format_value(value: float) -> str:
    """A backtick's value as prompt text: the shortest float repr, whole numbers without '.0'."""
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


def evaluate_backticks(text: str, frame: int, max_f: int, seed: int = 0, name: str = "prompt") -> str:
    """`text` with each `expression` replaced by its value at `frame`; ScheduleError naming the text otherwise."""
    def value(match: re.Match) -> str:
        try:
            result = compile_expr(match.group(1)).value_at(frame, max_f, seed)
        except ScheduleError as exc:
            raise ScheduleError(f"{name}: backtick expression `{match.group(1)}` in {text!r}: {exc}") from None
        if not np.isfinite(result):
            raise ScheduleError(f"{name}: backtick expression `{match.group(1)}` is {result} at frame {frame}")
        return format_value(result)
    return BACKTICK.sub(value, text)


def _with_values(row: PromptFrame, frame: int, max_f: int, seed: int, name: str) -> PromptFrame:
    """The row with its four texts' backtick expressions evaluated at `frame`."""
    texts = (evaluate_backticks(t, frame, max_f, seed, name) for t in
             (row.prompt, row.negative_prompt, row.blend_prompt, row.blend_negative_prompt))
    return PromptFrame(*texts, row.blend_weight)


def _add_blends(rows: list[PromptFrame], keys: np.ndarray, texts: list, blend_frames: int) -> None:
    """Replace the rows in each window [max(k-N, previous key), k) with a crossfade toward key k."""
    for i in range(1, len(keys)):
        key, previous = int(keys[i]), int(keys[i - 1])
        start = max(key - blend_frames, previous)
        lo, hi = max(start, 0), min(key, len(rows))
        if lo >= hi:
            continue
        weights = smoothstep((np.arange(lo, hi) - start) / (key - start))
        for frame, weight in zip(range(lo, hi), weights):
            rows[frame] = PromptFrame(*texts[i - 1], *texts[i], float(weight))
