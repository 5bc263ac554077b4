"""fp16-variant weights (`*.fp16.safetensors`, what `variant="fp16"` downloads): local folders and hub caches."""

from __future__ import annotations

import shutil

import pytest
import torch

from anim.models import load_controlnet, load_models

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def fp16_dirs(tiny_models, anim_cache, tmp_path_factory):
    """The tiny pipeline and ControlNet saved in half precision with only fp16-variant weight files."""
    from diffusers import ControlNetModel, StableDiffusionPipeline

    from anim.models.tiny import tiny_controlnet_dir, tiny_model_dir

    root = tmp_path_factory.mktemp("fp16")
    pipe = StableDiffusionPipeline.from_pretrained(tiny_model_dir(anim_cache), safety_checker=None,
                                                   feature_extractor=None, requires_safety_checker=False)
    pipe.to(torch.float16).save_pretrained(root / "pipe", variant="fp16")
    net = ControlNetModel.from_pretrained(tiny_controlnet_dir(anim_cache))
    net.to(torch.float16).save_pretrained(root / "controlnet", variant="fp16")
    weights = sorted(p.name for p in (root / "pipe").rglob("*.safetensors"))
    assert weights and all(".fp16." in name for name in weights), weights
    assert not list((root / "controlnet").glob("diffusion_pytorch_model.safetensors"))
    return root / "pipe", root / "controlnet", net


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face hub cache that huggingface_hub and anim use for this test."""
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


def _cache_repo(cache, repo_id: str, folder) -> None:
    """Lay `folder` out as the cached snapshot of `repo_id` (refs/main -> snapshots/<commit>)."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    shutil.copytree(folder, repo / "snapshots" / COMMIT)


def _assert_fp16_of(loaded, original) -> None:
    """Every weight of `loaded` is the original's weight rounded to half precision."""
    state = original.state_dict()
    for key, value in loaded.state_dict().items():
        assert value.dtype == torch.float32, key
        assert torch.equal(value, state[key].half().float()), key


def _assert_fp16_models(models, tiny_models) -> None:
    for name in ("unet", "vae", "text_encoder"):
        _assert_fp16_of(getattr(models, name), getattr(tiny_models, name))
    assert models.tokenizer("a cat").input_ids == tiny_models.tokenizer("a cat").input_ids


def test_local_fp16_variant_folder_loads(fp16_dirs, tiny_models):
    pipe, controlnet, net = fp16_dirs
    _assert_fp16_models(load_models(str(pipe), device="cpu"), tiny_models)
    _assert_fp16_of(load_controlnet(str(controlnet), device=torch.device("cpu"), dtype=torch.float32), net)


def test_fp16_variant_hub_cache_loads_offline(fp16_dirs, tiny_models, hub_cache):
    pipe, controlnet, net = fp16_dirs
    _cache_repo(hub_cache, "anim-test/tiny-fp16", pipe)
    _cache_repo(hub_cache, "anim-test/tiny-controlnet-fp16", controlnet)
    models = load_models("anim-test/tiny-fp16", device="cpu")
    assert (models.name, models.source) == ("anim-test/tiny-fp16", "anim-test/tiny-fp16")
    _assert_fp16_models(models, tiny_models)
    loaded = load_controlnet("anim-test/tiny-controlnet-fp16", device=torch.device("cpu"), dtype=torch.float32)
    _assert_fp16_of(loaded, net)


def test_fp16_variant_vae_folder_override(fp16_dirs, tiny_models, anim_cache):
    pipe, _, _ = fp16_dirs
    models = load_models("tiny", vae=str(pipe / "vae"), device="cpu", cache_dir=anim_cache)
    _assert_fp16_of(models.vae, tiny_models.vae)
