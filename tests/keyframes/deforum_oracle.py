"""Deforum's schedule algorithm, restated from its documented behaviour with numexpr + pandas.

Test-only reference: split on commas and colons, keys are numbers or int(numexpr(key)), then per
frame a numeric keyframe sets the series at its key and an expression keyframe is evaluated with
numexpr at every frame until the next key; the ends are set to the first/last valid values and
pandas fills the gaps linearly. Only for strings Deforum accepts (first key 0, keys in range).
"""

from __future__ import annotations

import re

import numexpr
import numpy as np
import pandas as pd

NUMBER = re.compile(r"^(?=.)([+-]?([0-9]*)(\.([0-9]+))?)$")


def sanitize(text: str) -> str:
    """Remove every quote and parenthesis."""
    for char in "'\"()":
        text = text.replace(char, "")
    return text


def is_number(text: str) -> bool:
    return NUMBER.match(text) is not None


def key_frames(string: str, max_frames: int) -> dict[int, str]:
    """Frame -> value text; later duplicates win."""
    max_f = max_frames - 1
    frames: dict[int, str] = {}
    for part in string.split(","):
        pieces = part.split(":")
        key = pieces[0]
        if is_number(sanitize(key.strip())):
            frame = int(sanitize(key))
        else:
            frame = int(numexpr.evaluate(key.strip(), local_dict={"max_f": max_f}))
        frames[frame] = pieces[1].strip()
    return frames


def deforum_schedule(string: str, max_frames: int, seed: int = 0) -> tuple[np.ndarray, bool]:
    """(values per frame, whether any evaluated expression value was non-finite)."""
    frames = key_frames(string, max_frames)
    series = pd.Series([np.nan] * max_frames, dtype=float)
    max_f = max_frames - 1
    value, numeric, bad = None, None, False
    for i in range(max_frames):
        if i in frames:
            value = frames[i]
            numeric = is_number(sanitize(value))
            if numeric:
                series[i] = float(sanitize(value))
        if not numeric:
            try:
                with np.errstate(all="ignore"):
                    result = float(numexpr.evaluate(value, local_dict={"t": i, "max_f": max_f, "s": seed}))
            except ZeroDivisionError:  # numexpr folds constant 1/0 in Python; Deforum would crash
                result = np.inf
            bad |= not np.isfinite(result)
            series[i] = result
    if bad:
        return series.to_numpy(), True
    series[0] = series[series.first_valid_index()]
    series[max_frames - 1] = series[series.last_valid_index()]
    return series.interpolate(method="linear", limit_direction="both").to_numpy(), bad
