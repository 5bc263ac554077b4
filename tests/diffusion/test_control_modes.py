"""A1111 control modes (balanced / prompt / controlnet) on the SD1.5, SDXL and lockstep ControlNet paths.

The oracle is written from sd-webui-controlnet's scripts/hook.py: "My prompt is more important" multiplies the
ControlNet's i-th output (12 down residuals, then the middle one) by 0.825 ** (12 - i), SDXL keeping the first 10
factors; "ControlNet is more important" does that too and multiplies every output by 0 on the unconditional half
of the CFG batch.
"""
from __future__ import annotations

import pytest
import torch

from anim.diffusion.control_modes import layer_scales
from anim.diffusion.diffuse import ControlInput
from anim.errors import ModelError

ARGS = {"cfg_scale": 7.0, "steps": 2, "sampler": "euler", "seed": 11, "width": 64, "height": 64}
EXTENSION_SCALES = [0.825 ** float(12 - i) for i in range(13)]  # hook.py's soft-injection control_scales / weight


def oracle_scales(n_outputs: int) -> list[float]:
    """The factors of a net with n outputs: the last one is the middle residual; SD1.5 (13) and SDXL (10, cut
    from the front of the 13) as the extension does, and the front of the list for the smaller tiny nets."""
    return EXTENSION_SCALES[:n_outputs]


@pytest.fixture(scope="module")
def net(tiny_models, anim_cache):
    from anim.models import load_controlnet

    return load_controlnet("tiny", device=tiny_models.device, dtype=tiny_models.dtype, cache_dir=anim_cache)


@pytest.fixture(scope="module")
def embeds(tiny_models):
    from anim.diffusion.conditioning import PromptEncoder

    return PromptEncoder.from_models(tiny_models).pair("a cabin in the snow", "blurry")


@pytest.fixture(scope="module")
def hint():
    return torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(5))


def first_residuals(unet, call):
    """The ControlNet residuals the UNet gets on its first call (step 0) of `call()`, and call()'s result."""
    seen = []

    def grab(_module, _args, kwargs):
        if not seen:
            seen.append(([t.clone() for t in kwargs["down_block_additional_residuals"]],
                         kwargs["mid_block_additional_residual"].clone()))

    handle = unet.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        out = call()
    finally:
        handle.remove()
    down, mid = seen[0]
    return [*down, mid], out


def _run(diffuser, embeds, init, units):
    cond, uncond = embeds
    return diffuser(init=init, cond=cond, uncond=uncond, denoise=0.8, controls=units, **ARGS)


def test_the_factors_are_the_extensions():
    assert layer_scales(13) == oracle_scales(13) and layer_scales(13)[-1] == 1.0  # SD1.5's middle residual
    assert layer_scales(10) == oracle_scales(10) and layer_scales(10)[-1] == pytest.approx(0.825 ** 3)  # SDXL
    assert layer_scales(13)[0] == pytest.approx(0.0994, abs=1e-4)
    with pytest.raises(ModelError, match="14 residuals.*balanced"):
        layer_scales(14)


def test_each_mode_reaches_the_unet_as_the_extension_scales_it(diffuser, embeds, net, hint, rand_image, tiny_models):
    runs = {mode: first_residuals(tiny_models.unet, lambda m=mode: _run(
        diffuser, embeds, rand_image, [ControlInput(net, hint, weight=0.8, control_mode=m)]))
        for mode in ("balanced", "prompt", "controlnet")}
    default, default_out = first_residuals(tiny_models.unet, lambda: _run(diffuser, embeds, rand_image,
                                                                          [ControlInput(net, hint, weight=0.8)]))
    balanced, balanced_out = runs["balanced"]
    assert torch.equal(balanced_out, default_out) and all(torch.equal(a, b) for a, b in zip(balanced, default))
    assert not net._forward_hooks  # nothing is left on the net after a call
    scales = oracle_scales(len(balanced))
    prompt, prompt_out = runs["prompt"]
    assert all(torch.equal(p, b * s) for p, b, s in zip(prompt, balanced, scales))
    control, control_out = runs["controlnet"]
    assert all(r.shape[0] == 2 for r in control)  # CFG: [unconditional, conditional]
    assert all(not r[0].any() for r in control)  # no control on the unconditional half
    assert all(torch.equal(c[1], b[1] * s) and c[1].any() for c, b, s in zip(control, balanced, scales))
    outs = [balanced_out, prompt_out, control_out]
    assert all(not torch.equal(outs[i], outs[j]) for i in range(3) for j in range(i + 1, 3))


