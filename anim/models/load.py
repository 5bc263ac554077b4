"""Every model load: built-in tiny, diffusers folder, single-file checkpoint, hub id; device and dtype.

Sources are turned into a local folder or file first, then loaded by one code path each, offline.
Pickled weights (.ckpt/.pt/.bin/.pth) are refused unless the user sets allow_pickle.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from anim.errors import ModelError
from anim.models.checkpoints import (
    PICKLE_SUFFIXES,
    SAFE_SUFFIXES,
    load_single_file,
    one_line,
    pickle_refusal,
    vae_from_file,
)
from anim.models.configs import quiet_progress, transformers_dtype
from anim.models.controlnet_file import controlnet_from_file
from anim.models.hashing import folder_hash, short_hash
from anim.models.memory import own_memory
from anim.models.tiny import tiny_controlnet_dir, tiny_model_dir, tiny_sdxl_controlnet_dir
from anim.models.variants import variant_kwargs

log = logging.getLogger("anim")
DTYPES = {"fp16": torch.float16, "float16": torch.float16, "half": torch.float16,
          "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
          "fp32": torch.float32, "float32": torch.float32, "float": torch.float32}
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
HUB_PATTERNS = ["model_index.json", "*/config.json", "scheduler/*.json", "tokenizer*/*",
                "unet/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.safetensors",
                "text_encoder*/model.safetensors", "*.safetensors.index.json", "*/*-of-*.safetensors"]
WAY_OUT = "pass a local diffusers folder or .safetensors file, or `model: tiny`"
TINY_CONTROLNETS = {"tiny": tiny_controlnet_dir, "tiny-sdxl": tiny_sdxl_controlnet_dir}  # built-in, random weights



@dataclass
class SDModels:
    """The loaded components of one Stable Diffusion model, shared by every pipeline built on it."""

    unet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    scheduler_config: dict
    device: torch.device
    dtype: torch.dtype
    name: str
    model_hash: str
    text_encoder_2: Any = None
    tokenizer_2: Any = None
    arch: str = "sd15"
    source: str = ""
    lora_names: list[str] = field(default_factory=list)

    @property
    def is_sdxl(self) -> bool:
        """True for SDXL models (two text encoders, added time/text conditioning)."""
        return self.arch == "sdxl"


# ---------------------------------------------------------------- device and dtype


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' picks cuda, then mps, then cpu; an explicit device must exist."""
    name = str(device or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ModelError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"device {device!r} requested but CUDA is not available; use `device: auto` or cpu")
    return dev


def resolve_dtype(device: torch.device | str, dtype: str | torch.dtype | None) -> torch.dtype:
    """'fp16' / 'bf16' / 'fp32'; default fp16 on CUDA, fp32 elsewhere (fp16 on CPU falls back to fp32)."""
    dev = torch.device(device) if isinstance(device, str) else device
    if isinstance(dtype, torch.dtype):
        chosen = dtype
    elif dtype is None or str(dtype).lower() == "auto":
        chosen = torch.float16 if dev.type == "cuda" else torch.float32
    elif str(dtype).lower() in DTYPES:
        chosen = DTYPES[str(dtype).lower()]
    else:
        raise ModelError(f"unknown dtype {dtype!r}; valid: fp16, bf16, fp32")
    if chosen == torch.float16 and dev.type == "cpu":
        log.warning("fp16 is not supported well on CPU; using fp32")
        chosen = torch.float32
    return chosen


# ---------------------------------------------------------------- public loader


def load_models(model: str, *, vae: str | None = None, allow_pickle: bool = False, device: str = "auto",
                dtype: str | torch.dtype | None = None, config_dir: str | Path | None = None,
                loras: list | None = None, cache_dir: Path | None = None) -> SDModels:
    """Load `tiny`, a diffusers folder, an LDM single file (.safetensors) or a hub id onto the device.

    config_dir gives single-file checkpoints an architecture config folder (default: the generated
    SD1.5/SDXL one); vae overrides the VAE; loras is a list of {path, weight}.
    """
    dev = resolve_device(device)
    dt = resolve_dtype(dev, dtype)
    quiet_progress()
    parts = _load_parts(str(model), allow_pickle=allow_pickle, dtype=dt, config_dir=config_dir, cache_dir=cache_dir)
    if vae:
        parts["vae"] = _load_vae(str(vae), parts["arch"], allow_pickle=allow_pickle, dtype=dt, config_dir=config_dir)
    models = SDModels(
        unet=parts["unet"], vae=parts["vae"], text_encoder=parts["text_encoder"], tokenizer=parts["tokenizer"],
        scheduler_config=parts["scheduler_config"], device=dev, dtype=dt, name=parts["name"],
        model_hash=parts["hash"], text_encoder_2=parts.get("text_encoder_2"),
        tokenizer_2=parts.get("tokenizer_2"), arch=parts["arch"], source=parts["source"])
    _to_device(models)
    if loras:
        from anim.models.loras import apply_loras

        apply_loras(models, loras, allow_pickle=allow_pickle)
    return models


