"""The preset schema (pydantic): every key, its type, range and default; unknown keys are errors."""
from __future__ import annotations

import difflib
from typing import Any, Literal, Optional, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from anim.errors import PresetError
from anim.preset.samplers import sampler_names

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
    fov: Sched = 70.0  # degrees (Deforum's default)
    near: Sched = 200.0
    far: Sched = 10000.0
    aspect_ratio: Sched = 1.0  # 3D deforum projection: horizontal scale (Deforum's aspect_ratio_schedule)
    border: Literal["replicate", "wrap", "reflect", "zeros"] = "replicate"
    projection: Literal["deforum", "pinhole"] = "deforum"  # 3D: Deforum's construction, or a metric pinhole
    sampling: Literal["bicubic", "bilinear", "nearest"] = "bicubic"  # 3D warp interpolation (Deforum's default)
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


class CrossFrame(_Section):
    """Cross-frame attention: each frame's self-attention also looks at anchor frames (anim.diffusion.crossframe)."""

    weight: Sched = 0.0  # 0 = off (bit-identical to no cross-frame attention); 1 = the anchors' attention only
    anchors: list[Literal["first", "previous"]] = Field(default_factory=lambda: ["first", "previous"], min_length=1)


class Fusion(_Section):
    """Flow-guided latent fusion (video input): over a window of denoising steps, the predicted clean latent is
    pulled toward the previous output carried along the input's optical flow, where the flow is consistent."""

    weight: Sched = 0.0  # 0 = off (bit-identical); 1 = the flow-carried previous output wherever it is trusted
    start: float = Field(0.0, ge=0.0, le=1.0)  # first step, as a fraction of the steps run (ControlNet's rule)
    end: float = Field(0.6, ge=0.0, le=1.0)  # last step; the steps after it add detail freely

    @model_validator(mode="after")
    def _ordered(self) -> "Fusion":
        if self.start > self.end:
            raise ValueError(f"start ({self.start}) is after end ({self.end})")
        return self


class Coherence(_Section):
    """Temporal coherence inside the diffusion (beyond loopback, colour matching and flow blends)."""

    cross_frame: CrossFrame = Field(default_factory=CrossFrame)
    fusion: Fusion = Field(default_factory=Fusion)


class AnimateDiff(_Section):
    """`engine: animatediff`: frames denoised in overlapping windows by a UNet with motion modules."""

    context: int = Field(16, ge=2, le=64)  # frames per window (AnimateDiff's motion modules were trained on 16)
    overlap: int = Field(4, ge=0)  # frames of each window already rendered by the window before (held fixed)

    @model_validator(mode="after")
    def _overlap_below_context(self) -> "AnimateDiff":
        if self.overlap >= self.context:
            raise ValueError(f"overlap ({self.overlap}) must be smaller than context ({self.context})")
        return self


class Output(_Section):
    """Video encoding of the finished frames."""

    crf: int = Field(18, ge=0, le=51)
    audio: Optional[str] = None
    video: bool = True


class Preset(_Section):
    """A whole render. Names follow Deforum where Deforum has one (see DESIGN.md)."""

    model: str = "tiny"
    vae: Optional[str] = None
    engine: Literal["frames", "animatediff"] = "frames"  # frames: one img2img per frame; animatediff: windows
    motion_adapter: Optional[str] = None  # engine animatediff: MotionAdapter hub id | folder | file | tiny
    animatediff: AnimateDiff = Field(default_factory=AnimateDiff)
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

    parseq: Optional[str] = None  # a Parseq export: its rendered frames drive the schedules it has (Deforum's way)
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
    coherence: Coherence = Field(default_factory=Coherence)
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
    def _raft_is_a_pickle(self) -> "Preset":
        if self.flow_method.startswith("raft") and not self.allow_pickle:
            raise ValueError(f"flow_method '{self.flow_method}' reads torchvision's RAFT checkpoint, a .pth pickle; "
                             "set allow_pickle: true to load it (with torch's weights_only loader) or use dis")
        return self

    @model_validator(mode="after")
    def _fusion_follows_a_video(self) -> "Preset":
        if is_on(self.coherence.fusion.weight) and not self.init_video:
            raise ValueError("coherence.fusion follows the input video's optical flow: it needs init_video "
                             "(for keyframed motion use coherence.cross_frame)")
        return self

    @model_validator(mode="after")
    def _animatediff_needs(self) -> "Preset":
        if self.engine != "animatediff":
            return self
        problems = animatediff_conflicts(self)
        if problems:
            raise ValueError("engine animatediff: " + "; ".join(problems))
        return self

    @model_validator(mode="after")
    def _seed_schedule_present(self) -> "Preset":
        if self.seed_behavior == "schedule" and self.seed_schedule is None:
            raise ValueError("seed_behavior 'schedule' needs a seed_schedule")
        return self


