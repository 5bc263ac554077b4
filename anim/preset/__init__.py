"""The preset layer: schema, YAML with line numbers, `key=value` overrides, errors naming key and line.

Imports only keyframes (to check schedules at load) and the standard stack (pydantic, yaml); it probes no
files: anim.plan.load_preset reads init_video when its frame count or rate is a default.
"""
from anim.preset.load import (
    VIDEO_ONLY_KEYS,
    VideoInfo,
    apply_overrides,
    changed_keys,
    frames_hash,
    load_preset,
    resolve_input_defaults,
    resolved_dict,
    resolved_yaml,
    validate_preset,
)
from anim.preset.schema import (
    SCHEDULED,
    ControlUnit,
    LoadedPreset,
    LoRA,
    Motion,
    Output,
    Performance,
    Preset,
)

__all__ = [
    "SCHEDULED", "VIDEO_ONLY_KEYS", "ControlUnit", "LoRA", "LoadedPreset", "Motion", "Output", "Performance",
    "Preset", "VideoInfo", "apply_overrides", "changed_keys", "frames_hash", "load_preset", "resolve_input_defaults",
    "resolved_dict", "resolved_yaml", "validate_preset",
]
