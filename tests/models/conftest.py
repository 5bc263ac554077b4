"""Fixtures for the model tests: a private anim cache, the tiny model, offline hub, a prompt encoder."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _offline_hub(monkeypatch):
    """No test here may reach the network: the hub is offline (anim reads this at call time)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def anim_cache(tmp_path_factory):
    """A private anim cache folder (tiny model, generated configs) for this test session."""
    return tmp_path_factory.mktemp("anim-cache")


@pytest.fixture(scope="session")
def tiny_dir(anim_cache):
    from anim.models import tiny_model_dir

    return tiny_model_dir(anim_cache)


@pytest.fixture(scope="session")
def tiny_models(anim_cache):
    """Shared tiny SDModels on CPU; tests must not modify it (LoRA tests load their own)."""
    from anim.models import load_models

    return load_models("tiny", device="cpu", cache_dir=anim_cache)


@pytest.fixture
def encoder(tiny_models):
    """A fresh PromptEncoder on the tiny text encoder (own cache per test), real A1111 prompt parser."""
    from anim.diffusion.conditioning import PromptEncoder

    return PromptEncoder.from_models(tiny_models)


@pytest.fixture(scope="session")
def rand_image():
    """A fixed random image (1,3,64,64) in [0,1]."""
    gen = torch.Generator().manual_seed(7)
    return torch.rand(1, 3, 64, 64, generator=gen)
