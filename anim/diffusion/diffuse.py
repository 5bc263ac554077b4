"""One diffusion call (txt2img or img2img, optionally with ControlNet units) on shared components.

The diffusers pipelines are built once around the SDModels modules and reused every frame.
Noise comes from a CPU generator seeded per call, so a frame repeats bit for bit on the same device.
"""

from __future__ import annotations

import math
import warnings
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from anim.diffusion.ancestral import ancestral_eta as ancestral_noise
from anim.diffusion.control_modes import control_modes
from anim.diffusion.crossframe import CrossFrame, CrossFrameInput
from anim.diffusion.fusion import FusionInput, fused
from anim.diffusion.masked import MaskInput, masked
from anim.diffusion.noise import NoiseSettings, initial_noise
from anim.diffusion.samplers import make_scheduler, seed_scheduler
from anim.errors import InputError, ModelError


@dataclass
class ControlInput:
    """One ControlNet unit for one frame: model, control image (1,3,H,W) in [0,1], strength, step window and A1111's
    control mode (balanced | prompt | controlnet: anim.diffusion.control_modes)."""

    model: object
    image: torch.Tensor
    weight: float = 1.0
    guidance_start: float = 0.0
    guidance_end: float = 1.0
    control_mode: str = "balanced"


# the UNet settings a ControlNet's residuals and embeddings must share with the model's UNet
CONTROLNET_FIT_KEYS = ("addition_embed_type", "cross_attention_dim", "block_out_channels", "layers_per_block")


def effective_steps(steps: int, denoise: float) -> int:
    """Schedule length so that img2img runs at least one step (diffusers runs int(steps * denoise))."""
    steps = max(1, int(steps))
    if denoise >= 1.0 or int(steps * denoise) >= 1:
        return steps
    needed = math.ceil(1.0 / denoise)
    while int(needed * denoise) < 1:  # float rounding, e.g. 3 * (1/3) < 1
        needed += 1
    return needed


class PipelineCaller:
    """What Diffuser (SD1.5) and SDXLDiffuser share: the pipeline for a call (plain or ControlNet, cached per set
    of nets), and one call from embeddings with every per-call feature; subclasses build the pipelines."""

    def _call(self, embeds: dict, *, init, denoise, cfg_scale, steps, sampler, seed, width, height, controls,
              cross_frame, fusion, noise, eta, ancestral_eta, mask=None) -> torch.Tensor:
        """(1,3,H,W) float32 in [0,1]: `embeds` (the pipeline's prompt embedding arguments) rendered; `mask`
        (anim.diffusion.masked.MaskInput) restricts img2img's change to its area."""
        check_size(width, height)
        if init is not None and denoise <= 0:
            return init
        pipe = self._pipeline(img2img=init is not None, controls=controls or [])
        pipe.scheduler = make_scheduler(sampler, self.models.scheduler_config)
        seed_scheduler(pipe.scheduler, seed)
        kwargs = {**embeds, "guidance_scale": float(cfg_scale), "num_inference_steps": max(1, int(steps)),
                  "output_type": "pt", "generator": torch.Generator("cpu").manual_seed(int(seed))}
        kwargs.update(image_kwargs(init, denoise, steps, width, height, controls or []))
        if eta:
            kwargs["eta"] = float(eta)
        features = call_features(self, pipe.scheduler, cross_frame, fusion, pipe=pipe, controls=controls)
        start_noise = initial_noise(pipe, kwargs, noise, seed=seed, width=width, height=height,
                                    img2img=init is not None)
        ancestral = ancestral_noise(pipe.scheduler, ancestral_eta)
        restricted = masked(pipe, kwargs, mask) if mask is not None and init is not None else nullcontext()
        # the mask's add_noise wrapper goes on before the noise settings' one, so it sees their adjusted noise
        with torch.inference_mode(), warnings.catch_warnings(), features, restricted, start_noise, ancestral:
            warnings.filterwarnings("ignore", message="Should have ta>=t0")  # torchsde, harmless in img2img
            images = pipe(**kwargs).images
        self.calls += 1
        return images.to(self.models.device, torch.float32).clamp(0.0, 1.0)

    def _pipeline(self, *, img2img: bool, controls: list[ControlInput]):
        """The plain pipeline, or a ControlNet one cached per set of ControlNet models."""
        if not controls:
            return self.img2img if img2img else self.txt2img
        key = (img2img, *(id(c.model) for c in controls))
        if key not in self._control_pipes:
            self._control_pipes[key] = self._build_control_pipe(img2img, [c.model for c in controls])
        return self._control_pipes[key]


