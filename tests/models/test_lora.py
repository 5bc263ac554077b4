"""LoRA: a tiny LoRA made with peft loads through diffusers' loader; weights change the output."""

from __future__ import annotations

import pytest
import torch

from anim.errors import ModelError
from anim.models import apply_loras, load_models, set_lora_weights

UNET_TARGETS = ["to_q", "to_k", "to_v", "to_out.0"]
TEXT_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]


def make_tiny_lora(tiny_dir, folder, unet_layers: bool = True) -> str:
    """Save a random (non-zero) rank-4 LoRA for the tiny UNet + text encoder in diffusers format
    (`unet_layers=False`: a text-encoder-only LoRA, the kind that needs transformers' peft integration)."""
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict
    from transformers import CLIPTextModel

    unet = UNet2DConditionModel.from_pretrained(tiny_dir, subfolder="unet")
    text = CLIPTextModel.from_pretrained(tiny_dir, subfolder="text_encoder")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=UNET_TARGETS, init_lora_weights=False))
        text.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=TEXT_TARGETS, init_lora_weights=False))
    StableDiffusionPipeline.save_lora_weights(
        folder, unet_lora_layers=get_peft_model_state_dict(unet) if unet_layers else None,
        text_encoder_lora_layers=get_peft_model_state_dict(text), safe_serialization=True)
    return str(folder / "pytorch_lora_weights.safetensors")


@pytest.fixture(scope="module")
def lora_file(tiny_dir, tmp_path_factory):
    return make_tiny_lora(tiny_dir, tmp_path_factory.mktemp("lora"))


def _render(models, encoder):
    from anim.diffusion.diffuse import Diffuser

    cond, uncond = encoder.pair("a cat", "")
    init = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    return Diffuser(models)(init=init, cond=cond, uncond=uncond, denoise=0.7, cfg_scale=5.0, steps=2,
                            sampler="euler", seed=1, width=64, height=64)


def test_lora_loads_and_weights_change_the_output(anim_cache, lora_file):
    from anim.diffusion.conditioning import PromptEncoder

    models = load_models("tiny", device="cpu", cache_dir=anim_cache)  # own copy: LoRA mutates modules
    encoder = PromptEncoder.from_models(models)
    base, base_text = _render(models, encoder), encoder.encode("a cat")
    apply_loras(models, [{"path": lora_file, "weight": 1.0}])
    assert models.lora_names == ["lora0"]
    full, full_text = _render(models, encoder), encoder.encode("a cat")
    assert not torch.equal(full, base)
    assert not torch.equal(full_text, base_text)  # text-encoder LoRA: prompt cache was invalidated
    set_lora_weights(models, [0.5])
    half = _render(models, encoder)
    assert not torch.equal(half, full) and not torch.equal(half, base)
    set_lora_weights(models, [0.0])
    assert torch.allclose(_render(models, encoder), base, atol=1e-5)
    assert torch.allclose(encoder.encode("a cat"), base_text, atol=1e-6)
    set_lora_weights(models, [1.0])
    assert torch.equal(_render(models, encoder), full)


def test_lora_errors_name_the_file(anim_cache, tmp_path):
    models = load_models("tiny", device="cpu", cache_dir=anim_cache)
    with pytest.raises(ModelError, match="not found"):
        apply_loras(models, [{"path": tmp_path / "missing.safetensors", "weight": 1.0}])
    pickled = tmp_path / "lora.pt"
    torch.save({}, pickled)
    with pytest.raises(ModelError, match="pickle"):
        apply_loras(models, [(str(pickled), 1.0)])
    with pytest.raises(ModelError, match="1 LoRA weights for 0"):
        set_lora_weights(models, [1.0])


def to_kohya(diffusers_file: str, dst) -> str:
    """Re-save a diffusers-format LoRA in the kohya / A1111 key layout (lora_unet_*, lora_te_*)."""
    from diffusers.utils import convert_state_dict_to_kohya
    from safetensors.torch import load_file, save_file

    state = load_file(diffusers_file)
    out = {}
    for prefix, kohya in (("unet.", "lora_unet_"), ("text_encoder.", "lora_te_")):
        part = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        for key, value in convert_state_dict_to_kohya(part).items():
            if kohya == "lora_te_" and not key.startswith("text_model_"):
                key = "text_model_" + key  # transformers v5 CLIP has no text_model wrapper; kohya files do
            out[kohya + key] = value
    save_file(out, str(dst))
    return str(dst)


def test_kohya_format_lora_matches_diffusers_format(anim_cache, lora_file, tmp_path):
    from anim.diffusion.conditioning import PromptEncoder

    kohya_file = to_kohya(lora_file, tmp_path / "kohya.safetensors")
    renders = []
    for path in (lora_file, kohya_file):
        models = load_models("tiny", device="cpu", cache_dir=anim_cache)
        apply_loras(models, [{"path": path, "weight": 0.8}])
        encoder = PromptEncoder.from_models(models)
        renders.append((_render(models, encoder), encoder.encode("a cat")))
    assert torch.equal(renders[0][0], renders[1][0])
    assert torch.allclose(renders[0][1], renders[1][1], atol=1e-6)
