"""Loading a preset: YAML with line numbers, `key=value` overrides, validation, the resolved dump, and
what a resume compares (frames hash, changed keys)."""
from __future__ import annotations

import hashlib
import json
import secrets
from pathlib import Path
from typing import Any, Callable

from pydantic import ValidationError

from anim.errors import AnimError, PresetError
from anim.preset.errors import first_error
from anim.preset.schedules import check_schedules
from anim.preset.schema import LoadedPreset, Preset
from anim.preset.yamlio import dump_yaml, load_with_lines, parse_yaml

LIST_KEYS = ("controlnet", "loras")  # preset keys that hold lists (an override indexes them)
VideoInfo = Callable[[Preset], "tuple[int, float | None]"]  # init_video -> (frame count, fps)
Expand = Callable[[dict, set], None]  # fills preset data in place from the files it names (parseq: export.json),
# leaving the key paths in the set (the command line's overrides) as they are


def load_preset(path: str | Path, overrides: list[str] | tuple[str, ...] = (), *,
                video_info: VideoInfo | None = None, expand: Expand | None = None) -> LoadedPreset:
    """Read, override and validate a preset file; every error names the key and its line.
    `video_info(preset) -> (n_frames, fps)` reads init_video when max_frames/fps default to it
    (anim.plan.load_preset passes the real probe)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PresetError(f"preset file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PresetError(f"cannot read preset {path}: {exc}") from None
    data, lines = load_with_lines(text, str(path))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PresetError(f"{path}:1: a preset is a YAML mapping of keys (model, prompts, ...), not {type(data).__name__}")
    applied = apply_overrides(data, overrides)
    return validate_preset(data, str(path), lines, applied, video_info=video_info, expand=expand)


def check_text(node: Any, where: LoadedPreset, path: tuple[str, ...] = ()) -> None:
    """Every text in the preset is valid Unicode (a lone surrogate like "\\ud800" cannot be written to
    schedule.csv or PNG metadata): PresetError naming the key otherwise."""
    if isinstance(node, str):
        try:
            node.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise where.error(path, f"text holds {node[exc.start:exc.end]!r} at position {exc.start}, which is not a "
                                    "character (a lone surrogate); remove it") from None
    elif isinstance(node, dict):
        for key, value in node.items():
            check_text(key, where, path)
            check_text(value, where, path + (str(key),))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            check_text(value, where, path + (str(index),))


def apply_overrides(data: dict, overrides: list[str] | tuple[str, ...]) -> dict[tuple[str, ...], str]:
    """Apply `a.b.c=value` overrides in place (values parsed as YAML); returns path -> override text."""
    applied: dict[tuple[str, ...], str] = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise PresetError(f"override '{item}': expected key=value, e.g. max_frames=10 or motion.zoom=\"0:(1.05)\"")
        parts = tuple(p for p in key.strip().split("."))
        if any(not p for p in parts):
            raise PresetError(f"override '{item}': empty key segment in '{key}'")
        value = parse_yaml(raw, f"override '{item}'") if raw.strip() else ""
        _set_path(data, parts, value, item)
        applied[parts] = item
    return applied


def _set_path(data: Any, parts: tuple[str, ...], value: Any, item: str) -> None:
    """Set a nested value; digits index lists (controlnet.0.weight)."""
    node = data
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise PresetError(f"override '{item}': '{'.'.join(parts[:depth])}' has no item {part}")
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            key: Any = int(part) if part.isdigit() and int(part) in node else part
            if last:
                node[key] = value
            elif key not in node and parts[depth + 1].isdigit() and key in LIST_KEYS:
                raise PresetError(f"override '{item}': '{'.'.join(parts[:depth + 1])}' has no item {parts[depth + 1]} "
                                  f"(the preset has none); add the whole list, e.g. {key}=[{{...}}]")
            else:
                node = node.setdefault(key, {})
        else:
            raise PresetError(f"override '{item}': '{'.'.join(parts[:depth])}' is not a section")


def validate_preset(data: dict, source: str, lines: dict, overrides: dict | None = None, *,
                    video_info: VideoInfo | None = None, expand: Expand | None = None,
                    origins: dict | None = None, notes: list[str] | None = None) -> LoadedPreset:
    """Validate raw preset data; the first problem becomes one PresetError with key path and line.
    `expand(data)` first fills in what named files hold (anim.plan passes the Parseq reader); `origins` and
    `notes` come from an import (anim.importers)."""
    overrides, origins = overrides or {}, origins or {}
    shell = LoadedPreset.model_construct(preset=None, source=source, lines=lines, overrides=overrides,
                                         origins=origins)
    if expand is not None:
        try:
            expand(data, set(overrides))
        except AnimError as exc:
            raise shell.error(("parseq",), str(exc)) from None
    check_text(data, shell)
    try:
        preset = Preset.model_validate(data)
    except ValidationError as exc:
        raise first_error(exc, shell, Preset) from None
    try:
        resolve_input_defaults(preset, video_info)
    except AnimError as exc:  # the probe's error, placed at the init_video key and its line
        raise shell.error(("init_video",), str(exc).removeprefix("init_video: ")) from None
    seed_was_random = preset.seed == -1
    if seed_was_random:
        preset.seed = secrets.randbelow(2**32 - 1)
    loaded = LoadedPreset(preset=preset, source=source, lines=lines, overrides=overrides,
                          seed_was_random=seed_was_random, origins=origins, notes=list(notes or []))
    check_schedules(loaded)  # parse every schedule now, so errors surface at load
    return loaded


DEFAULT_FPS, DEFAULT_MAX_FRAMES = 12.0, 96


def resolve_input_defaults(preset: Preset, video_info: VideoInfo | None) -> None:
    """Fill max_frames/fps from init_video (every input frame, at the input's rate) or the defaults."""
    if preset.init_video and (preset.max_frames is None or preset.fps is None):
        if video_info is None:
            raise PresetError("init_video: max_frames and fps default to the input video's, which was not read "
                              "(load the preset with anim.plan.load_preset)")
        n_frames, fps = video_info(preset)
        if preset.max_frames is None:
            preset.max_frames = n_frames
        if preset.fps is None and fps:
            preset.fps = round(fps, 6)
    if preset.max_frames is None:
        preset.max_frames = DEFAULT_MAX_FRAMES
    if preset.fps is None:
        preset.fps = DEFAULT_FPS


def resolved_dict(preset: Preset) -> dict:
    """The preset with every default filled in and the seed fixed, as plain data (int prompt keys kept)."""
    return preset.model_dump(mode="python")


def resolved_yaml(preset: Preset) -> str:
    """preset.resolved.yaml: what the render actually used, loadable as a preset again."""
    header = "# Resolved by anim: every default filled in, seed fixed. Render it again with render.py.\n"
    return header + dump_yaml(resolved_dict(preset))


# Keys that change only the encoded video, not a single frame: a resume may differ in these.
VIDEO_ONLY_KEYS = ("output", "performance")  # performance switches change speed, not the frames' recipe


def frames_hash(preset: Preset, keys_of: dict | None = None) -> str:
    """Hash of everything that determines the frames (resume refuses a different one). With `keys_of` (a
    preset.resolved.yaml as an older anim wrote it), only the keys it has: the hash that anim recorded then."""
    data = {k: v for k, v in preset.model_dump(mode="json").items() if k not in VIDEO_ONLY_KEYS}
    if keys_of is not None:
        data = only_keys_of(data, keys_of)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def only_keys_of(data: dict, like: dict) -> dict:
    """`data` cut down to the keys `like` has (sections recursively; lists and values as they are)."""
    out = {}
    for key, value in data.items():
        if key not in like:
            continue
        out[key] = only_keys_of(value, like[key]) if isinstance(value, dict) and isinstance(like[key], dict) \
            and key != "prompts" else value
    return out


def changed_keys(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Dotted key paths whose values differ between two resolved presets."""
    keys: list[str] = []
    for key in sorted(set(old) | set(new), key=str):
        a, b = old.get(key), new.get(key)
        path = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            keys.extend(changed_keys(a, b, path + "."))
        elif a != b:
            keys.append(path)
    return keys
