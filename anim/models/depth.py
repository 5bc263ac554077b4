"""Depth-model loading for the 3D camera: `flat`, the built-in `tiny` DPT, a local transformers folder, or
a hub id already in the local cache -- never downloaded. The depth conventions live in anim.motion.depth."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from anim.errors import ModelError
from anim.models.configs import build_once, cache_root, quiet_progress, transformers_dtype
from anim.models.memory import own_memory
from anim.motion.depth import DepthModel

TINY_DEPTH_VERSION = "depth-tiny-v1"
TINY_DEPTH_SEED = 4321
TINY_DEPTH_CONFIG = {
    "hidden_size": 32, "num_hidden_layers": 4, "num_attention_heads": 2, "intermediate_size": 64,
    "image_size": 64, "patch_size": 8, "backbone_out_indices": (0, 1, 2, 3), "neck_hidden_sizes": (8, 16, 32, 32),
    "fusion_hidden_size": 16, "head_hidden_size": 8, "use_auxiliary_head": False,
}
TINY_DEPTH_PROCESSOR = {"size": {"height": 64, "width": 64}, "keep_aspect_ratio": False, "ensure_multiple_of": 8,
                        "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}
TINY_WEIGHT_STD = 0.1  # random init with enough gain that the output varies across the image
METRIC_MODEL_TYPES = ("glpn", "zoedepth", "depth_pro")
WAY_OUT = "use `flat`, `tiny`, or a local folder holding a transformers depth model (.safetensors)"


def _write_tiny_depth(dst: Path) -> None:
    """Save the tiny DPT (random weights from TINY_DEPTH_SEED, safetensors) and its processor."""
    from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessor

    quiet_progress()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_DEPTH_SEED)
        model = DPTForDepthEstimation(DPTConfig(**TINY_DEPTH_CONFIG))
        with torch.no_grad():
            for param in model.parameters():
                if param.dim() > 1:
                    param.normal_(0.0, TINY_WEIGHT_STD)
            model.head.head[-2].bias.fill_(1.0)  # keep the final ReLU open
    model.save_pretrained(dst, safe_serialization=True)
    DPTImageProcessor(**TINY_DEPTH_PROCESSOR).save_pretrained(dst)


def tiny_depth_dir(cache_dir: Path | None = None) -> Path:
    """Folder of the built-in tiny depth model (a transformers DPT folder), built once."""
    root = Path(cache_dir) if cache_dir else cache_root()
    return build_once(root / TINY_DEPTH_VERSION, _write_tiny_depth)


def is_metric_depth(config) -> bool:
    """Whether a checkpoint predicts depth (True) or relative disparity (False)."""
    if getattr(config, "depth_estimation_type", None) == "metric":
        return True
    return getattr(config, "model_type", "") in METRIC_MODEL_TYPES


def _load_transformers(source: str, device: torch.device, dtype: torch.dtype) -> DepthModel:
    """AutoModelForDepthEstimation + AutoImageProcessor from a local folder or the hub cache."""
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation

    quiet_progress()
    dtype_kw = transformers_dtype(dtype)
    try:
        model = AutoModelForDepthEstimation.from_pretrained(
            source, local_files_only=True, use_safetensors=True, **dtype_kw)
        processor = AutoImageProcessor.from_pretrained(source, local_files_only=True, use_fast=False)  # as made
    except Exception as exc:
        if not Path(source).is_dir():
            raise ModelError(f"depth model '{source}' is not in the local Hugging Face cache (never downloaded "
                             f"at run time); {WAY_OUT}") from None
        reason = " ".join(str(exc).split())[:140]
        raise ModelError(f"depth model folder '{source}' could not be loaded ({reason}); {WAY_OUT}") from None
    model = model.to(device).eval()
    if device.type == "cpu":
        own_memory(model)
    return DepthModel(name=source, model=model, processor=processor, device=device, dtype=dtype,
                      metric=is_metric_depth(model.config))


def load_depth_model(spec: str, *, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                     cache_dir: Path | None = None) -> DepthModel:
    """``flat`` (no model), ``tiny`` (built-in random DPT, for tests), a local folder, or a hub id
    already in the local cache; nothing is downloaded. ModelError names the spec and the way out."""
    spec = str(spec).strip()
    device = torch.device(device)
    if spec in ("", "flat", "none"):
        return DepthModel(name="flat", device=device, dtype=dtype)
    if spec == "tiny":
        return replace(_load_transformers(str(tiny_depth_dir(cache_dir)), device, dtype), name="tiny")
    path = Path(spec).expanduser()
    if path.is_dir():
        return _load_transformers(str(path), device, dtype)
    if path.exists() or "/" not in spec or spec.startswith((".", "/", "~")):
        raise ModelError(f"depth model '{spec}' is not a folder, a cached hub id, `flat` or `tiny`; {WAY_OUT}")
    return _load_transformers(spec, device, dtype)
