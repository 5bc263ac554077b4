"""What every importer returns, and the small readers of values as real settings files store them
(numbers as strings, paths wrapped in quotes, "None" for nothing)."""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anim.errors import PresetError

MAX_SETTINGS_BYTES = 64 * 1024 * 1024  # a 1000-keyframe camera export is ~1 MB; refuse anything absurd
_KEY_LINE = re.compile(r'^\s*"((?:[^"\\]|\\.)*)"\s*:')
NOTHING = ("", "none", "null")


@dataclass(frozen=True)
class Note:
    """A setting that was not carried over (or carried with a change), and why."""

    key: str
    value: Any
    reason: str

    def line(self) -> str:
        """'key = value: reason', one line (long values cut)."""
        shown = json.dumps(self.value, ensure_ascii=False)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        return f"{self.key} = {shown}: {self.reason}"


@dataclass
class Imported:
    """A preset (plain data, anim keys) made from another tool's file, with what did not carry over.

    `origins` maps a preset key path to the source key it came from, `lines` the source key to its line in
    the file, so an error in the preset names the line and the key the artist wrote."""

    kind: str  # "deforum" | "parseq"
    data: dict
    notes: list[Note] = field(default_factory=list)
    origins: dict[tuple[str, ...], str] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    # Video Input's (first, last) source frame numbers (last None = to the end): seconds need the video's rate,
    # which anim.plan reads (this layer opens no video)
    video_frames: tuple[int, int | None] | None = None

    def note(self, key: str, value: Any, reason: str) -> None:
        """Record a setting that was not carried over."""
        self.notes.append(Note(key, value, reason))

    def put(self, path: tuple[str, ...], value: Any, source_key: str) -> None:
        """Set preset key `path` (creating sections) and remember which source key it came from."""
        node = self.data
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
        self.origins[path] = source_key

    def preset_lines(self) -> dict[tuple[str, ...], int]:
        """Preset key path -> line of its source key in the file (for LoadedPreset.lines)."""
        return {path: self.lines[key] for path, key in self.origins.items() if key in self.lines}


def read_json_object(path: Path) -> tuple[dict | None, str]:
    """(the JSON object in the file or None when the text is not a JSON object, the text)."""
    try:
        size = path.stat().st_size
        if size > MAX_SETTINGS_BYTES:
            raise PresetError(f"{path}: {size} bytes is too large for a settings file (limit {MAX_SETTINGS_BYTES})")
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise PresetError(f"preset file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PresetError(f"cannot read {path}: {exc}") from None
    if not text.lstrip().startswith("{"):
        return None, text
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return None, text
    return (data if isinstance(data, dict) else None), text


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def key_lines(text: str) -> dict[str, int]:
    """Top-level-looking `"key":` -> its first line number (1-based), for messages."""
    lines: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        match = _KEY_LINE.match(line)
        if match and match.group(1) not in lines:
            lines[match.group(1)] = number
    return lines


def number(value: Any) -> float | None:
    """A finite number from a number or numeric text ("2", " 0.5 ", '"3"'), else None."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            result = float(unquote(value))
        except ValueError:
            return None
        return result if math.isfinite(result) else None
    return None


def whole(value: Any) -> int | None:
    """A whole number (truncated, as Deforum's int()) from a number or numeric text, else None."""
    result = number(value)
    return None if result is None else int(result)


def flag(value: Any) -> bool:
    """A checkbox value: true / "true" / "True" / 1 / "1"."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes", "on")
    return bool(value)


def unquote(text: str) -> str:
    """Text without surrounding blanks and one pair of literal quotes ('"C:\\a.mp4"' -> 'C:\\a.mp4')."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text


def path_value(value: Any) -> str | None:
    """A file path or URL as written, or None for null / "" / "None"."""
    if not isinstance(value, str):
        return None
    text = unquote(value)
    return None if text.lower() in NOTHING else text


def is_url(text: str) -> bool:
    """http(s)/ftp URLs: anim never downloads at render time."""
    return bool(re.match(r"^(https?|ftp)://", text.strip(), re.IGNORECASE))