class Diffuser(PipelineCaller):
    """Callable that renders one image from conditioning; counts its pipeline calls in `self.calls`."""

    def __init__(self, models) -> None:
        from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionPipeline

        if models.is_sdxl:  # SDXL needs pooled embeddings and two encoders: anim.diffusion.sdxl
            raise ModelError(f"model {models.name} is SDXL; render it with anim.diffusion.sdxl.SDXLDiffuser")
        self.models = models
        self.txt2img = StableDiffusionPipeline(
            vae=models.vae, text_encoder=models.text_encoder, tokenizer=models.tokenizer, unet=models.unet,
            scheduler=make_scheduler("ddim", models.scheduler_config), safety_checker=None,
            feature_extractor=None, image_encoder=None, requires_safety_checker=False)
        self.img2img = StableDiffusionImg2ImgPipeline(**self._components(), requires_safety_checker=False)
        for pipe in (self.txt2img, self.img2img):
            pipe.set_progress_bar_config(disable=True)
        self._control_pipes: dict[tuple, object] = {}
        self.cross_frame: CrossFrame | None = None  # installed on the UNet the first time a call asks for it
        self.calls = 0

    def __call__(self, *, init: torch.Tensor | None, cond: torch.Tensor, uncond: torch.Tensor, denoise: float,
                 cfg_scale: float, steps: int, sampler: str, seed: int, width: int, height: int,
                 controls: list[ControlInput] | None = None, cross_frame: CrossFrameInput | None = None,
                 fusion: FusionInput | None = None, noise: NoiseSettings | None = None,
                 eta: float = 0.0, ancestral_eta: float = 1.0, mask: MaskInput | None = None) -> torch.Tensor:
        """(1,3,H,W) float32 in [0,1] on the device; init None -> txt2img, else img2img with strength=denoise;
        `cross_frame` (weight > 0 and anchors) turns on cross-frame attention for this call, `fusion` (weight > 0)
        flow-guided latent fusion, `noise` A1111's variation seed and noise multiplier, `eta` DDIM's eta."""
        if cond.shape != uncond.shape:
            raise ModelError(f"cond {tuple(cond.shape)} and uncond {tuple(uncond.shape)} differ; "
                             "build them with PromptEncoder.pair")
        return self._call({"prompt_embeds": cond, "negative_prompt_embeds": uncond}, init=init, denoise=denoise,
                          cfg_scale=cfg_scale, steps=steps, sampler=sampler, seed=seed, width=width, height=height,
                          controls=controls, cross_frame=cross_frame, fusion=fusion, noise=noise, eta=eta,
                          ancestral_eta=ancestral_eta, mask=mask)

    # ------------------------------------------------------------ pipelines

    def _components(self) -> dict:
        """The shared modules of the txt2img pipeline, to build sibling pipelines without copies."""
        return {k: v for k, v in self.txt2img.components.items() if k != "requires_safety_checker"}

    def _build_control_pipe(self, img2img: bool, nets: list):
        """A StableDiffusionControlNet(Img2Img)Pipeline sharing our components (MultiControlNet for several)."""
        from diffusers import (
            StableDiffusionControlNetImg2ImgPipeline,
            StableDiffusionControlNetPipeline,
        )

        for net in nets:
            check_controlnet_fits(net, self.models)
        cls = StableDiffusionControlNetImg2ImgPipeline if img2img else StableDiffusionControlNetPipeline
        pipe = cls(**self._components(), controlnet=nets[0] if len(nets) == 1 else nets, requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        return pipe


def image_kwargs(init, denoise, steps, width, height, controls) -> dict:
    """Init image / size / strength arguments, plus ControlNet arguments when units are given (the SD1.5 and SDXL
    ControlNet pipelines take the same names)."""
    if init is None:
        kwargs = {"width": int(width), "height": int(height)}
    else:
        kwargs = {"image": fit_image(init, width, height), "strength": min(float(denoise), 1.0),
                  "num_inference_steps": effective_steps(steps, float(denoise))}
    if controls:
        kwargs.update(control_kwargs(controls, "control_image" if init is not None else "image",
                                     [fit_image(c.image, width, height) for c in controls]))
    return kwargs


def control_kwargs(controls: list[ControlInput], image_key: str, images: list) -> dict:
    """The ControlNet arguments diffusers' pipelines share: each unit's control `images` under `image_key`, its
    weight and step window; plain values for one unit, lists for several (MultiControlNet)."""
    pick = (lambda values: values[0]) if len(controls) == 1 else (lambda values: values)  # noqa: E731
    return {image_key: pick(images),
            "controlnet_conditioning_scale": pick([float(c.weight) for c in controls]),
            "control_guidance_start": pick([float(c.guidance_start) for c in controls]),
            "control_guidance_end": pick([float(c.guidance_end) for c in controls])}


@contextmanager
def call_features(diffuser, scheduler, cross_frame: CrossFrameInput | None, fusion: FusionInput | None, *,
                  pipe=None, controls: list[ControlInput] | None = None):
    """Cross-frame attention and latent fusion for one call of `diffuser` (Diffuser or SDXLDiffuser), each only
    when its weight is > 0; the CrossFrame is installed on the UNet the first time and kept as diffuser.cross_frame.
    `controls` not all balanced: their control modes on `pipe`'s ControlNets."""
    with ExitStack() as stack:
        if controls:
            stack.enter_context(control_modes(pipe, controls))
        if cross_frame is not None and cross_frame.weight > 0 and cross_frame.anchor_latents:
            if diffuser.cross_frame is None:
                diffuser.cross_frame = CrossFrame(diffuser.models.unet)
            stack.enter_context(diffuser.cross_frame.active(cross_frame, scheduler))
        if fusion is not None and fusion.weight > 0:
            prediction = diffuser.models.scheduler_config.get("prediction_type", "epsilon")
            stack.enter_context(fused(scheduler, fusion, prediction))
        yield


def check_controlnet_fits(net, models) -> None:
    """One clear ModelError when a ControlNet was made for another base than the model (SD1.5 on SDXL or the
    reverse), instead of a shape error deep inside the UNet."""
    theirs, ours = dict(net.config), dict(models.unet.config)
    differ = [k for k in CONTROLNET_FIT_KEYS if _plain(theirs.get(k)) != _plain(ours.get(k))]
    if not differ:
        return
    name = getattr(net, "anim_source", None) or theirs.get("_name_or_path") or type(net).__name__
    net_base, model_base = _base(theirs), ("SDXL" if models.is_sdxl else "SD1.5")
    if net_base != model_base:
        raise ModelError(f"ControlNet {name} is an {net_base} ControlNet and does not fit the {model_base} model "
                         f"{models.name}; use {model_base} ControlNets with {model_base} models")
    key = differ[0]
    raise ModelError(f"ControlNet {name} does not fit model {models.name} ({key} {theirs.get(key)} vs "
                     f"{ours.get(key)}); use a ControlNet made for this model's base")


def _base(config: dict) -> str:
    """'SDXL' for a ControlNet with SDXL's added text/time embedding, else 'SD1.5'."""
    return "SDXL" if config.get("addition_embed_type") == "text_time" else "SD1.5"


def _plain(value):
    """Config values compared as plain data (lists and tuples alike)."""
    return tuple(value) if isinstance(value, (list, tuple)) else value


def check_size(width: int, height: int) -> None:
    """SD needs sizes divisible by 8 (the VAE's downsampling)."""
    if int(width) % 8 or int(height) % 8 or width <= 0 or height <= 0:
        raise InputError(f"size {width}x{height}: width and height must be positive multiples of 8")


def fit_image(image: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """An image tensor (1,3,H,W) in [0,1] resized to the render size when it differs."""
    if image.ndim != 4 or image.shape[1] != 3:
        raise InputError(f"image tensor has shape {tuple(image.shape)}; expected (1, 3, H, W)")
    if image.shape[-2:] == (int(height), int(width)):
        return image
    resized = F.interpolate(image.float(), size=(int(height), int(width)), mode="bilinear",
                            align_corners=False, antialias=True)
    return resized.clamp(0.0, 1.0)
