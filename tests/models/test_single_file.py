"""Single-file LDM checkpoints offline, pickle refusal, corrupt files, missing sources, hub offline."""

from __future__ import annotations

import os

import pytest
import torch

from anim.errors import ModelError
from anim.models import load_models
from anim.models.checkpoints import detect_arch
from anim.models.configs import arch_config_dir
from tests.models.ckpt_layout import ldm_state_dict, save_ldm_checkpoint


@pytest.fixture(scope="module")
def tiny_ckpt(tiny_models, tmp_path_factory):
    return save_ldm_checkpoint(tiny_models, tmp_path_factory.mktemp("ckpt") / "tiny-ldm.safetensors")


def _unet_out(models):
    gen = torch.Generator().manual_seed(0)
    sample = torch.randn(1, 4, 8, 8, generator=gen)
    context = torch.randn(1, 77, models.unet.config.cross_attention_dim, generator=gen)
    with torch.no_grad():
        return models.unet(sample, 500, encoder_hidden_states=context).sample


def _assert_same_model(a, b):
    assert torch.equal(_unet_out(a), _unet_out(b))
    ids = a.tokenizer("a photo of a cat", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(a.text_encoder(ids)[0], b.text_encoder(ids)[0])
        image = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
        assert torch.equal(a.vae.encode(image).latent_dist.mean, b.vae.encode(image).latent_dist.mean)
        latents = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(2))
        assert torch.equal(a.vae.decode(latents).sample, b.vae.decode(latents).sample)


def test_ldm_layout_uses_a1111_key_names(tiny_models):
    keys = set(ldm_state_dict(tiny_models))
    assert "model.diffusion_model.input_blocks.0.0.weight" in keys
    assert "model.diffusion_model.middle_block.1.proj_in.weight" in keys
    assert "first_stage_model.encoder.mid.attn_1.q.weight" in keys
    assert "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight" in keys
    assert not [k for k in keys if "down_blocks" in k or "to_q" in k and "first_stage" in k]


def test_single_file_loads_offline_and_matches(tiny_ckpt, tiny_dir, tiny_models):
    loaded = load_models(str(tiny_ckpt), config_dir=tiny_dir, device="cpu")
    assert (loaded.name, loaded.arch) == ("tiny-ldm", "sd15")
    import hashlib

    assert loaded.model_hash == hashlib.sha256(tiny_ckpt.read_bytes()).hexdigest()[:10]
    _assert_same_model(loaded, tiny_models)


def test_ckpt_is_refused_then_allowed_weights_only(tiny_models, tiny_dir, tmp_path):
    path = tmp_path / "model.ckpt"
    torch.save({"state_dict": ldm_state_dict(tiny_models)}, path)
    with pytest.raises(ModelError, match=r"pickle.*allow_pickle: true") as info:
        load_models(str(path), config_dir=tiny_dir, device="cpu")
    assert str(path) in str(info.value)
    loaded = load_models(str(path), config_dir=tiny_dir, device="cpu", allow_pickle=True)
    _assert_same_model(loaded, tiny_models)


class _Payload:
    def __reduce__(self):
        return (os.getcwd, ())


def test_allowed_pickle_still_cannot_run_code(tmp_path, tiny_dir):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"x": _Payload()}}, path)
    with pytest.raises(ModelError, match="weights-only"):
        load_models(str(path), config_dir=tiny_dir, device="cpu", allow_pickle=True)


