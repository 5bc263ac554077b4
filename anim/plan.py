"""Preset -> FrameTable: every scheduled value resolved for every frame before any model exists."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from anim.errors import AnimError, PresetError, ScheduleError
from anim.importers import Imported, import_file, read_settings
from anim.importers.common import read_json_object
from anim.importers.parseq import from_parseq, is_parseq, merge_parseq
from anim.keyframes import FrameTable, resolve_prompts, resolve_seeds
from anim.keyframes.networks import frame_networks, network_column
from anim.preset import LoadedPreset, Preset, apply_overrides
from anim.preset import load_preset as load_preset_file
from anim.preset import validate_preset as validate_preset_data
from anim.preset.lora_files import find_loras
from anim.preset.schedules import (
    COLUMN_RANGES,
    column_range,
    parse_spec,
    parse_text_spec,
    schedule_specs,
    strip_name,
    text_specs,
)


def input_video_info(preset: Preset) -> tuple[int, float | None]:
    """(frames, fps) of the preset's init_video as the render will read it (nth frame, start/end cut)."""
    from anim.media.videosource import (
        VideoSource,  # probes the file; only when a default needs it
    )

    video = VideoSource(Path(preset.init_video), preset.width, preset.height, "crop", "init_video",
                        nth=preset.extract_nth_frame, start_s=preset.video_start, end_s=preset.video_end)
    video.close()
    return video.n_frames, video.fps


