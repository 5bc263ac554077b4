"""Session-wide test environment: never touch the network, keep anim's model cache private."""
from __future__ import annotations

import os
import tempfile

import pytest


def pytest_configure(config):
    """Set before any test (and inherited by subprocesses that tests start)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("ANIM_CACHE", tempfile.mkdtemp(prefix="anim-test-cache-"))
    os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def anim_cache(tmp_path_factory):
    """A private anim cache folder (tiny model, generated configs) for this test session."""
    return tmp_path_factory.mktemp("anim-cache")


@pytest.fixture(scope="session")
def tiny_dir(anim_cache):
    """The built-in tiny SD1.5 model as a diffusers folder (random weights, made locally)."""
    from anim.models import tiny_model_dir

    return tiny_model_dir(anim_cache)


@pytest.fixture(scope="session")
def tiny_models(anim_cache):
    """The one shared tiny SDModels on CPU; tests must not modify it (LoRA tests load their own)."""
    from anim.models import load_models

    return load_models("tiny", device="cpu", cache_dir=anim_cache)


@pytest.fixture(scope="module")
def diffuser(tiny_models):
    """A Diffuser (SD1.5 img2img/txt2img + ControlNet) on the shared tiny model, one per test module."""
    from anim.diffusion.diffuse import Diffuser

    return Diffuser(tiny_models)


@pytest.fixture
def encoder(tiny_models):
    """A fresh PromptEncoder on the tiny text encoder (own cache per test), real A1111 prompt parser."""
    from anim.diffusion.conditioning import PromptEncoder

    return PromptEncoder.from_models(tiny_models)


@pytest.fixture(scope="session")
def rand_image():
    """A fixed random image (1,3,64,64) in [0,1]."""
    import torch

    gen = torch.Generator().manual_seed(7)
    return torch.rand(1, 3, 64, 64, generator=gen)
