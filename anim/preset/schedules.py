"""Which preset keys are schedules, the schedule.csv column each becomes, and checking them at load."""
from __future__ import annotations

from typing import Any, Iterator

from anim.errors import ScheduleError
from anim.keyframes import TextSchedule, parse_schedule, parse_text_schedule
from anim.keyframes.mask_expr import canonical_checker
from anim.preset.samplers import sampler_by_name
from anim.preset.schema import SCHEDULED, LoadedPreset, Preset

ScheduleSpec = tuple[tuple[str, ...], str, str, Any]  # (key path, column, kind, raw spec)
TextSpec = tuple[tuple[str, ...], str, Any, str, Any]  # (key path, column, raw spec or None, default, canonical)
CONTROL_KEYS = ("weight", "guidance_start", "guidance_end")


# Valid values of scheduled columns (inclusive); a frame outside is refused, naming the frame, never clamped.
# Columns not listed take any finite number.
COLUMN_RANGES: dict[str, tuple[float, float]] = {
    "denoise": (0.0, 1.0), "steps": (1, 1000), "cfg_scale": (0.0, 100.0), "noise": (0.0, 1.0),
    "contrast": (0.0, 10.0), "zoom": (1e-3, 1e3), "fov": (1.0, 179.0), "near": (1e-3, 1e9), "far": (1e-3, 1e9),
    "aspect_ratio": (1e-2, 1e2), "perspective_flip_fv": (1.0, 179.0),
    "unsharp_amount": (0.0, 10.0), "unsharp_kernel": (1, 99), "unsharp_sigma": (0.0, 100.0),
    "unsharp_threshold": (0.0, 255.0), "video_blend": (0.0, 1.0), "flow_blend": (0.0, 1.0),
    "cross_frame_weight": (0.0, 1.0), "fusion_weight": (0.0, 1.0),
    "hybrid_flow_factor": (-100.0, 100.0), "hybrid_comp_alpha": (0.0, 1.0), "hybrid_comp_mask_alpha": (0.0, 1.0),
    "hybrid_comp_mask_contrast": (0.0, 100.0), "hybrid_comp_mask_auto_contrast_low": (0.0, 100.0),
    "hybrid_comp_mask_auto_contrast_high": (0.0, 100.0),
    "clip_skip": (1, 12), "subseed": (-1, 2**32 - 1), "subseed_strength": (0.0, 1.0),
    "noise_multiplier": (0.0, 10.0), "ddim_eta": (0.0, 1.0), "ancestral_eta": (0.0, 1.0),
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


def text_specs(preset: Preset) -> tuple[TextSpec, ...]:
    """Every text schedule, in schedule.csv column order: the sampler of each frame (anim's names; A1111 labels are
    read too) and the checkpoint of each frame (names as written, resolved like `model:`). Frames before the first
    keyframe, or every frame without a schedule, take `sampler:` / `model:`."""
    specs = ((("sampler_schedule",), "sampler", preset.sampler_schedule, preset.sampler, sampler_by_name),
             (("checkpoint_schedule",), "checkpoint", preset.checkpoint_schedule, preset.model, None))
    return specs + mask_specs(preset)


def mask_specs(preset: Preset) -> tuple[TextSpec, ...]:
    """With a `mask:` section, the mask expression of each frame (column `mask`; default: the video's frame, the
    init mask or the whole frame) and its noise mask (column `noise_mask`; default: the frame's mask, as Deforum
    does without use_noise_mask), each keyframe checked by anim.keyframes.mask_expr against the known names."""
    mask = preset.mask
    if mask is None:
        return ()
    check = canonical_checker(mask.names())
    default = mask.default_expression()
    noise = mask.noise_schedule if mask.noise_schedule is not None else mask.schedule
    return ((("mask", "schedule"), "mask", mask.schedule, default, check),
            (("mask", "noise_schedule"), "noise_mask", noise, default, check))


def check_schedules(loaded: LoadedPreset) -> None:
    """Parse every schedule (syntax, names) so a typo fails at load, naming key and line."""
    for path, _column, _kind, spec in schedule_specs(loaded.preset):
        parse_spec(loaded, path, spec)
    if loaded.preset.seed_schedule is not None:
        parse_spec(loaded, ("seed_schedule",), loaded.preset.seed_schedule)
    for path, _column, spec, _default, canonical in text_specs(loaded.preset):
        if spec is not None:
            parse_text_spec(loaded, path, spec, canonical)
    check_mask_files(loaded)


def check_mask_files(loaded: LoadedPreset) -> None:
    """Every file the `mask:` section names (file, named masks, [path] in the expressions) exists, so a typo fails
    at load naming the key and the path."""
    from pathlib import Path

    from anim.keyframes.mask_expr import parse_mask_expr, refs

    mask = loaded.preset.mask
    if mask is None:
        return
    wanted = [(("mask", "file"), mask.file), (("mask", "video"), mask.video)]
    wanted += [(("mask", "named", name), path) for name, path in mask.named.items()]
    for path, spec, _column in ((("mask", "schedule"), mask.schedule, "mask"),
                                (("mask", "noise_schedule"), mask.noise_schedule, "noise_mask")):
        if spec is not None:
            for keyframe in parse_text_spec(loaded, path, spec).keyframes:
                wanted += [(path, ref.value) for ref in refs(parse_mask_expr(keyframe.text)) if ref.kind == "file"]
    for path, file in wanted:
        if file and not Path(file).is_file():
            raise loaded.error(path, f"file not found: {file}")


def parse_text_spec(loaded: LoadedPreset, path: tuple[str, ...], spec: Any, canonical=None) -> TextSchedule:
    """The parsed text schedule at `path` (anim.keyframes.texts), or a PresetError naming the key, its line, the
    schedule text and the column."""
    try:
        return parse_text_schedule(spec, ".".join(path), canonical)
    except ScheduleError as exc:
        raise loaded.error(path, strip_name(str(exc), path)) from None


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