def _load_parts(model: str, *, allow_pickle: bool, dtype, config_dir, cache_dir) -> dict:
    """Dispatch on the kind of source and return the component dict plus name/hash/source."""
    if model == "tiny":
        folder = tiny_model_dir(cache_dir)
        return {**_load_folder(folder, allow_pickle=False, dtype=dtype), "name": "tiny", "source": "tiny"}
    path = Path(model).expanduser()
    if path.is_dir():
        return {**_load_folder(path, allow_pickle=allow_pickle, dtype=dtype), "name": path.name, "source": str(path)}
    if path.is_file() or path.suffix.lower() in (*PICKLE_SUFFIXES, *SAFE_SUFFIXES):
        parts = load_single_file(path, allow_pickle=allow_pickle, dtype=dtype, config_dir=config_dir)
        return {**parts, "name": path.stem, "hash": short_hash(path), "source": str(path)}
    if HUB_ID.match(model) and not model.startswith("."):
        folder = _hub_snapshot(model, allow_pickle=allow_pickle)
        return {**_load_folder(folder, allow_pickle=allow_pickle, dtype=dtype), "name": model, "source": model}
    raise ModelError(f"model not found: {model}; {WAY_OUT}, or a hub id like owner/name")


def _to_device(models: SDModels) -> None:
    """Move every module to the models' device (own, aligned memory on CPU) and put it in eval mode."""
    for module in (models.unet, models.vae, models.text_encoder, models.text_encoder_2):
        if module is None:
            continue
        module.to(models.device)
        if models.device.type == "cpu":
            own_memory(module)
        module.eval()


# ---------------------------------------------------------------- diffusers folders and the hub


def _refuse_pickled_folder(path: Path, allow_pickle: bool) -> None:
    """A folder whose weights exist only as pickles needs the user's opt-in."""
    if allow_pickle:
        return
    for sub in ("unet", "vae", "text_encoder", "text_encoder_2"):
        folder = path / sub
        if folder.is_dir() and not any(folder.glob("*.safetensors")):
            pickles = [p for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES]
            if pickles:
                raise pickle_refusal(pickles[0])


def _load_folder(path: Path, *, allow_pickle: bool, dtype: torch.dtype) -> dict:
    """Load the components of a diffusers pipeline folder (needs model_index.json)."""
    index_file = path / "model_index.json"
    if not index_file.is_file():
        raise ModelError(f"folder {path} has no model_index.json, so it is not a diffusers pipeline folder; "
                         "pass the folder that holds it, a .safetensors file, or `model: tiny`")
    index = json.loads(index_file.read_text(encoding="utf-8"))
    arch = "sdxl" if (index.get("text_encoder_2") or [None])[0] else "sd15"
    _refuse_pickled_folder(path, allow_pickle)
    try:
        parts = _folder_modules(path, arch, allow_pickle=allow_pickle, dtype=dtype)
    except Exception as exc:
        reason = one_line(exc, 160)
        raise ModelError(f"could not load the diffusers folder {path} ({reason})") from None
    sched_file = path / "scheduler" / "scheduler_config.json"
    if sched_file.is_file():
        parts["scheduler_config"] = json.loads(sched_file.read_text(encoding="utf-8"))
    else:
        from anim.models.configs import SD15_SCHEDULER

        parts["scheduler_config"] = dict(SD15_SCHEDULER)
    parts.update(arch=arch, hash=folder_hash(path))
    return parts


def _folder_modules(path: Path, arch: str, *, allow_pickle: bool, dtype: torch.dtype) -> dict:
    """from_pretrained each component from its subfolder, local files only (fp16-variant-only ones too)."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    common = {"local_files_only": True, "use_safetensors": None if allow_pickle else True}

    def load(cls, sub: str, stem: str = "diffusion_pytorch_model", **kwargs):
        variant = variant_kwargs(path / sub, stem, pickles=allow_pickle)
        return cls.from_pretrained(path, subfolder=sub, **kwargs, **variant, **common)

    parts = {
        "unet": load(UNet2DConditionModel, "unet", torch_dtype=dtype),
        "vae": load(AutoencoderKL, "vae", torch_dtype=dtype),
        "text_encoder": load(CLIPTextModel, "text_encoder", "model", **transformers_dtype(dtype)),
        "tokenizer": CLIPTokenizer.from_pretrained(path, subfolder="tokenizer", local_files_only=True),
    }
    if arch == "sdxl":
        parts["text_encoder_2"] = load(CLIPTextModelWithProjection, "text_encoder_2", "model",
                                       **transformers_dtype(dtype))
        parts["tokenizer_2"] = CLIPTokenizer.from_pretrained(path, subfolder="tokenizer_2", local_files_only=True)
    return parts


def hub_offline() -> bool:
    """True when the user asked for offline mode (read at call time, unlike huggingface_hub's constant)."""
    flags = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("TRANSFORMERS_OFFLINE", ""))
    return any(v.strip().lower() in ("1", "true", "yes", "on") for v in flags)


