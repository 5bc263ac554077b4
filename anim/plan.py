"""Preset -> FrameTable: every scheduled value resolved for every frame before any model exists."""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from anim.errors import ScheduleError
from anim.keyframes import FrameTable, parse_schedule, resolve_prompts, resolve_seeds
from anim.preset import SCHEDULED, LoadedPreset, Preset

ScheduleSpec = tuple[tuple[str, ...], str, str, Any]  # (key path, column, kind, raw spec)


def schedule_specs(preset: Preset) -> Iterator[ScheduleSpec]:
    """Every scheduled value of the preset, in schedule.csv column order."""
    data = preset.model_dump()
    for path, column, kind in SCHEDULED:
        node: Any = data
        for part in path:
            node = node[part]
        yield path, column, kind, node
    for i, lora in enumerate(preset.loras):
        yield ("loras", str(i), "weight"), f"lora{i}_weight", "float", lora.weight
    for i, unit in enumerate(preset.controlnet):
        for key in ("weight", "guidance_start", "guidance_end"):
            yield ("controlnet", str(i), key), f"cn{i}_{key}", "float", getattr(unit, key)


def check_schedules(loaded: LoadedPreset) -> None:
    """Parse every schedule (syntax, names) so a typo fails at load, naming key and line."""
    for path, _column, _kind, spec in schedule_specs(loaded.preset):
        _parse(loaded, path, spec)
    if loaded.preset.seed_schedule is not None:
        _parse(loaded, ("seed_schedule",), loaded.preset.seed_schedule)


def _parse(loaded: LoadedPreset, path: tuple[str, ...], spec: Any):
    try:
        return parse_schedule(spec, name=".".join(path))
    except ScheduleError as exc:
        raise loaded.error(path, _strip_name(str(exc), path)) from None


def _strip_name(message: str, path: tuple[str, ...]) -> str:
    """Schedule errors start with the schedule's name; the preset error already says it."""
    name = ".".join(path) + ": "
    return message[len(name):] if message.startswith(name) else message


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
        schedule = _parse(loaded, path, spec)
        try:
            columns[column] = _typed(schedule.evaluate(n, seed), kind)
        except ScheduleError as exc:
            raise loaded.error(path, _strip_name(str(exc), path)) from None
    try:
        columns["seed"] = resolve_seeds(
            preset.seed_behavior, seed, n, schedule=preset.seed_schedule, iter_n=preset.seed_iter_n
        )
    except ScheduleError as exc:
        raise loaded.error(("seed_schedule",), _strip_name(str(exc), ("seed_schedule",))) from None
    try:
        prompts = resolve_prompts(
            preset.prompts, n, negative_prompt=preset.negative_prompt,
            positive_prompt=preset.positive_prompt, blend_frames=preset.prompt_blend,
        )
    except ScheduleError as exc:
        raise loaded.error(("prompts",), _strip_name(str(exc), ("prompts",))) from None
    return FrameTable(_ordered(columns), prompts)


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
