"""The preset's sections (pydantic): motion, LoRA, ControlNet units, coherence, AnimateDiff, output and
performance, with the schedule types; anim.preset.schema assembles them into the Preset."""
from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from anim.keyframes.mask_expr import BUILTIN as MASK_BUILTIN  # {everywhere} {init_mask} {video_mask} {human_mask}

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


class Hybrid(_Section):
    """Deforum's hybrid video (2D/3D with init_video): the camera keeps moving the previous output, and the input
    video's own motion (estimated between input frames t-1 and t) moves it further; its frames can be blended in.
    Order per frame (Deforum's): camera warp, `before_motion` composite, hybrid motion, `normal` composite,
    colour/contrast/noise, img2img, `after_generation` composite, colour match. A comp mask decides, per pixel,
    how much of the input frame the composite takes (white keeps the image, black takes the input frame).
    With cadence, in-betweens follow the video's motion too (no composites, as in Deforum)."""

    motion: Literal["none", "optical_flow", "perspective", "affine"] = "none"
    use_prev_img: bool = False  # estimate from the (camera-warped) previous output to input t, not input t-1 to t
    flow_method: Literal["dis", "farneback"] = "dis"  # optical_flow: anim.motion.flow methods
    flow_factor: Sched = 1.0  # optical_flow: scale of the flow applied (Deforum's hybrid_flow_factor_schedule)
    flow_consistency: bool = False  # optical_flow: damp and reverse the flow where forward/backward disagree
    consistency_blur: float = Field(2.0, ge=0.0, le=100.0)  # px: Gaussian sigma of that reliability map
    composite: Literal["none", "normal", "before_motion", "after_generation"] = "none"
    comp_alpha: Sched = 0.5  # 0 = the previous output, 1 = the input frame (Deforum's hybrid_comp_alpha_schedule)
    # Deforum's hybrid_comp_mask_type: depth of the previous output / of the input frame (far = white, needs
    # motion.depth_model), a grey blend of the two (by comp_mask_alpha), or their grey difference
    comp_mask: Literal["none", "depth", "video_depth", "blend", "difference"] = "none"
    comp_mask_inverse: bool = False
    comp_mask_equalize: Literal["none", "before", "after", "both"] = "none"  # histogram equalise (PIL's)
    comp_mask_auto_contrast: bool = False  # stretch the mask between two percentiles:
    comp_mask_auto_contrast_low: Sched = 0.0  # ... this low one (0-100)
    comp_mask_auto_contrast_high: Sched = 100.0  # ... and this high one
    comp_mask_alpha: Sched = 0.5  # blend mask: 0 = the image's grey, 1 = the input frame's
    comp_mask_contrast: Sched = 1.0  # PIL's ImageEnhance.Contrast factor (1 = unchanged)

    @property
    def active(self) -> bool:
        """Whether hybrid video does anything (motion or compositing on)."""
        return self.motion != "none" or self.composite != "none"


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


MASK_FILLS = ("fill", "original", "latent_noise", "latent_nothing")  # A1111's inpainting_fill 0..3, in its order


class Mask(_Section):
    """Deforum's masks (A1111 inpainting with a normal model): white = the area that changes. The frame's mask is
    the `schedule` expression ({init_mask}, {video_mask}, {human_mask}, {everywhere}, {NAME} of `named`, [file];
    ! & | ^ \\), its added noise only inside the `noise_schedule` expression (default: the same mask)."""

    file: Optional[str] = None  # init mask: an image ({init_mask}), or a video (one mask frame per frame: {video_mask})
    video: Optional[str] = None  # a mask video beside an init mask image (Deforum video_mask_path): {video_mask}
    use_alpha: bool = False  # the init image's alpha channel is the init mask (Deforum use_alpha_as_mask)
    invert: bool = False  # invert the frame's mask and noise mask (Deforum invert_mask)
    contrast: float = Field(1.0, ge=0.0, le=10.0)  # of the init mask (Deforum mask_contrast_adjust)
    brightness: float = Field(1.0, ge=0.0, le=10.0)  # of the init mask (Deforum mask_brightness_adjust)
    blur_px: float = Field(4.0, ge=0.0, le=64.0)  # A1111 mask_blur: Gaussian sigma before the latent mask
    fill: Literal[MASK_FILLS] = "original"  # what the masked area starts as
    overlay: bool = True  # paste the init back outside the mask after decoding (A1111's overlay)
    overlay_blur_px: float = Field(4.0, ge=0.0, le=64.0)  # Gaussian sigma of the overlay's mask
    named: dict[str, str] = Field(default_factory=dict)  # NAME -> mask image, for {NAME} in the expressions
    schedule: Optional[TextSched] = None  # Deforum mask_schedule; default {video_mask} / {init_mask} / {everywhere}
    noise_schedule: Optional[TextSched] = None  # Deforum noise_mask_schedule; default: the mask itself
    human_model: Literal[0, 1] = 0  # {human_mask}: mediapipe selfie segmentation model (0 general, 1 landscape)

    @field_validator("named")
    @classmethod
    def _plain_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not str(name).isidentifier() or name in MASK_BUILTIN:
                raise ValueError(f"mask name {name!r} must be a plain word and not one of {', '.join(MASK_BUILTIN)}")
        return value

    @property
    def is_video(self) -> bool:
        """Whether `file` is a video (its frames are {video_mask}), judged by the file name."""
        from pathlib import Path

        return bool(self.file) and Path(self.file).suffix.lower() not in (
            ".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")

    @property
    def video_path(self) -> str | None:
        """The mask video ({video_mask}): `video`, else `file` when it is a video."""
        return self.video or (self.file if self.is_video else None)

    @property
    def has_init_mask(self) -> bool:
        """Whether there is an {init_mask}: an image `file` or the init image's alpha."""
        return bool(self.file and not self.is_video) or self.use_alpha

    def default_expression(self) -> str:
        """The frame mask without a schedule: the video's frame, the init mask, or the whole frame."""
        if self.video_path:
            return "{video_mask}"
        return "{init_mask}" if self.has_init_mask else "{everywhere}"

    def names(self) -> tuple[str, ...]:
        """Every {name} an expression may use with these settings."""
        out = ["everywhere", "human_mask", *self.named]
        if self.has_init_mask:
            out.append("init_mask")
        if self.video_path:
            out.append("video_mask")
        return tuple(out)


def is_on(schedule) -> bool:
    """Whether a weight schedule is anything but a plain 0 (a schedule text may reach 0 and leave it)."""
    return not (isinstance(schedule, (int, float)) and float(schedule) == 0.0)