def load_preset(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> LoadedPreset:
    """A preset file, overridden and validated, with max_frames/fps read from init_video when they default.
    The file may also be a Deforum settings file or a Parseq export (recognised by content): it is imported
    with its own meaning first (anim.importers), and `key=value` overrides then apply to the anim keys."""
    imported = import_settings(path)
    if imported is None:
        return load_preset_file(path, overrides, video_info=input_video_info, expand=expand_parseq)
    applied = apply_overrides(imported.data, overrides)
    return validate_preset_data(imported.data, str(path), imported.preset_lines(), applied,
                                video_info=input_video_info, expand=expand_parseq, origins=imported.origins,
                                notes=[note.line() for note in imported.notes])


def import_settings(path: str | Path, *, required: bool = False) -> Imported | None:
    """A Deforum settings file or Parseq export as preset data (anim.importers), with a Video Input cut by frame
    numbers turned into seconds; None for an anim preset (PresetError instead when `required`)."""
    imported = import_file(path) if required else read_settings(path)
    if imported is not None and imported.video_frames is not None:
        cut_by_frames(imported.data, *imported.video_frames)
    return imported


def cut_by_frames(data: dict, first: int, last: int | None) -> None:
    """Deforum's extract_from_frame / extract_to_frame (source frame numbers, `last` inclusive) as anim's
    video_start / video_end in seconds, at half a frame before and after so the cut is exact. A video that
    cannot be read here is left alone (its init_video error comes when it is opened)."""
    from anim.media.video import video_fps

    try:
        fps = video_fps(Path(data["init_video"]))
    except AnimError:
        return
    if fps > 0:
        data["video_start"] = round(max(0.0, (first - 0.5) / fps), 6) if first else 0.0
        data["video_end"] = round((last + 0.5) / fps, 6) if last is not None else None


def validate_preset(data: dict, source: str, lines: dict, overrides: dict | None = None) -> LoadedPreset:
    """Preset data validated as `load_preset` does (init_video read when a default needs it)."""
    return validate_preset_data(data, source, lines, overrides, video_info=input_video_info, expand=expand_parseq)


def expand_parseq(data: dict, keep: set = frozenset()) -> None:
    """`parseq: export.json`: the export's rendered frames replace the schedules, prompts, frame count, fps and
    cadence it holds (as Deforum's Parseq adapter does); the preset's own values stay for the rest, and the key
    paths in `keep` (command-line overrides) win over the export."""
    path = data.get("parseq")
    if not path:
        return
    if not isinstance(path, str):
        raise PresetError(f"expected the path of a Parseq export, got {path!r}")
    export, _text = read_json_object(Path(path))
    if export is None or not is_parseq(export):
        raise PresetError(f"{path}: not a Parseq export (expected a JSON object with rendered_frames)")
    units = data.get("controlnet") if isinstance(data.get("controlnet"), list) else []
    merge_parseq(data, from_parseq(export, path, n_units=len(units)), keep)


def _check_range(loaded: LoadedPreset, path: tuple[str, ...], column: str, values: np.ndarray) -> None:
    """Refuse a schedule whose value leaves its valid range on some frame (never clamp it silently)."""
    bounds = column_range(column)
    if bounds is None:
        return
    low, high = bounds
    bad = np.flatnonzero((values < low) | (values > high) | ~np.isfinite(values))
    if bad.size:
        frame = int(bad[0])
        raise loaded.error(path, f"is {values[frame]:.6g} at frame {frame}; valid values are {low:g} to {high:g}")


def _typed(values: np.ndarray, kind: str) -> np.ndarray:
    """Cast a float column to its kind: ints truncate toward zero (Deforum), kernels odd and >= 1."""
    if kind == "int":
        return np.maximum(np.trunc(values), 1).astype(np.int64)
    if kind == "odd":
        k = np.maximum(np.trunc(values), 1).astype(np.int64)
        return k + (k % 2 == 0)
    return values


def build_table(loaded: LoadedPreset) -> FrameTable:
    """Resolve every column and the prompts for all max_frames frames."""
    preset = loaded.preset
    n, seed = preset.max_frames, preset.seed
    columns: dict[str, np.ndarray] = {}
    for path, column, kind, spec in schedule_specs(preset):
        schedule = parse_spec(loaded, path, spec)
        try:
            values = schedule.evaluate(n, seed)
        except ScheduleError as exc:
            raise loaded.error(path, strip_name(str(exc), path)) from None
        _check_range(loaded, path, column, values)
        columns[column] = _typed(values, kind)
    try:
        columns["seed"] = resolve_seeds(
            preset.seed_behavior, seed, n, schedule=preset.seed_schedule, iter_n=preset.seed_iter_n
        )
    except ScheduleError as exc:
        raise loaded.error(("seed_schedule",), strip_name(str(exc), ("seed_schedule",))) from None
    try:
        prompts = resolve_prompts(
            preset.prompts, n, negative_prompt=preset.negative_prompt,
            positive_prompt=preset.positive_prompt, blend_frames=preset.prompt_blend, seed=seed,
        )
    except ScheduleError as exc:
        raise loaded.error(("prompts",), strip_name(str(exc), ("prompts",))) from None
    prompts, tagged = prompt_loras(loaded, prompts)
    return FrameTable({**_ordered(columns), **tagged}, prompts, texts=text_columns(loaded))


def prompt_loras(loaded: LoadedPreset, prompts: list) -> tuple[list, dict[str, np.ndarray]]:
    """The prompts without their <lora:NAME:WEIGHT> tags, and a weight column per tagged LoRA (`lora:NAME`), each
    name checked against the files in lora_dir (a file-system walk: a dry run fails on an unknown name)."""
    try:
        prompts, weights = frame_networks(prompts)
    except ScheduleError as exc:
        raise loaded.error(("prompts",), strip_name(str(exc), ("prompts",))) from None
    try:
        find_loras(weights, loaded.preset.lora_dir, allow_pickle=loaded.preset.allow_pickle)
    except PresetError as exc:
        raise loaded.error(("lora_dir",) if loaded.preset.lora_dir is not None else ("prompts",), str(exc)) from None
    low, high = COLUMN_RANGES["weight"]
    for name, values in weights.items():
        bad = np.flatnonzero((values < low) | (values > high))
        if bad.size:
            raise loaded.error(("prompts",), f"<lora:{name}> weight is {values[bad[0]]:.6g} at frame {bad[0]}; "
                                             f"valid weights are {low:g} to {high:g}")
    return prompts, {network_column(name): values for name, values in weights.items()}


def text_columns(loaded: LoadedPreset) -> dict[str, tuple[str, ...]]:
    """The text columns of every frame (sampler, checkpoint): each schedule's text held from its keyframe on, the
    preset's `sampler:` / `model:` before the first keyframe and without a schedule."""
    n = loaded.preset.max_frames
    out: dict[str, tuple[str, ...]] = {}
    for path, column, spec, default, canonical in text_specs(loaded.preset):
        if spec is None:
            out[column] = (default,) * n
            continue
        try:
            out[column] = parse_text_spec(loaded, path, spec, canonical).evaluate(n, default)
        except ScheduleError as exc:
            raise loaded.error(path, strip_name(str(exc), path)) from None
    return out


def _ordered(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Put `seed` right after `steps`, as schedule.csv readers expect it near the diffusion settings."""
    out: dict[str, np.ndarray] = {}
    for name, values in columns.items():
        if name == "seed":
            continue
        out[name] = values
        if name == "steps":
            out["seed"] = columns["seed"]
    return out


def parse_frame_range(text: str | None, max_frames: int) -> range:
    """'A:B' (half-open, like Python slices; either side may be empty) -> range within the render."""
    if not text:
        return range(max_frames)
    start_s, sep, stop_s = text.partition(":")
    try:
        start = int(start_s) if start_s.strip() else 0
        stop = int(stop_s) if sep and stop_s.strip() else (max_frames if sep else start + 1)
    except ValueError:
        raise ScheduleError(f"--frames '{text}': expected A:B with whole numbers, e.g. 0:30") from None
    if start < 0 or stop > max_frames or start >= stop:
        raise ScheduleError(f"--frames '{text}': must satisfy 0 <= A < B <= max_frames ({max_frames})")
    return range(start, stop)


def window_layout(max_frames: int, context: int, overlap: int) -> list[tuple[int, int, int]]:
    """(start, first_new, stop) of every window: frames start..first_new-1 are fixed, first_new..stop-1 new."""
    out, first_new = [], 0
    while first_new < max_frames:
        start = 0 if first_new == 0 else max(0, min(first_new - overlap, max_frames - context))
        stop = min(start + context, max_frames)
        out.append((start, first_new, stop))
        first_new = stop
    return out
