"""Diffuser: txt2img / img2img determinism, denoise 0 short-cut, shapes, ControlNet units, fresh process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from anim.diffusion.diffuse import ControlInput, effective_steps
from anim.errors import InputError

ARGS = {"cfg_scale": 7.0, "steps": 2, "sampler": "euler_a", "seed": 11, "width": 64, "height": 64}


@pytest.fixture(scope="module")
def embeds(tiny_models):
    from anim.diffusion.conditioning import PromptEncoder

    return PromptEncoder.from_models(tiny_models).pair("a cabin in the snow", "blurry")


def _run(diffuser, embeds, **overrides):
    cond, uncond = embeds
    return diffuser(**{"init": None, "cond": cond, "uncond": uncond, "denoise": 1.0, **ARGS, **overrides})


def test_txt2img_is_deterministic_with_shape_and_range(diffuser, embeds):
    a, b = _run(diffuser, embeds), _run(diffuser, embeds)
    assert a.shape == (1, 3, 64, 64) and a.dtype == torch.float32
    assert 0.0 <= float(a.min()) and float(a.max()) <= 1.0
    assert torch.equal(a, b)
    assert not torch.equal(a, _run(diffuser, embeds, seed=12))


@pytest.mark.parametrize("sampler", ["euler_a", "dpmpp_sde", "dpmpp_2m_sde_karras", "ddim"])
def test_img2img_is_deterministic(diffuser, embeds, rand_image, sampler):
    a = _run(diffuser, embeds, init=rand_image, denoise=0.6, sampler=sampler)
    b = _run(diffuser, embeds, init=rand_image, denoise=0.6, sampler=sampler)
    assert a.shape == rand_image.shape and torch.equal(a, b)
    assert not torch.equal(a, rand_image)


def test_denoise_zero_returns_init_without_a_model_call(diffuser, embeds, rand_image, tiny_models):
    calls = diffuser.calls
    seen = []
    hook = tiny_models.unet.register_forward_pre_hook(lambda *_: seen.append(1))
    try:
        out = _run(diffuser, embeds, init=rand_image, denoise=0.0)
    finally:
        hook.remove()
    assert out is rand_image and diffuser.calls == calls and not seen


def test_small_denoise_still_runs_one_step(diffuser, embeds, rand_image):
    assert effective_steps(2, 0.1) == 10 and effective_steps(20, 0.5) == 20
    assert effective_steps(3, 1 / 3) >= 3
    out = _run(diffuser, embeds, init=rand_image, denoise=0.1)
    assert not torch.equal(out, rand_image)


def test_size_must_be_a_multiple_of_8(diffuser, embeds):
    with pytest.raises(InputError, match="multiples of 8"):
        _run(diffuser, embeds, width=60)


def test_init_of_another_size_is_resized(diffuser, embeds):
    init = torch.rand(1, 3, 48, 80, generator=torch.Generator().manual_seed(1))
    assert _run(diffuser, embeds, init=init, denoise=0.5).shape == (1, 3, 64, 64)


def test_controlnet_unit_changes_the_output(diffuser, embeds, rand_image, anim_cache, tiny_models):
    from anim.models import load_controlnet

    net = load_controlnet("tiny", device=tiny_models.device, dtype=tiny_models.dtype, cache_dir=anim_cache)
    control = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    plain = _run(diffuser, embeds, init=rand_image, denoise=0.7)
    units = [ControlInput(net, control, weight=1.0)]
    a = _run(diffuser, embeds, init=rand_image, denoise=0.7, controls=units)
    assert torch.equal(a, _run(diffuser, embeds, init=rand_image, denoise=0.7, controls=units))
    assert not torch.equal(a, plain)
    two = [ControlInput(net, control, 0.5, 0.0, 0.5), ControlInput(net, 1 - control, 0.5, 0.5, 1.0)]
    assert _run(diffuser, embeds, controls=two).shape == (1, 3, 64, 64)  # txt2img, MultiControlNet


FRESH = textwrap.dedent("""
    import hashlib, sys, torch
    from anim.diffusion.conditioning import PromptEncoder
    from anim.diffusion.diffuse import Diffuser
    from anim.models import load_models
    models = load_models("tiny", device="cpu", cache_dir=sys.argv[1])
    cond, uncond = PromptEncoder.from_models(models).pair("a cabin in the snow", "blurry")
    init = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(7))
    out = Diffuser(models)(init=init, cond=cond, uncond=uncond, denoise=0.6, cfg_scale=7.0, steps=2,
                           sampler=sys.argv[2], seed=11, width=64, height=64)
    print(hashlib.sha256(out.numpy().tobytes()).hexdigest())
""")


def test_fresh_process_gives_identical_bits(diffuser, embeds, rand_image, anim_cache):
    import hashlib

    here = _run(diffuser, embeds, init=rand_image, denoise=0.6, sampler="dpmpp_sde")
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-c", FRESH, str(anim_cache), "dpmpp_sde"], cwd=root,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == hashlib.sha256(here.numpy().tobytes()).hexdigest()
