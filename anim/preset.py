"""The preset: pydantic schema, YAML loading with line numbers, `key=value` overrides, resolved dump."""
from __future__ import annotations

import difflib
import hashlib
import json
import secrets
from pathlib import Path
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from anim.errors import PresetError
from anim.preset_errors import first_error
from anim.yamlio import dump_yaml, load_with_lines, parse_yaml

# A scheduled value: Deforum string, bare number, or mapping frame -> number | expr | {value, ease}.
Sched = Union[float, int, str, dict[Union[int, str], Any]]


class _Section(BaseModel):
    """Base of every preset section: unknown keys are errors, not silently dropped."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Motion(_Section):
    """Camera motion, per-frame deltas (Deforum names and units)."""

    mode: Literal["none", "2d", "3d"] = "2d"
    angle: Sched = 0.0  # degrees per frame, counter-clockwise
    zoom: Sched = 1.0  # scale per frame, > 1 zooms in
    translation_x: Sched = 0.0  # pixels per frame (2D) / 1/200 unit cube (3D)
    translation_y: Sched = 0.0
    translation_z: Sched = 0.0
    rotation_3d_x: Sched = 0.0  # degrees per frame
    rotation_3d_y: Sched = 0.0
    rotation_3d_z: Sched = 0.0
    transform_center_x: Sched = 0.5  # fraction of the width
    transform_center_y: Sched = 0.5
    fov: Sched = 40.0  # degrees
    near: Sched = 200.0
    far: Sched = 10000.0
    border: Literal["replicate", "wrap", "reflect", "zeros"] = "replicate"
    depth_model: str = "flat"
    save_depth: bool = False


class LoRA(_Section):
    """One LoRA file with a scheduled weight."""

    path: str
    weight: Sched = 1.0


class ControlUnit(_Section):
    """One ControlNet unit; weight and guidance window are schedules."""

    model: str
    input: str = "loopback"  # video | image folder | image | loopback
    annotator: str = "none"
    weight: Sched = 1.0
    guidance_start: Sched = 0.0
    guidance_end: Sched = 1.0
    resize: Literal["fit", "crop", "stretch"] = "crop"
    annotator_model: Optional[str] = None  # hub id or local folder of the annotator's weights
    annotator_options: dict[str, Any] = Field(default_factory=dict)  # e.g. {low_threshold: 100} for canny


class Performance(_Section):
    """Speed/memory switches; layout and fusion apply on CUDA only (CPU results stay bit-exact)."""

    channels_last: bool = True
    fuse_qkv: bool = True
    compile: bool = False  # torch.compile the UNet (minutes of compile, then faster frames)
    compile_mode: Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] = "default"
    low_vram: bool = False  # VAE tiling/slicing + attention slicing; on CUDA, model CPU offload


class Output(_Section):
    """Video encoding of the finished frames."""

    crf: int = Field(18, ge=0, le=51)
    audio: Optional[str] = None
    video: bool = True


class Preset(_Section):
    """A whole render. Names follow Deforum where Deforum has one (see DESIGN.md)."""

    model: str = "tiny"
    vae: Optional[str] = None
    loras: list[LoRA] = Field(default_factory=list)
    allow_pickle: bool = False
    device: str = "auto"
    dtype: Optional[Literal["fp16", "bf16", "fp32"]] = None

    width: int = Field(512, ge=64, le=8192)
    height: int = Field(512, ge=64, le=8192)
    fps: Optional[float] = Field(None, gt=0, le=240)  # default: init_video's fps / extract_nth_frame, else 12
    max_frames: Optional[int] = Field(None, ge=1, le=1_000_000)  # default: init_video's frame count, else 96

    seed: int = Field(-1, ge=-1, le=2**32 - 1)  # -1: pick one, recorded in preset.resolved.yaml
    seed_behavior: Literal["iter", "fixed", "random", "ladder", "alternate", "schedule"] = "iter"
    seed_schedule: Optional[Sched] = None
    seed_iter_n: int = Field(1, ge=1)
    sampler: str = "euler_a"
    steps: Sched = 25

    prompts: dict[Union[int, str], str]
    positive_prompt: str = ""
    negative_prompt: str = ""
    prompt_blend: int = Field(0, ge=0)  # frames of embedding crossfade before each prompt keyframe
    prompt_blend_mode: Literal["lerp", "slerp"] = "lerp"

    init_image: Optional[str] = None
    init_denoise: float = Field(0.6, ge=0.0, le=1.0)
    init_video: Optional[str] = None
    video_blend: Sched = 0.0  # 0 = the input frame as init (mov2mov); higher = steadier
    flow_blend: Sched = 0.0  # video input: previous output moved by the input's optical flow, blended in
    flow_method: Literal["dis", "farneback", "raft", "raft_small", "raft_large"] = "dis"
    cadence: int = Field(1, ge=1, le=64)  # diffuse every Nth frame; in-betweens are warped and crossfaded
    cadence_flow: bool = False  # in-betweens follow the optical flow between the two diffused frames
    extract_nth_frame: int = Field(1, ge=1)
    video_start: float = Field(0.0, ge=0)
    video_end: Optional[float] = None

    motion: Motion = Field(default_factory=Motion)

    denoise: Sched = 0.45  # img2img denoising strength (A1111 sense)
    cfg_scale: Sched = 7.0
    noise: Sched = 0.02  # blend amount of seeded noise
    noise_type: Literal["gaussian", "perlin"] = "gaussian"
    contrast: Sched = 1.0
    unsharp_amount: Sched = 0.0
    unsharp_kernel: Sched = 5
    unsharp_sigma: Sched = 1.0
    unsharp_threshold: Sched = 0.0  # 8-bit levels
    color_coherence: Literal["none", "lab", "hsv", "rgb"] = "lab"
    color_reference: Optional[str] = None  # image path; default: frame 0

    controlnet: list[ControlUnit] = Field(default_factory=list)
    output: Output = Field(default_factory=Output)
    performance: Performance = Field(default_factory=Performance)

    @field_validator("width", "height")
    @classmethod
    def _multiple_of_8(cls, value: int) -> int:
        if value % 8:
            raise ValueError(f"must be a multiple of 8 (got {value}; try {max(8, round(value / 8) * 8)})")
        return value

    @field_validator("sampler")
    @classmethod
    def _known_sampler(cls, value: str) -> str:
        from anim.samplers import sampler_names  # a plain table: imports neither torch nor diffusers

        if value.lower() not in sampler_names():
            close = difflib.get_close_matches(value.lower(), sampler_names(), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ValueError(f"unknown sampler '{value}'; {hint}valid: {', '.join(sampler_names())}")
        return value.lower()

    @field_validator("prompts")
    @classmethod
    def _some_prompt(cls, value: dict) -> dict:
        if not value:
            raise ValueError("needs at least one keyframe, e.g. {0: 'a cabin in the woods'}")
        return value

    @model_validator(mode="after")
    def _seed_schedule_present(self) -> "Preset":
        if self.seed_behavior == "schedule" and self.seed_schedule is None:
            raise ValueError("seed_behavior 'schedule' needs a seed_schedule")
        return self


# Scheduled fields, in schedule.csv order: (key path in the preset, column name, kind).
SCHEDULED: tuple[tuple[tuple[str, ...], str, str], ...] = (
    *((("motion", n), n, "float") for n in (
        "angle", "zoom", "translation_x", "translation_y", "translation_z", "rotation_3d_x",
        "rotation_3d_y", "rotation_3d_z", "transform_center_x", "transform_center_y", "fov", "near", "far")),
    (("denoise",), "denoise", "float"),
    (("cfg_scale",), "cfg_scale", "float"),
    (("steps",), "steps", "int"),
    (("noise",), "noise", "float"),
    (("contrast",), "contrast", "float"),
    (("unsharp_amount",), "unsharp_amount", "float"),
    (("unsharp_kernel",), "unsharp_kernel", "odd"),
    (("unsharp_sigma",), "unsharp_sigma", "float"),
    (("unsharp_threshold",), "unsharp_threshold", "float"),
    (("video_blend",), "video_blend", "float"),
    (("flow_blend",), "flow_blend", "float"),
)


class LoadedPreset(BaseModel):
    """A validated preset plus where each key came from, for error messages."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    preset: Preset
    source: str
    lines: dict[tuple[str, ...], int] = Field(default_factory=dict)
    overrides: dict[tuple[str, ...], str] = Field(default_factory=dict)
    seed_was_random: bool = False  # seed: -1 was replaced by a fresh one (a resume adopts the stored seed)

    def where(self, path: tuple[str, ...]) -> str:
        """'file.yaml:12' or "override 'k=v'" for a key path (or its nearest known parent)."""
        for cut in range(len(path), 0, -1):
            prefix = tuple(str(p) for p in path[:cut])
            if prefix in self.overrides:
                return f"override '{self.overrides[prefix]}'"
            if prefix in self.lines:
                return f"{self.source}:{self.lines[prefix]}"
        return self.source

    def error(self, path: tuple[str, ...], message: str) -> PresetError:
        """A PresetError that names the place and the key path."""
        return PresetError(f"{self.where(path)}: {'.'.join(map(str, path))}: {message}")


