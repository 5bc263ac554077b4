"""LoRA adapters through diffusers' LoRA loader (kohya/A1111 and diffusers formats), weights per frame.

Adapters are named lora0, lora1, ... in the order given. Their weights can change every frame; the
text encoder is tagged with the current weights so prompt caches keyed on it stay correct.
"""

from __future__ import annotations

from pathlib import Path

from anim.errors import ModelError
from anim.models.checkpoints import one_line, read_state_dict

LORA_KEY_ATTR = "anim_lora_key"  # set on the text encoder: changes whenever its adapters' weights change


def _pipeline(models):
    """A throwaway pipeline around the shared components, for diffusers' pipeline-level LoRA API."""
    from diffusers import (
        DDIMScheduler,
        StableDiffusionPipeline,
        StableDiffusionXLPipeline,
    )

    scheduler = DDIMScheduler.from_config(models.scheduler_config)
    if models.is_sdxl:
        return StableDiffusionXLPipeline(
            vae=models.vae, text_encoder=models.text_encoder, text_encoder_2=models.text_encoder_2,
            tokenizer=models.tokenizer, tokenizer_2=models.tokenizer_2, unet=models.unet, scheduler=scheduler)
    return StableDiffusionPipeline(
        vae=models.vae, text_encoder=models.text_encoder, tokenizer=models.tokenizer, unet=models.unet,
        scheduler=scheduler, safety_checker=None, feature_extractor=None, requires_safety_checker=False)


def _spec(entry, index: int) -> tuple[Path, float]:
    """Normalise one LoRA entry: {path, weight} mapping, (path, weight) pair, or a bare path."""
    if isinstance(entry, dict):
        if "path" not in entry:
            raise ModelError(f"lora #{index} has no `path`; write it as {{path: file.safetensors, weight: 0.8}}")
        return Path(entry["path"]).expanduser(), float(entry.get("weight", 1.0))
    if isinstance(entry, (tuple, list)):
        return Path(entry[0]).expanduser(), float(entry[1]) if len(entry) > 1 else 1.0
    path = getattr(entry, "path", entry)
    return Path(path).expanduser(), float(getattr(entry, "weight", 1.0))


def apply_loras(models, loras: list, *, allow_pickle: bool = False) -> list[str]:
    """Load each LoRA file as adapter lora{i} into the UNet (and text encoder), then set their weights."""
    specs = [_spec(entry, i) for i, entry in enumerate(loras)]
    if not specs:
        return []
    pipe = _pipeline(models)
    start = len(models.lora_names)
    for offset, (path, _) in enumerate(specs):
        name = f"lora{start + offset}"
        state_dict = read_state_dict(path, allow_pickle=allow_pickle, what="LoRA")
        try:
            pipe.load_lora_weights(state_dict, adapter_name=name)
        except Exception as exc:
            reason = one_line(exc, 160)
            raise ModelError(f"LoRA file {path} does not fit model {models.name} ({reason})") from None
        models.lora_names.append(name)
    weights = [1.0] * start + [w for _, w in specs]
    set_lora_weights(models, weights, pipe=pipe)
    return models.lora_names[start:]


def set_lora_weights(models, weights: list[float], *, pipe=None) -> None:
    """Set the adapter weights (one per loaded LoRA, in load order); cheap when they did not change."""
    names = list(models.lora_names)
    weights = [float(w) for w in weights]
    if len(weights) != len(names):
        raise ModelError(f"got {len(weights)} LoRA weights for {len(names)} loaded LoRAs ({', '.join(names)})")
    key = (tuple(names), tuple(weights))
    if getattr(models.text_encoder, LORA_KEY_ATTR, None) == key:
        return
    (pipe or _pipeline(models)).set_adapters(names, adapter_weights=weights)
    for encoder in (models.text_encoder, models.text_encoder_2):
        if encoder is not None:
            setattr(encoder, LORA_KEY_ATTR, key)
