"""Speed and memory settings applied to loaded models (`performance:` in the preset).

Layout and fusion changes only pay on CUDA; on the CPU they are skipped so CPU renders keep their
bit-exact results. Each switch is independent and logged by the caller.
"""
from __future__ import annotations

import time
from typing import Any

import torch


def apply_performance(models: Any, perf: Any, controlnets: list | None = None) -> dict[str, float]:
    """Apply `perf` (anim.preset.Performance) to SDModels in place; returns seconds spent per step."""
    spent: dict[str, float] = {}
    cuda = models.device.type == "cuda"
    nets = [models.unet, models.vae, *(controlnets or [])]
    if cuda and perf.channels_last:
        started = time.perf_counter()
        for net in nets:
            net.to(memory_format=torch.channels_last)
        spent["channels_last"] = time.perf_counter() - started
    if cuda and perf.fuse_qkv:
        for net in (models.unet, models.vae):
            fuse = getattr(net, "fuse_qkv_projections", None)
            if fuse is not None:
                fuse()
    if perf.low_vram:
        enable_low_memory(models)
    if perf.compile:
        started = time.perf_counter()
        models.unet = torch.compile(models.unet, mode=perf.compile_mode, fullgraph=False, dynamic=False)
        spent["compile (lazy)"] = time.perf_counter() - started
    return spent


def enable_low_memory(models: Any) -> list:
    """VAE tiling + slicing and attention slicing: slower, but fits large frames in less memory; on CUDA
    also model CPU offload. Returns the offload hooks (empty off CUDA)."""
    models.vae.enable_tiling()
    models.vae.enable_slicing()
    models.unet.set_attention_slice("auto")
    return offload_models(models) if models.device.type == "cuda" else []


def offload_models(models: Any, device: Any = None) -> list:
    """Keep the text encoder(s), UNet and VAE in host memory and move each to `device` only while it runs,
    offloading the one before (accelerate's hooks, as diffusers' enable_model_cpu_offload chains them).

    ControlNets stay on the device: they alternate with the UNet every step, so offloading them would copy
    both every step.
    """
    from accelerate import cpu_offload_with_hook

    device = device or models.device
    hook, hooks = None, []
    for name in ("text_encoder", "text_encoder_2", "unet", "vae"):
        module = getattr(models, name, None)
        if module is None:
            continue
        _, hook = cpu_offload_with_hook(module, device, prev_module_hook=hook)
        hooks.append(hook)
    return hooks
