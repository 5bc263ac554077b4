"""One AnimateDiff window: a run of frames denoised together by a UNet with motion modules (diffusers'
AnimateDiffVideoToVideo(ControlNet)Pipeline), video-to-video.

The window's first `fixed` frames are already rendered (the previous window's last frames, as their PNGs hold
them): after every step their latents are put back at the next step's noise level, as diffusers' inpainting
pipelines do with the kept region, so the motion modules see them and carry their look into the new frames,
and nothing the window makes replaces a frame on disk. Each frame has its own prompt conditioning (a UNet and
ControlNet pre-hook hands them in per frame) and its own noise from its seed, so a window is the same
whichever run renders it: resume is exact at window boundaries.
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from anim.diffusion.ancestral import ancestral_eta
from anim.diffusion.control_modes import control_modes
from anim.diffusion.diffuse import ControlInput, check_controlnet_fits, check_size, control_kwargs, effective_steps
from anim.diffusion.samplers import make_scheduler, seed_scheduler


@dataclass
class Window:
    """What one window needs. Tensors are per frame: clean latents (F, 4, h, w), noise (F, 4, h, w),
    conditioning (F, 77, C) each; controls: one ControlInput per unit whose image is (F, 3, H, W)."""

    latents: torch.Tensor
    noise: torch.Tensor
    cond: torch.Tensor
    uncond: torch.Tensor
    fixed: int
    denoise: float
    cfg_scale: float
    steps: int
    sampler: str
    seed: int
    width: int
    height: int
    controls: list[ControlInput] = field(default_factory=list)
    eta: float = 0.0  # DDIM's eta
    ancestral_eta: float = 1.0  # Euler a's fresh noise per step (anim.diffusion.ancestral)


class WindowDiffuser:
    """Renders Windows with one motion UNet shared by the plain and the ControlNet pipelines; `calls` counts."""

    def __init__(self, models, unet) -> None:
        from diffusers import AnimateDiffVideoToVideoPipeline

        self.models, self.unet = models, unet
        self._parts = dict(vae=models.vae, text_encoder=models.text_encoder, tokenizer=models.tokenizer, unet=unet,
                           motion_adapter=None, scheduler=make_scheduler("ddim", models.scheduler_config))
        self.plain = AnimateDiffVideoToVideoPipeline(**self._parts)
        self.plain.set_progress_bar_config(disable=True)
        self._control_pipes: dict[tuple, object] = {}
        self.calls = 0

    def __call__(self, window: Window) -> torch.Tensor:
        """(F, 3, H, W) float32 in [0, 1]: every frame of the window (the fixed ones included, as decoded)."""
        check_size(window.width, window.height)
        pipe = self._pipeline(window.controls)
        pipe.scheduler = make_scheduler(window.sampler, self.models.scheduler_config)
        seed_scheduler(pipe.scheduler, window.seed)
        steps = effective_steps(window.steps, window.denoise)
        timesteps = _timesteps(pipe, steps, window.denoise)
        x0 = window.latents.to(self.unet.device, self.unet.dtype)
        noise = window.noise.to(x0.device, x0.dtype)
        start = pipe.scheduler.add_noise(x0, noise, timesteps[:1].repeat(x0.shape[0]))
        kwargs = {
            "latents": start.permute(1, 0, 2, 3).unsqueeze(0), "prompt_embeds": window.cond[:1],
            "negative_prompt_embeds": window.uncond[:1], "guidance_scale": float(window.cfg_scale),
            "num_inference_steps": steps, "strength": min(float(window.denoise), 1.0), "output_type": "pt",
            "height": int(window.height), "width": int(window.width),
            "generator": torch.Generator("cpu").manual_seed(int(window.seed)),
            "callback_on_step_end": _keep_fixed(x0, noise, window.fixed, timesteps),
            "decode_chunk_size": 4,
        }
        if window.controls:  # per unit the frames' control images, as lists of (3, H, W)
            kwargs.update(control_kwargs(window.controls, "conditioning_frames",
                                         [list(c.image.float().clamp(0, 1)) for c in window.controls]))
        if window.eta:
            kwargs["eta"] = float(window.eta)
        per_frame = torch.cat([window.uncond, window.cond]) if window.cfg_scale > 1.0 else window.cond
        modes, ancestral = control_modes(pipe, window.controls), ancestral_eta(pipe.scheduler, window.ancestral_eta)
        with torch.inference_mode(), warnings.catch_warnings(), self._per_frame(pipe, per_frame), modes, ancestral:
            warnings.filterwarnings("ignore", message="Should have ta>=t0")
            video = pipe(**kwargs).frames
        self.calls += 1
        return video[0].to(self.models.device, torch.float32).clamp(0.0, 1.0)

    def _pipeline(self, controls: list[ControlInput]):
        """The plain pipeline, or a ControlNet one cached per set of ControlNet models."""
        if not controls:
            return self.plain
        key = tuple(id(c.model) for c in controls)
        if key not in self._control_pipes:
            from diffusers import AnimateDiffVideoToVideoControlNetPipeline

            nets = [c.model for c in controls]
            for net in nets:
                check_controlnet_fits(net, self.models)
            pipe = AnimateDiffVideoToVideoControlNetPipeline(**self._parts, controlnet=nets[0] if len(nets) == 1
                                                             else nets)
            pipe.set_progress_bar_config(disable=True)
            self._control_pipes[key] = pipe
        return self._control_pipes[key]

    @contextmanager
    def _per_frame(self, pipe, embeds: torch.Tensor):
        """Each frame's own prompt conditioning: the pipeline repeats one prompt for every frame; the UNet and
        ControlNet calls get the per-frame tensor (same shape: CFG halves of frames) instead."""
        def swap(module, args, kwargs):
            given = kwargs.get("encoder_hidden_states")
            if given is not None and given.shape == embeds.shape:
                kwargs["encoder_hidden_states"] = embeds.to(given.device, given.dtype)
            return args, kwargs

        modules = [pipe.unet, *([pipe.controlnet] if getattr(pipe, "controlnet", None) is not None else [])]
        handles = [m.register_forward_pre_hook(swap, with_kwargs=True) for m in modules]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()


def _timesteps(pipe, steps: int, denoise: float) -> torch.Tensor:
    """The timesteps the pipeline will run for this strength (it computes them the same way again)."""
    scheduler = pipe.scheduler
    scheduler.set_timesteps(steps, device=pipe.unet.device)
    timesteps, _ = pipe.get_timesteps(steps, scheduler.timesteps, min(float(denoise), 1.0), pipe.unet.device)
    return timesteps


def _keep_fixed(x0: torch.Tensor, noise: torch.Tensor, fixed: int, timesteps: torch.Tensor):
    """A step-end callback: the fixed frames' latents set back to their clean latent noised to the next step's
    level (their own noise), so only the new frames are denoised."""
    def callback(pipe, index: int, timestep, tensors: dict) -> dict:
        if fixed <= 0 or index + 1 >= len(timesteps):
            return {}
        latents = tensors["latents"].clone()
        t_next = timesteps[index + 1].reshape(1).repeat(fixed)
        kept = pipe.scheduler.add_noise(x0[:fixed], noise[:fixed], t_next)
        latents[0, :, :fixed] = kept.permute(1, 0, 2, 3).to(latents.dtype)
        return {"latents": latents}

    return callback
