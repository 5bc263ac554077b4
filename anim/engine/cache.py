"""Models kept between renders: a batch worker renders many jobs, and a lockstep group's members one model."""
from __future__ import annotations

import threading

import torch

from anim.diffusion.conditioning import PromptEncoder
from anim.diffusion.diffuse import Diffuser
from anim.diffusion.sdxl import SDXLDiffuser, SDXLPromptEncoder
from anim.errors import ModelError
from anim.models import apply_loras, load_controlnet, load_models, resolve_device
from anim.models.performance import apply_performance, enable_low_memory


class ModelCache:
    """Loaded models kept between renders (a batch worker renders many jobs with one model)."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._bundle: tuple | None = None
        self._lock = threading.Lock()  # the members of a lockstep group ask from their own threads
        self._nets: dict[tuple, object] = {}
        self._windows: tuple | None = None  # (key, WindowDiffuser) for engine animatediff

    def get(self, preset, low_memory: bool = False):
        """(models, prompt encoder, diffuser) for this preset, reusing the last ones when they match.
        The device is resolved here, once, so every caller with the same preset hits the same entry."""
        device = str(resolve_device(preset.device))
        key = (preset.model, preset.vae, preset.allow_pickle, device, preset.dtype, low_memory,
               tuple((lora.path,) for lora in preset.loras), preset.performance.model_dump_json())
        with self._lock:
            if key != self._key:
                self._bundle, self._key, self._nets, self._windows = None, None, {}, None  # free the old first
                self._bundle, self._key = _load_bundle(preset, device, low_memory), key
            return self._bundle

    def controlnet(self, source: str, *, device, dtype, allow_pickle: bool = False, performance=None):
        """A ControlNet loaded once and shared by every run that names it: a lockstep group then batches one
        ControlNet call per step for all its members, and the weights sit in memory once."""
        key = (source, str(device), str(dtype), allow_pickle)
        with self._lock:
            if key not in self._nets:
                net = load_controlnet(source, device=device, dtype=dtype, allow_pickle=allow_pickle)
                if performance is not None and getattr(performance, "channels_last", False) \
                        and torch.device(device).type == "cuda":
                    net.to(memory_format=torch.channels_last)
                self._nets[key] = net
            return self._nets[key]


    def animatediff(self, preset, models):
        """The WindowDiffuser of `models` (got from `get`) with the preset's motion adapter, built once."""
        from anim.diffusion.animatediff import WindowDiffuser
        from anim.models.motion_adapter import load_motion_adapter, motion_unet

        if models.is_sdxl:
            raise ModelError(f"engine animatediff: model {models.name} is SDXL; AnimateDiff motion modules here "
                             "fit SD1.5 models")
        key = (id(models), preset.motion_adapter, preset.allow_pickle)
        with self._lock:
            if self._windows is None or self._windows[0] != key:
                self._windows = None
                adapter = load_motion_adapter(preset.motion_adapter, device=models.device, dtype=models.dtype,
                                              allow_pickle=preset.allow_pickle)
                self._windows = (key, WindowDiffuser(models, motion_unet(models.unet, adapter)))
            return self._windows[1]


def _load_bundle(p, device_name: str, low_memory: bool):
    """Load the models of a preset and wrap them for the loop (SD1.5 or SDXL encoder and diffuser)."""
    models = load_models(p.model, vae=p.vae, allow_pickle=p.allow_pickle, device=device_name, dtype=p.dtype)
    if p.loras:
        apply_loras(models, [{"path": lora.path, "weight": 1.0} for lora in p.loras], allow_pickle=p.allow_pickle)
    apply_performance(models, p.performance)
    if low_memory and not p.performance.low_vram:  # low_vram already did it (offload hooks must not stack)
        enable_low_memory(models)
    if models.is_sdxl:
        return models, SDXLPromptEncoder.from_models(models), SDXLDiffuser(models)
    return models, PromptEncoder.from_models(models), Diffuser(models)