@pytest.mark.parametrize("damage", ["random", "truncated", "empty"])
def test_corrupt_safetensors_names_the_file(tiny_ckpt, tmp_path, damage):
    path = tmp_path / f"{damage}.safetensors"
    data = tiny_ckpt.read_bytes()
    path.write_bytes({"random": os.urandom(4096), "truncated": data[: len(data) // 2], "empty": b""}[damage])
    with pytest.raises(ModelError) as info:
        load_models(str(path), device="cpu")
    message = str(info.value)
    assert str(path) in message and "\n" not in message


def test_missing_path_and_bad_folder(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        load_models(str(tmp_path / "nope.safetensors"), device="cpu")
    with pytest.raises(ModelError, match="model_index.json") as info:
        load_models(str(tmp_path), device="cpu")
    assert str(tmp_path) in str(info.value)


def test_hub_id_offline_fails_in_one_line():
    with pytest.raises(ModelError) as info:
        load_models("nobody-anim-test/not-a-model", device="cpu")
    message = str(info.value)
    assert "\n" not in message and "not-a-model" in message
    assert "tiny" in message and "local" in message


def test_not_a_full_checkpoint_is_explained(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "lora.safetensors"
    save_file({"lora_unet_x.lora_down.weight": torch.zeros(2, 2)}, str(path))
    with pytest.raises(ModelError, match="not a full Stable Diffusion"):
        load_models(str(path), device="cpu")


def test_arch_detection():
    unet = {"model.diffusion_model.input_blocks.0.0.weight": 0}
    assert detect_arch({**unet, "cond_stage_model.transformer.text_model.x": 0}, "f") == "sd15"
    assert detect_arch({**unet, "conditioner.embedders.0.transformer.x": 0,
                        "conditioner.embedders.1.model.positional_embedding": 0}, "f") == "sdxl"
    with pytest.raises(ModelError, match="2.x"):
        detect_arch({**unet, "cond_stage_model.model.token_embedding.weight": 0}, "f")


def test_sd15_config_dir_and_tokenizer_build_offline(tmp_path):
    from transformers import CLIPTokenizer

    folder = arch_config_dir("sd15", cache_dir=tmp_path)
    for name in ("model_index.json", "unet/config.json", "vae/config.json", "text_encoder/config.json",
                 "scheduler/scheduler_config.json", "tokenizer/vocab.json", "tokenizer/merges.txt"):
        assert (folder / name).is_file(), name
    tok = CLIPTokenizer.from_pretrained(str(folder / "tokenizer"))
    assert tok("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert len(tok) == 49408 and tok.model_max_length == 77


@pytest.mark.parametrize("arch", ["sd15", "sdxl"])
def test_generated_configs_construct_the_real_architectures(tmp_path, arch):
    from accelerate import init_empty_weights
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    folder = arch_config_dir(arch, cache_dir=tmp_path)
    with init_empty_weights():  # shapes only: no memory for 1-3 B parameters
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(folder / "unet"))
        AutoencoderKL.from_config(AutoencoderKL.load_config(folder / "vae"))
        CLIPTextModel(CLIPTextConfig.from_pretrained(folder / "text_encoder"))
        if arch == "sdxl":
            big = CLIPTextModelWithProjection(CLIPTextConfig.from_pretrained(folder / "text_encoder_2"))
    params = sum(p.numel() for p in unet.parameters())
    if arch == "sd15":
        assert 855e6 < params < 865e6  # SD1.5 UNet: 859.5 M parameters
    else:
        assert 2.5e9 < params < 2.6e9  # SDXL UNet: 2.567 B parameters
        assert big.config.projection_dim == 1280


def _xl_unet_out(models):
    gen = torch.Generator().manual_seed(0)
    sample = torch.randn(1, 4, 8, 8, generator=gen)
    context = torch.randn(1, 77, models.unet.config.cross_attention_dim, generator=gen)
    pooled = torch.randn(1, models.text_encoder_2.config.projection_dim, generator=gen)
    added = {"text_embeds": pooled, "time_ids": torch.tensor([[64.0, 64.0, 0.0, 0.0, 64.0, 64.0]])}
    with torch.no_grad():
        return models.unet(sample, 500, encoder_hidden_states=context, added_cond_kwargs=added).sample


def test_sdxl_folder_and_single_file_construct_and_match(anim_cache, tmp_path):
    from anim.models.tiny import tiny_sdxl_dir

    folder = tiny_sdxl_dir(anim_cache)
    xl = load_models(str(folder), device="cpu")
    assert xl.arch == "sdxl" and xl.is_sdxl and xl.text_encoder_2 is not None
    assert xl.tokenizer_2("a").input_ids[-1] == xl.tokenizer_2.eos_token_id
    path = save_ldm_checkpoint(xl, tmp_path / "tiny-xl.safetensors")
    loaded = load_models(str(path), config_dir=folder, device="cpu")
    assert loaded.arch == "sdxl"
    assert torch.equal(_xl_unet_out(loaded), _xl_unet_out(xl))
    ids = xl.tokenizer_2("a photo of a cat", return_tensors="pt").input_ids
    with torch.no_grad():
        a, b = loaded.text_encoder_2(ids), xl.text_encoder_2(ids)
        assert torch.allclose(a.text_embeds, b.text_embeds, atol=1e-6)
        assert torch.allclose(a.last_hidden_state, b.last_hidden_state, atol=1e-6)
        assert torch.equal(loaded.text_encoder(ids)[0], xl.text_encoder(ids)[0])


def test_vae_override_from_file_and_folder(tiny_models, tiny_dir, tmp_path):
    from safetensors.torch import save_file

    from tests.models.ckpt_layout import vae_to_ldm

    standalone = {k.removeprefix("first_stage_model."): v.contiguous() for k, v in vae_to_ldm(tiny_models.vae).items()}
    path = tmp_path / "vae-ft.safetensors"
    save_file(standalone, str(path))  # unprefixed LDM keys, like the popular standalone VAE files
    latents = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = tiny_models.vae.decode(latents).sample
        for source in (path, tiny_dir):
            models = load_models("tiny", vae=str(source), config_dir=tiny_dir, device="cpu",
                                 cache_dir=tiny_dir.parent)
            assert torch.equal(models.vae.decode(latents).sample, expected)
    with pytest.raises(ModelError, match="VAE not found"):
        load_models("tiny", vae=str(tmp_path / "none"), device="cpu", cache_dir=tiny_dir.parent)
