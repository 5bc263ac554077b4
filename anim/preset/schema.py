"""The preset schema (pydantic): every key, its type, range and default; unknown keys are errors."""
from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from anim.errors import PresetError
from anim.preset.samplers import sampler_by_name

# A scheduled value: Deforum string, bare number, or mapping frame -> number | expr | {value, ease}.
Sched = Union[float, int, str, dict[Union[int, str], Any]]
# A text schedule (anim.keyframes.texts): Deforum string '0: ("Euler a"), 30: ("DPM++ 2M")' or mapping frame -> text.
TextSched = Union[str, dict[Union[int, str], Any]]


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
    enable_perspective_flip: bool = False  # Deforum's perspective flip (2D and 3D), angles in degrees
    perspective_flip_theta: Sched = 0.0  # about the view axis (positive: clockwise on screen)
    perspective_flip_phi: Sched = 0.0  # about the horizontal axis (positive: the bottom edge widens)
    perspective_flip_gamma: Sched = 0.0  # about the vertical axis (positive: the left edge grows)
    perspective_flip_fv: Sched = 53.0  # field of view of the flip's camera
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
    control_mode: Literal["balanced", "prompt", "controlnet"] = "balanced"  # A1111 Control Mode
    processor_res: Optional[int] = Field(None, ge=64, le=2048)  # annotator resolution (short side, px)
    pixel_perfect: bool = False  # annotate at the render size (A1111's Pixel Perfect; processor_res is then unused)
    threshold_a: Optional[float] = None  # A1111's annotator sliders: canny low/high, mlsd value/distance thresholds
    threshold_b: Optional[float] = None


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


class Interpolate(_Section):
    """output.interpolate: `factor`-1 new frames between each pair (anim.finish.interpolate)."""

    factor: int = Field(2, ge=2, le=8)
    engine: Literal["ffmpeg", "rife", "film"] = "ffmpeg"  # ffmpeg: minterpolate, no weights; rife: local weights
    model: Optional[str] = None  # engine rife: RIFE 4.25/4.26 weights (flownet.pkl needs allow_pickle, .safetensors)
    slow_motion: bool = False  # keep the fps: the video lasts `factor` times longer, its sound stretched to match

    @model_validator(mode="after")
    def _engine_and_model(self) -> "Interpolate":
        if self.engine == "film":
            raise ValueError("engine film is not available: no maintained package provides FILM's architecture for "
                             "PyTorch (the reference is TensorFlow); use engine rife (local RIFE weights) or ffmpeg")
        if self.engine == "rife" and not self.model:
            raise ValueError("engine rife needs model: the path of RIFE 4.25/4.26 weights (flownet.pkl or a "
                             ".safetensors of it); nothing is downloaded")
        if self.engine == "ffmpeg" and self.model:
            raise ValueError("engine ffmpeg takes no model; remove model or use engine rife")
        return self


class Upscale(_Section):
    """output.upscale: frames_upscaled/ at `factor` times the size, the video made from them (anim.finish.upscale)."""

    factor: Literal[2, 4] = 2
    model: str = "lanczos"  # lanczos | an ESRGAN-family .safetensors/.pth (spandrel reads the architecture)
    tile: int = Field(256, ge=0, le=8192)  # model tiles of this many input pixels a side (0 = whole frame)


class Output(_Section):
    """Video encoding of the finished frames, and the finishing steps (upscale, interpolate, formats)."""

    crf: int = Field(18, ge=0, le=51)
    audio: Optional[str] = None
    video: bool = True
    codec: Literal["h264", "h265"] = "h264"  # of video.mp4
    formats: list[Literal["mp4", "webm", "gif", "prores"]] = Field(default_factory=lambda: ["mp4"], min_length=1)
    gif_max_side: int = Field(512, ge=16, le=8192)  # video.gif scaled down (never up) to this many pixels a side
    interpolate: Optional[Interpolate] = None
    upscale: Optional[Upscale] = None

    @field_validator("formats")
    @classmethod
    def _each_format_once(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"lists a format twice ({', '.join(value)})")
        return value


class Preset(_Section):
    """A whole render. Names follow Deforum where Deforum has one (see DESIGN.md)."""

    model: str = "tiny"
    vae: Optional[str] = None
    engine: Literal["frames", "animatediff"] = "frames"  # frames: one img2img per frame; animatediff: windows
    motion_adapter: Optional[str] = None  # engine animatediff: MotionAdapter hub id | folder | file | tiny
    animatediff: AnimateDiff = Field(default_factory=AnimateDiff)
    loras: list[LoRA] = Field(default_factory=list)
    lora_dir: Optional[Union[str, list[str]]] = None  # where <lora:NAME> tags look (A1111's --lora-dir); None:
    # models/Lora and models/LyCORIS under the current directory (anim.preset.lora_files)
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
    subseed: Sched = -1  # A1111 variation seed (-1: none); a schedule (Deforum's subseed_schedule)
    subseed_strength: Sched = 0.0  # 0 = the seed's noise, 1 = the subseed's (slerp between, A1111's)
    sampler: str = "euler_a"  # anim's name or A1111's label ("DPM++ 2M Karras")
    sampler_schedule: Optional[TextSched] = None  # Deforum's: '0: ("Euler a"), 30: ("DPM++ 2M Karras")', held
    checkpoint_schedule: Optional[TextSched] = None  # Deforum's: '0: ("a.safetensors"), 100: ("b")', each kept loaded
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
    clip_skip: Sched = 1  # A1111 "Clip skip": 1 = last CLIP layer, 2 = the one before (SD1.5 only)
    noise_multiplier: Sched = 1.0  # A1111's img2img initial noise multiplier (Deforum's noise_multiplier_schedule)
    ddim_eta: Sched = 0.0  # DDIM's eta (0 = deterministic); Deforum's ddim_eta_schedule
    reroll_blank_frames: Literal["ignore", "reroll", "interrupt"] = "ignore"  # an all-black frame (Deforum's)
    reroll_patience: int = Field(10, ge=1, le=1000)  # rerolls (seed + 1 each) before giving up
    noise: Sched = 0.02  # blend amount of seeded noise
    noise_type: Literal["gaussian", "perlin"] = "gaussian"
    perlin_octaves: int = Field(4, ge=1, le=7)  # perlin noise: octaves and persistence (Deforum's)
    perlin_persistence: float = Field(0.5, ge=0.0, le=1.0)
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
        return sampler_by_name(value)

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
    def _subseed_given(self) -> "Preset":
        if isinstance(self.subseed, (int, float)) and int(self.subseed) < 0 and is_on(self.subseed_strength):
            raise ValueError("subseed_strength is set but subseed is -1: give the variation seed (subseed: 1234)")
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
        "aspect_ratio", "perspective_flip_theta", "perspective_flip_phi", "perspective_flip_gamma",
        "perspective_flip_fv")),
    (("denoise",), "denoise", "float"),
    (("cfg_scale",), "cfg_scale", "float"),
    (("clip_skip",), "clip_skip", "int"),
    (("subseed",), "subseed", "int"),
    (("subseed_strength",), "subseed_strength", "float"),
    (("noise_multiplier",), "noise_multiplier", "float"),
    (("ddim_eta",), "ddim_eta", "float"),
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
    if p.checkpoint_schedule is not None:
        problems.append("checkpoint_schedule is not used (the motion UNet is built on one model); remove it and "
                        "set model:")
    return problems