def load_preset(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> LoadedPreset:
    """Read, override and validate a preset file; every error names the key and its line."""
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
    return validate_preset(data, str(path), lines, applied)


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
            else:
                node = node.setdefault(key, {})
        else:
            raise PresetError(f"override '{item}': '{'.'.join(parts[:depth])}' is not a section")


def validate_preset(data: dict, source: str, lines: dict, overrides: dict | None = None) -> LoadedPreset:
    """Validate raw preset data; the first problem becomes one PresetError with key path and line."""
    overrides = overrides or {}
    try:
        preset = Preset.model_validate(data)
    except ValidationError as exc:
        shell = LoadedPreset.model_construct(preset=None, source=source, lines=lines, overrides=overrides)
        raise first_error(exc, shell, Preset) from None
    resolve_input_defaults(preset)
    seed_was_random = preset.seed == -1
    if seed_was_random:
        preset.seed = secrets.randbelow(2**32 - 1)
    loaded = LoadedPreset(preset=preset, source=source, lines=lines, overrides=overrides,
                          seed_was_random=seed_was_random)
    from anim.plan import check_schedules  # parse every schedule now, so errors surface at load

    check_schedules(loaded)
    return loaded


DEFAULT_FPS, DEFAULT_MAX_FRAMES = 12.0, 96


def resolve_input_defaults(preset: Preset) -> None:
    """Fill max_frames/fps from init_video (every input frame, at the input's rate) or the defaults."""
    if preset.init_video and (preset.max_frames is None or preset.fps is None):
        from anim.control.videosource import VideoSource  # probes the file; only when a default needs it

        video = VideoSource(Path(preset.init_video), preset.width, preset.height, "crop", "init_video",
                            nth=preset.extract_nth_frame, start_s=preset.video_start, end_s=preset.video_end)
        video.close()
        if preset.max_frames is None:
            preset.max_frames = video.n_frames
        if preset.fps is None and video.fps:
            preset.fps = round(video.fps, 6)
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


def frames_hash(preset: Preset) -> str:
    """Hash of everything that determines the frames (resume refuses a different one)."""
    data = {k: v for k, v in preset.model_dump(mode="json").items() if k not in VIDEO_ONLY_KEYS}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


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
