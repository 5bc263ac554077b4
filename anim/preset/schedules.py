"""Which preset keys are schedules, the schedule.csv column each becomes, and checking them at load."""
from __future__ import annotations

from typing import Any, Iterator

from anim.errors import ScheduleError
from anim.keyframes import parse_schedule
from anim.preset.schema import SCHEDULED, LoadedPreset, Preset

ScheduleSpec = tuple[tuple[str, ...], str, str, Any]  # (key path, column, kind, raw spec)
CONTROL_KEYS = ("weight", "guidance_start", "guidance_end")


# Valid values of scheduled columns (inclusive); a frame outside is refused, naming the frame, never clamped.
# Columns not listed take any finite number.
COLUMN_RANGES: dict[str, tuple[float, float]] = {
    "denoise": (0.0, 1.0), "steps": (1, 1000), "cfg_scale": (0.0, 100.0), "noise": (0.0, 1.0),
    "contrast": (0.0, 10.0), "zoom": (1e-3, 1e3), "fov": (1.0, 179.0), "near": (1e-3, 1e9), "far": (1e-3, 1e9),
    "aspect_ratio": (1e-2, 1e2),
    "unsharp_amount": (0.0, 10.0), "unsharp_kernel": (1, 99), "unsharp_sigma": (0.0, 100.0),
    "unsharp_threshold": (0.0, 255.0), "video_blend": (0.0, 1.0), "flow_blend": (0.0, 1.0),
    "cross_frame_weight": (0.0, 1.0), "fusion_weight": (0.0, 1.0),
    "guidance_start": (0.0, 1.0), "guidance_end": (0.0, 1.0), "weight": (-10.0, 10.0),
}


def column_range(column: str) -> tuple[float, float] | None:
    """The valid (low, high) of a schedule.csv column (LoRA / ControlNet columns by their key), or None."""
    if column in COLUMN_RANGES:
        return COLUMN_RANGES[column]
    if column.startswith(("cn", "lora")) and "_" in column:
        return COLUMN_RANGES.get(column.split("_", 1)[1])
    return None


def lora_column(index: int) -> str:
    """The schedule.csv column of LoRA `index`'s weight."""
    return f"lora{index}_weight"


def control_column(index: int, key: str) -> str:
    """The schedule.csv column of ControlNet unit `index`'s `key` (weight, guidance_start, guidance_end)."""
    if key not in CONTROL_KEYS:
        raise KeyError(f"ControlNet unit schedules are {CONTROL_KEYS}, not {key!r}")
    return f"cn{index}_{key}"


def schedule_specs(preset: Preset) -> Iterator[ScheduleSpec]:
    """Every scheduled value of the preset, in schedule.csv column order."""
    data = preset.model_dump()
    for path, column, kind in SCHEDULED:
        node: Any = data
        for part in path:
            node = node[part]
        yield path, column, kind, node
    for i, lora in enumerate(preset.loras):
        yield ("loras", str(i), "weight"), lora_column(i), "float", lora.weight
    for i, unit in enumerate(preset.controlnet):
        for key in CONTROL_KEYS:
            yield ("controlnet", str(i), key), control_column(i, key), "float", getattr(unit, key)


def check_schedules(loaded: LoadedPreset) -> None:
    """Parse every schedule (syntax, names) so a typo fails at load, naming key and line."""
    for path, _column, _kind, spec in schedule_specs(loaded.preset):
        parse_spec(loaded, path, spec)
    if loaded.preset.seed_schedule is not None:
        parse_spec(loaded, ("seed_schedule",), loaded.preset.seed_schedule)


def parse_spec(loaded: LoadedPreset, path: tuple[str, ...], spec: Any):
    """The parsed schedule at `path`, or a PresetError naming the key and its line."""
    try:
        return parse_schedule(spec, name=".".join(path))
    except ScheduleError as exc:
        raise loaded.error(path, strip_name(str(exc), path)) from None


def strip_name(message: str, path: tuple[str, ...]) -> str:
    """Schedule errors start with the schedule's name; the preset error already says it."""
    name = ".".join(path) + ": "
    return message[len(name):] if message.startswith(name) else message