def _hub_snapshot(repo_id: str, *, allow_pickle: bool, patterns: list[str] | None = None) -> Path:
    """Local folder of a hub repo: the cached snapshot, else (when online) a download of the needed files."""
    from huggingface_hub import snapshot_download

    allow = list(patterns or HUB_PATTERNS) + (["*.bin"] if allow_pickle else [])
    try:
        return Path(snapshot_download(repo_id, allow_patterns=allow, local_files_only=True))
    except Exception:
        if hub_offline():
            raise ModelError(f"hub model '{repo_id}' is not in the local cache and HF_HUB_OFFLINE is set; "
                             f"{WAY_OUT}") from None
    try:
        return Path(snapshot_download(repo_id, allow_patterns=allow))
    except Exception as exc:
        reason = one_line(exc, 120)
        raise ModelError(f"could not fetch hub model '{repo_id}' ({reason}); {WAY_OUT}") from None


def _load_vae(src: str, arch: str, *, allow_pickle: bool, dtype: torch.dtype, config_dir=None):
    """The `vae:` override: a single file, a folder (with or without a vae/ subfolder), or a hub id."""
    from diffusers import AutoencoderKL

    path = Path(src).expanduser()
    if path.is_file() or path.suffix.lower() in (*PICKLE_SUFFIXES, *SAFE_SUFFIXES):
        return vae_from_file(path, allow_pickle=allow_pickle, dtype=dtype, arch=arch, config_dir=config_dir)
    if not path.is_dir():
        if not HUB_ID.match(src):
            raise ModelError(f"VAE not found: {src}; pass a .safetensors file, a folder or a hub id")
        path = _hub_snapshot(src, allow_pickle=allow_pickle, patterns=[
            "config.json", "diffusion_pytorch_model.safetensors", "vae/config.json",
            "vae/diffusion_pytorch_model.safetensors"])
    sub = "vae" if (path / "vae" / "config.json").is_file() else None
    variant = variant_kwargs(path / sub if sub else path, pickles=allow_pickle)
    try:
        return AutoencoderKL.from_pretrained(path, subfolder=sub, torch_dtype=dtype, local_files_only=True,
                                             use_safetensors=None if allow_pickle else True, **variant)
    except Exception as exc:
        reason = one_line(exc, 160)
        raise ModelError(f"could not load the VAE from {path} ({reason})") from None


# ---------------------------------------------------------------- ControlNet


def load_controlnet(source: str, *, device: torch.device, dtype: torch.dtype, allow_pickle: bool = False,
                    cache_dir: Path | None = None, config_dir: Path | None = None):
    """Load a ControlNetModel: `tiny` / `tiny-sdxl`, a diffusers ControlNet folder, a single file, or a hub id.

    A path that exists (relative ones too) is never taken for a hub id; a single file (A1111's
    models/ControlNet/*.safetensors) gets config_dir's config.json, default the generated SD1.5/SDXL one.
    """
    tiny = TINY_CONTROLNETS.get(source)
    path = tiny(cache_dir) if tiny is not None else Path(source).expanduser()
    if path.is_file() or (not path.is_dir() and path.suffix.lower() in (*PICKLE_SUFFIXES, *SAFE_SUFFIXES)):
        net = controlnet_from_file(path, allow_pickle=allow_pickle, dtype=dtype, config_dir=config_dir)
        return _named(net.to(device).eval(), source)
    if not path.is_dir():
        if not HUB_ID.match(source):
            raise ModelError(f"ControlNet not found: {source}; pass a ControlNet .safetensors file, a diffusers "
                             "ControlNet folder, a hub id, `tiny` or `tiny-sdxl`")
        path = _hub_snapshot(source, allow_pickle=allow_pickle,
                             patterns=["config.json", "diffusion_pytorch_model.safetensors"])
    return _named(_controlnet_folder(path, allow_pickle=allow_pickle, dtype=dtype).to(device).eval(), source)


def _named(net, source: str):
    """The ControlNet tagged with the name the user gave it, for errors about it (e.g. not fitting the model)."""
    net.anim_source = source
    return net


def _controlnet_folder(path: Path, *, allow_pickle: bool, dtype: torch.dtype):
    """from_pretrained a diffusers ControlNet folder (fp16-variant-only folders included), offline."""
    from diffusers import ControlNetModel

    try:
        return ControlNetModel.from_pretrained(path, torch_dtype=dtype, local_files_only=True,
                                               use_safetensors=None if allow_pickle else True,
                                               **variant_kwargs(path, pickles=allow_pickle))
    except Exception as exc:
        reason = one_line(exc, 160)
        raise ModelError(f"could not load the ControlNet from {path} ({reason})") from None
