"""The preset schema (pydantic): every key, its type, range and default; unknown keys are errors."""
from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from anim.errors import PresetError
from anim.preset.samplers import sampler_by_name
from anim.preset.sections import (  # noqa: F401  (re-exported: the sections are part of the schema)
    AnimateDiff,
    Coherence,
    ControlUnit,
    CrossFrame,
    Fusion,
    Hybrid,
    Interpolate,
    LoRA,
    Mask,
    Motion,
    Output,
    Performance,
    Sched,
    TextSched,
    Upscale,
    _Section,
    is_on,
)


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
    hybrid: Hybrid = Field(default_factory=Hybrid)  # Deforum's hybrid video (needs init_video)
    mask: Optional[Mask] = None  # Deforum's masks: masked img2img, noise masks (anim.diffusion.masked)

    denoise: Sched = 0.45  # img2img denoising strength (A1111 sense)
    cfg_scale: Sched = 7.0
    clip_skip: Sched = 1  # A1111 "Clip skip": 1 = last CLIP layer, 2 = the one before (SD1.5 only)
    noise_multiplier: Sched = 1.0  # A1111's img2img initial noise multiplier (Deforum's noise_multiplier_schedule)
    ddim_eta: Sched = 0.0  # DDIM's eta (0 = deterministic); Deforum's ddim_eta_schedule
    ancestral_eta: Sched = 1.0  # Euler a's fresh noise per step (0 = plain Euler); Deforum's ancestral_eta_schedule
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
    # video_input (Deforum's "Video Input"): LAB match to the input video's frame, taken afresh at every key frame
    # that is a multiple of color_coherence_every_n (Deforum's color_coherence_video_every_N_frames)
    color_coherence: Literal["none", "lab", "hsv", "rgb", "video_input"] = "lab"
    color_coherence_every_n: int = Field(1, ge=1, le=1_000_000)
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
    def _video_colours_need_a_video(self) -> "Preset":
        if self.color_coherence == "video_input" and not self.init_video:
            raise ValueError("color_coherence video_input matches the input video's colours: it needs init_video")
        if self.color_coherence == "video_input" and self.color_reference:
            raise ValueError("color_coherence video_input takes its reference from the input video: remove "
                             "color_reference (or use color_coherence: lab)")
        return self

    @model_validator(mode="after")
    def _hybrid_needs(self) -> "Preset":
        problems = hybrid_conflicts(self)
        if problems:
            raise ValueError("hybrid: " + "; ".join(problems))
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
    def _mask_needs(self) -> "Preset":
        if self.mask is None:
            return self
        if self.engine == "animatediff":
            raise ValueError("mask: engine animatediff does not take masks; use engine: frames")
        if self.mask.use_alpha and not self.init_image:
            raise ValueError("mask.use_alpha reads the init image's alpha channel: set init_image")
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
    (("ancestral_eta",), "ancestral_eta", "float"),
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
    (("hybrid", "flow_factor"), "hybrid_flow_factor", "float"),
    (("hybrid", "comp_alpha"), "hybrid_comp_alpha", "float"),
    (("hybrid", "comp_mask_alpha"), "hybrid_comp_mask_alpha", "float"),
    (("hybrid", "comp_mask_contrast"), "hybrid_comp_mask_contrast", "float"),
    (("hybrid", "comp_mask_auto_contrast_low"), "hybrid_comp_mask_auto_contrast_low", "float"),
    (("hybrid", "comp_mask_auto_contrast_high"), "hybrid_comp_mask_auto_contrast_high", "float"),
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


def hybrid_conflicts(p: "Preset") -> list[str]:
    """What a preset with hybrid video on asks for that does not go with it. A hybrid run keeps the keyframed
    camera loop (the init is the previous output) and uses the input video only as the hybrid source, so the
    video-input blends, which start from the input frame, do not apply."""
    if not p.hybrid.active:
        return []
    if not p.init_video:
        return ["hybrid motion/composite follow the input video: set init_video (Deforum's video_init_path)"]
    problems = []
    if p.cadence > 1 and p.cadence_flow and p.hybrid.motion != "none":
        problems.append("cadence_flow already moves in-betweens along the flow between the diffused frames; "
                        "with hybrid motion set cadence_flow: false (in-betweens then follow the input video)")
    if p.hybrid.comp_mask in ("depth", "video_depth") and p.motion.depth_model == "flat":
        problems.append(f"comp_mask {p.hybrid.comp_mask} needs a depth model: set motion.depth_model (tiny, a "
                        "folder or a hub id); a flat scene gives no mask")
    if p.engine != "frames":
        problems.append("engine animatediff does not use the previous output; use engine: frames")
    for key, value in (("video_blend", p.video_blend), ("flow_blend", p.flow_blend),
                       ("coherence.fusion.weight", p.coherence.fusion.weight)):
        if is_on(value):
            problems.append(f"{key} blends into the input frame, which a hybrid run does not start from; remove it")
    return problems