def test_one_net_in_two_units_takes_each_units_mode(diffuser, embeds, net, hint, rand_image, tiny_models):
    solo, _ = first_residuals(tiny_models.unet, lambda: _run(diffuser, embeds, rand_image,
                                                             [ControlInput(net, hint, weight=0.8)]))
    units = [ControlInput(net, hint, weight=0.8), ControlInput(net, hint, weight=0.8, control_mode="prompt")]
    both, _ = first_residuals(tiny_models.unet, lambda: _run(diffuser, embeds, rand_image, units))
    assert all(torch.equal(r, s + s * f) for r, s, f in zip(both, solo, oracle_scales(len(solo))))


def test_without_cfg_controlnet_mode_keeps_its_only_rows(diffuser, embeds, net, hint, tiny_models):
    cond, uncond = embeds

    def run(mode):
        unit = [ControlInput(net, hint, control_mode=mode)]
        return first_residuals(tiny_models.unet, lambda: diffuser(
            init=None, cond=cond, uncond=uncond, denoise=1.0, controls=unit, **{**ARGS, "cfg_scale": 1.0}))[0]

    balanced, control = run("balanced"), run("controlnet")
    assert all(r.shape[0] == 1 for r in control)  # one conditional row: nothing to take control away from
    assert all(torch.equal(c, b * s) and c.any() for c, b, s in zip(control, balanced, oracle_scales(len(control))))


def test_an_unknown_mode_is_one_clear_error(diffuser, embeds, net, hint, rand_image):
    with pytest.raises(ModelError, match="control_mode 'strong'.*balanced, prompt, controlnet"):
        _run(diffuser, embeds, rand_image, [ControlInput(net, hint, control_mode="strong")])


# ---------------------------------------------------------------- SDXL


@pytest.fixture(scope="module")
def xl(anim_cache):
    from anim.diffusion.sdxl import SDXLDiffuser, SDXLPromptEncoder
    from anim.models import load_controlnet, load_models
    from anim.models.tiny import tiny_sdxl_dir

    models = load_models(str(tiny_sdxl_dir(anim_cache)), device="cpu")
    xl_net = load_controlnet("tiny-sdxl", device="cpu", dtype=models.dtype, cache_dir=anim_cache)
    return models, SDXLDiffuser(models), SDXLPromptEncoder.from_models(models).conditioning("a lake", "blurry"), xl_net


def test_sdxl_modes(xl, hint):
    models, diffuser, (cond, uncond), xl_net = xl

    def run(mode):
        units = [ControlInput(xl_net, hint, weight=0.9, control_mode=mode)]
        return first_residuals(models.unet, lambda: diffuser(init=None, cond=cond, uncond=uncond, denoise=1.0,
                                                             controls=units, **ARGS))

    (balanced, b_out), (prompt, p_out), (control, c_out) = run("balanced"), run("prompt"), run("controlnet")
    scales = oracle_scales(len(balanced))
    assert all(torch.equal(p, b * s) for p, b, s in zip(prompt, balanced, scales))
    assert all(not c[0].any() and torch.equal(c[1], b[1] * s) for c, b, s in zip(control, balanced, scales))
    assert not torch.equal(b_out, p_out) and not torch.equal(b_out, c_out) and not torch.equal(p_out, c_out)


# ---------------------------------------------------------------- lockstep


@pytest.mark.parametrize("mode", ["prompt", "controlnet"])
def test_lockstep_modes_match_the_diffuser_bit_for_bit(tiny_models, diffuser, embeds, net, hint, rand_image, mode):
    from anim.diffusion.lockstep import Item, LockstepDiffuser

    cond, uncond = embeds
    units = [ControlInput(net, hint, weight=0.7, guidance_end=0.75, control_mode=mode)]
    item = Item(init=rand_image, cond=cond, uncond=uncond, denoise=0.9, controls=units, **{**ARGS, "steps": 4})
    out = LockstepDiffuser(tiny_models)([item])[0]
    assert torch.equal(out, diffuser(**vars(item)))
    balanced = Item(**{**vars(item), "controls": [ControlInput(net, hint, weight=0.7, guidance_end=0.75)]})
    assert not torch.equal(out, LockstepDiffuser(tiny_models)([balanced])[0])
