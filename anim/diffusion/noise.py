"""A1111's initial-noise settings on diffusers pipelines: variation seeds (the seed's noise slerped toward the
subseed's) and the img2img noise multiplier.

A1111 (modules/rng.py, ImageRNG.first) draws each image's noise (C, H, W) from its seed, and with a subseed and a
strength > 0 replaces it by slerp(strength, noise, subseed's noise), the slerp taken along dim 1 of (C, H, W)
with a plain mix when the two are nearly parallel (kept as A1111 has it, weights included). img2img then scales
that noise by `initial_noise_multiplier` before adding it to the init latent. Here the pipeline draws the seed's
noise as it always does; the call's scheduler is wrapped so the first `add_noise` (img2img's noising of the init)
gets the adjusted noise, and txt2img is handed the adjusted noise as its starting latents. With strength 0 and
multiplier 1 nothing is installed: frames are bit-identical to renders without these settings.
"""
from __future__ import annotations

from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch

from anim.diffusion.samplers import patched


@dataclass(frozen=True)
class NoiseSettings:
    """A frame's initial-noise settings: variation subseed (-1: none) and strength, img2img noise multiplier."""

    subseed: int = -1
    subseed_strength: float = 0.0
    multiplier: float = 1.0

    @property
    def varies(self) -> bool:
        return self.subseed >= 0 and self.subseed_strength != 0.0

    @property
    def active(self) -> bool:
        return self.varies or self.multiplier != 1.0


def slerp_a1111(val: float, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """A1111's slerp of two (C, H, W) noises: per (channel, column) along H; a straight mix (with A1111's weights:
    val on `low`) when they are almost parallel."""
    low_norm = low / torch.norm(low, dim=1, keepdim=True)
    high_norm = high / torch.norm(high, dim=1, keepdim=True)
    dot = (low_norm * high_norm).sum(1)
    if dot.mean() > 0.9995:
        return low * val + high * (1 - val)
    omega = torch.acos(dot)
    so = torch.sin(omega)
    return (torch.sin((1.0 - val) * omega) / so).unsqueeze(1) * low + (torch.sin(val * omega) / so).unsqueeze(1) * high


def seed_noise(seed: int, shape: tuple[int, ...], dtype=torch.float32) -> torch.Tensor:
    """The first noise a CPU generator seeded with `seed` draws (how anim and A1111's CPU source draw it)."""
    return torch.randn(shape, generator=torch.Generator("cpu").manual_seed(int(seed)), dtype=dtype)


def adjust(noise: torch.Tensor, settings: NoiseSettings) -> torch.Tensor:
    """(B, C, H, W) noise slerped toward the subseed's noise by the strength (per image), then multiplied."""
    out = noise
    if settings.varies:
        sub = seed_noise(settings.subseed, tuple(noise.shape[1:])).to(noise.device, torch.float32)
        out = torch.stack([slerp_a1111(float(settings.subseed_strength), n.float(), sub) for n in noise]).to(noise.dtype)
    if settings.multiplier != 1.0:
        out = out * float(settings.multiplier)
    return out


def txt2img_latents(seed: int, shape: tuple[int, ...], settings: NoiseSettings, dtype, device) -> torch.Tensor:
    """txt2img's starting noise with variation (the pipeline scales it by the scheduler's init sigma); the
    multiplier is img2img's only, as in A1111."""
    noise = seed_noise(seed, shape).to(device)
    return adjust(noise, NoiseSettings(settings.subseed, settings.subseed_strength, 1.0)).to(dtype)


@contextmanager
def img2img_noise(scheduler, settings: NoiseSettings):
    """For one img2img call: the scheduler's first add_noise (the init latent's noising) gets the adjusted noise;
    later calls (cross-frame anchors, fixed frames) are left alone. Put back after the block."""
    calls = {"n": 0}

    def wrap(original):
        def add_noise(original_samples, noise, timesteps):
            calls["n"] += 1
            if calls["n"] == 1:
                noise = adjust(noise, settings)
            return original(original_samples, noise, timesteps)
        return add_noise

    with patched(scheduler, "add_noise", wrap):
        yield


def initial_noise(pipe, kwargs: dict, settings: NoiseSettings | None, *, seed: int, width: int, height: int,
                  img2img: bool):
    """One call's initial-noise settings on a diffusers SD/SDXL pipeline: txt2img's starting latents put in
    `kwargs`, or img2img's first add_noise wrapped (the returned context); nothing when they change nothing."""
    if settings is None or not settings.active:
        return nullcontext()
    if img2img:
        return img2img_noise(pipe.scheduler, settings)
    if settings.varies:
        factor = pipe.vae_scale_factor
        shape = (1, pipe.unet.config.in_channels, int(height) // factor, int(width) // factor)
        kwargs["latents"] = txt2img_latents(seed, shape, settings, pipe.unet.dtype, pipe.unet.device)
    return nullcontext()