# Scheduled fields, in schedule.csv order: (key path in the preset, column name, kind).
SCHEDULED: tuple[tuple[tuple[str, ...], str, str], ...] = (
    *((("motion", n), n, "float") for n in (
        "angle", "zoom", "translation_x", "translation_y", "translation_z", "rotation_3d_x",
        "rotation_3d_y", "rotation_3d_z", "transform_center_x", "transform_center_y", "fov", "near", "far",
        "aspect_ratio")),
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
    (("coherence", "cross_frame", "weight"), "cross_frame_weight", "float"),
    (("coherence", "fusion", "weight"), "fusion_weight", "float"),
)


class LoadedPreset(BaseModel):
    """A validated preset plus where each key came from, for error messages."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    preset: Preset
    source: str
    lines: dict[tuple[str, ...], int] = Field(default_factory=dict)
    overrides: dict[tuple[str, ...], str] = Field(default_factory=dict)
    seed_was_random: bool = False  # seed: -1 was replaced by a fresh one (a resume adopts the stored seed)
    origins: dict[tuple[str, ...], str] = Field(default_factory=dict)  # imported key -> the source file's key
    notes: list[str] = Field(default_factory=list)  # what an import could not carry over, one line each

    def where(self, path: tuple[str, ...]) -> str:
        """"override 'k=v'" when an override set this key, a parent or a child of it (overrides replace what
        the file said), else 'file.yaml:12' for the key path (or its nearest known parent)."""
        path = tuple(str(p) for p in path)
        for cut in range(len(path), 0, -1):
            if path[:cut] in self.overrides:
                return f"override '{self.overrides[path[:cut]]}'"
        for key, text in self.overrides.items():
            if key[:len(path)] == path:
                return f"override '{text}'"
        for cut in range(len(path), 0, -1):
            if path[:cut] in self.lines:
                return f"{self.source}:{self.lines[path[:cut]]}"
        return self.source

    def error(self, path: tuple[str, ...], message: str) -> PresetError:
        """A PresetError that names the place and the key path (and the imported file's own key)."""
        path = tuple(str(p) for p in path)
        origin = next((self.origins[path[:cut]] for cut in range(len(path), 0, -1) if path[:cut] in self.origins), None)
        named = '.'.join(path) + (f" (from {origin})" if origin and origin != path[-1] else "")
        return PresetError(f"{self.where(path)}: {named}: {message}")


def is_on(schedule) -> bool:
    """Whether a weight schedule is anything but a plain 0 (a schedule text may reach 0 and leave it)."""
    return not (isinstance(schedule, (int, float)) and float(schedule) == 0.0)


def animatediff_conflicts(p: "Preset") -> list[str]:
    """What an animatediff preset asks for that the engine does not do (video-to-video in windows, no loopback)."""
    problems = []
    if not p.motion_adapter:
        problems.append("needs motion_adapter (a MotionAdapter hub id, folder or file; `tiny` for tests)")
    if not p.init_video:
        problems.append("needs init_video (it renders video to video)")
    if p.cadence != 1:
        problems.append(f"cadence {p.cadence} is not used (every frame is denoised); set cadence: 1")
    for key, value in (("video_blend", p.video_blend), ("flow_blend", p.flow_blend),
                       ("coherence.cross_frame.weight", p.coherence.cross_frame.weight),
                       ("coherence.fusion.weight", p.coherence.fusion.weight)):
        if is_on(value):
            problems.append(f"{key} works on the previous output, which a window does not use; remove it")
    for index, unit in enumerate(p.controlnet):
        if unit.input == "loopback":
            problems.append(f"controlnet.{index}.input loopback: give the unit a video or image folder")
    return problems
