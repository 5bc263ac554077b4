"""Which preset keys are schedules, the schedule.csv column each becomes, and checking them at load."""
from __future__ import annotations

from typing import Any, Iterator

from anim.errors import ScheduleError
from anim.keyframes import parse_schedule
from anim.preset.schema import SCHEDULED, LoadedPreset, Preset

ScheduleSpec = tuple[tuple[str, ...], str, str, Any]  # (key path, column, kind, raw spec)
CONTROL_KEYS = ("weight", "guidance_start", "guidance_end")


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
