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
    """Loaded models kept between renders (a batch worker renders many jobs with one model); a render with a
    checkpoint_schedule keeps every model it names."""

    def __init__(self) -> None:
        self._bundles: dict[tuple, tuple] = {}  # load key -> (models, prompt encoder, diffuser)
        self._lock = threading.Lock()  # the members of a lockstep group ask from their own threads
        self._nets: dict[tuple, object] = {}
        self._windows: tuple | None = None  # (key, WindowDiffuser) for engine animatediff

    def get(self, preset, low_memory: bool = False, tag_loras: tuple = ()):
        """(models, prompt encoder, diffuser) for this preset, reusing the last ones when they match.
        The device is resolved here, once, so every caller with the same preset hits the same entry.
        `tag_loras`: the files of the prompts' <lora:NAME> tags, loaded as adapters after the preset's `loras`."""
        return self.bundles(preset, (preset.model,), low_memory, tag_loras)[preset.model]

    def bundles(self, preset, names, low_memory: bool = False, tag_loras: tuple = ()) -> dict[str, tuple]:
        """{model name: (models, prompt encoder, diffuser)} for the models `names` (a checkpoint schedule's, else
        `model:` alone), each loaded once with the same VAE, LoRAs and performance settings and kept while the
        next call names it too; models no longer named are freed before any new one loads. All must be one family
        (SD1.5 or SDXL): ModelError naming both otherwise."""
        device = str(resolve_device(preset.device))
        tag_loras = tuple(str(path) for path in tag_loras)
        keys = {name: _bundle_key(preset, name, device, low_memory, tag_loras) for name in dict.fromkeys(names)}
        with self._lock:
            if set(keys.values()) != set(self._bundles):
                kept = {key: self._bundles[key] for key in keys.values() if key in self._bundles}
                self._bundles, self._nets, self._windows = kept, {}, None  # free the others before loading
            for name, key in keys.items():
                if key not in self._bundles:
                    bundle = _load_bundle(preset, device, low_memory, tag_loras, model=name)
                    _check_family(bundle[0], [b[0] for b in self._bundles.values()])
                    self._bundles[key] = bundle
            return {name: self._bundles[key] for name, key in keys.items()}

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


def _bundle_key(p, name: str, device: str, low_memory: bool, tag_loras: tuple[str, ...]) -> tuple:
    """What a loaded model depends on: its name, the preset's VAE, pickle permission, device, dtype, LoRA files
    (preset and prompt tags), performance switches and low_memory."""
    return (name, p.vae, p.allow_pickle, device, p.dtype, low_memory, tuple((lora.path,) for lora in p.loras),
            tag_loras, p.performance.model_dump_json())


def _check_family(models, others) -> None:
    """Refuse a model of another family than those already loaded for the same render (checkpoint_schedule)."""
    other = next((m for m in others if m.is_sdxl != models.is_sdxl), None)
    if other is not None:
        family = {True: "SDXL", False: "SD1.5"}
        raise ModelError(f"checkpoint_schedule: {models.name} is {family[models.is_sdxl]} but {other.name} is "
                         f"{family[other.is_sdxl]}; the models of one render must be all SD1.5 or all SDXL (they "
                         "share the VAE, LoRA and ControlNet settings)")


def _load_bundle(p, device_name: str, low_memory: bool, tag_loras: tuple[str, ...] = (), model: str | None = None):
    """Load `model` (default: the preset's) with the preset's settings and wrap it for the loop (SD1.5 or SDXL
    encoder and diffuser); adapters lora0, lora1, ... are the preset's `loras`, then the prompts' tagged LoRAs."""
    models = load_models(model or p.model, vae=p.vae, allow_pickle=p.allow_pickle, device=device_name,
                         dtype=p.dtype)
    files = [lora.path for lora in p.loras] + list(tag_loras)
    if files:
        apply_loras(models, [{"path": path, "weight": 1.0} for path in files], allow_pickle=p.allow_pickle)
    apply_performance(models, p.performance)
    if low_memory and not p.performance.low_vram:  # low_vram already did it (offload hooks must not stack)
        enable_low_memory(models)
    if models.is_sdxl:
        return models, SDXLPromptEncoder.from_models(models), SDXLDiffuser(models)
    return models, PromptEncoder.from_models(models), Diffuser(models)
