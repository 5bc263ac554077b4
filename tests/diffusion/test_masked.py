"""Masked img2img (anim.diffusion.masked) on the tiny models: outside the mask the final latents are the init
latents exactly (SD1.5 with several samplers, with ControlNet, SDXL), the masked area changes, the latent fills
act inside the mask only, and a step-end callback already in the call still runs."""
from __future__ import annotations

import pytest
import torch

import anim.diffusion.masked as masked_module
from anim.diffusion.diffuse import ControlInput
from anim.diffusion.masked import MaskInput, filled_latent, masked
from anim.diffusion.noise import seed_noise
from anim.diffusion.samplers import make_scheduler

ARGS = {"cfg_scale": 7.0, "steps": 3, "seed": 11, "width": 64, "height": 64}


def half_mask() -> torch.Tensor:
    """Latent mask (1, 1, 8, 8): the left half changes."""
    change = torch.zeros(1, 1, 8, 8)
    change[..., :4] = 1.0
    return change


@pytest.fixture(scope="module")
def embeds(tiny_models):
    from anim.diffusion.conditioning import PromptEncoder

    return PromptEncoder.from_models(tiny_models).pair("a cabin in the snow", "blurry")


@pytest.fixture
def spy(monkeypatch, tiny_models):
    """Records the fill's (input, output), every blend's (latents, kept, output) and the decoder's input."""
    seen = {"fill": [], "blend": [], "decoded": []}
    fill, blend = masked_module.filled_latent, masked_module.keep_outside

    def spy_fill(x0, change, kind, seed):
        out = fill(x0, change, kind, seed)
        seen["fill"].append((x0.clone(), out.clone()))
        return out

    def spy_blend(latents, kept, change):
        out = blend(latents, kept, change)
        seen["blend"].append((latents.clone(), kept.clone(), out.clone()))
        return out

    monkeypatch.setattr(masked_module, "filled_latent", spy_fill)
    monkeypatch.setattr(masked_module, "keep_outside", spy_blend)
    return seen


def hook_decoder(vae, seen):
    return vae.post_quant_conv.register_forward_pre_hook(lambda module, args: seen["decoded"].append(args[0].clone()))


def check_outside_is_init(seen, vae, steps_run: int):
    """Every step blended; the last one put the clean init latent back; the decoder got exactly those latents."""
    assert len(seen["fill"]) == 1 and len(seen["blend"]) == steps_run
    x0 = seen["fill"][0][1]
    _, kept, final = seen["blend"][-1]
    assert torch.equal(kept, x0)
    keep = half_mask().expand_as(x0) == 0
    assert torch.equal(final[keep], x0[keep])
    assert not torch.allclose(final[~keep], x0[~keep], atol=1e-3)  # the masked half did change
    decoded = seen["decoded"][-1] * vae.config.scaling_factor
    assert torch.allclose(decoded, final.to(decoded.dtype), atol=1e-5)
    return x0, final


@pytest.mark.parametrize("sampler", ["euler_a", "ddim", "dpmpp_2m"])
def test_outside_latents_end_as_the_init_latents(diffuser, embeds, rand_image, tiny_models, spy, sampler):
    cond, uncond = embeds
    handle = hook_decoder(tiny_models.vae, spy)
    try:
        diffuser(init=rand_image, cond=cond, uncond=uncond, denoise=0.8, sampler=sampler,
                 mask=MaskInput(half_mask()), **ARGS)
    finally:
        handle.remove()
    check_outside_is_init(spy, tiny_models.vae, steps_run=int(3 * 0.8))


def test_pixels_outside_stay_near_the_decoded_init_latents(diffuser, embeds, rand_image, tiny_models, spy):
    """Without the overlay the pixels outside the mask are the VAE's decoding of latents that are the init latents
    there; the decoder's mid-block attention mixes in the changed half, so they are not the round trip exactly.
    Measured on the tiny model (random VAE), mean |.| over x >= 48: masked call vs decode(x0) 0.095, plain call vs
    decode(x0) 0.145, decode(x0) vs the init 0.27 (the round-trip error of a random VAE)."""
    cond, uncond = embeds
    out = diffuser(init=rand_image, cond=cond, uncond=uncond, denoise=0.8, sampler="euler_a",
                   mask=MaskInput(half_mask()), **ARGS)
    plain = diffuser(init=rand_image, cond=cond, uncond=uncond, denoise=0.8, sampler="euler_a", **ARGS)
    x0 = spy["fill"][0][1]
    with torch.no_grad():
        round_trip = tiny_models.vae.decode(x0 / tiny_models.vae.config.scaling_factor).sample
    round_trip = ((round_trip + 1) / 2).clamp(0, 1)
    far = (slice(None), slice(None), slice(None), slice(48, 64))  # two latent cells from the edge at x=32
    masked_error = (out[far] - round_trip[far]).abs().mean()
    assert masked_error < 0.8 * (plain[far] - round_trip[far]).abs().mean()
    assert masked_error < 0.5 * (round_trip[far] - rand_image[far]).abs().mean()


@pytest.mark.parametrize("fill", ["latent_nothing", "latent_noise", "original", "fill"])
def test_latent_fills_change_the_init_inside_only(fill):
    x0 = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(3))
    change = half_mask()
    out = filled_latent(x0, change, fill, seed=5)
    keep = change.expand_as(x0) == 0
    assert torch.equal(out[keep], x0[keep])
    if fill == "latent_nothing":
        assert torch.equal(out[~keep], torch.zeros_like(out[~keep]))
    elif fill == "latent_noise":  # A1111: create_random_tensors with the image's seed
        assert torch.equal(out[~keep], seed_noise(5, (4, 8, 8))[None][~keep])
    else:  # image-space fills act before encoding
        assert torch.equal(out, x0)


def test_the_call_starts_from_the_filled_latent(diffuser, embeds, rand_image, spy):
    cond, uncond = embeds
    diffuser(init=rand_image, cond=cond, uncond=uncond, denoise=0.8, sampler="euler_a",
             mask=MaskInput(half_mask(), "latent_nothing"), **ARGS)
    encoded, started = spy["fill"][0]
    keep = half_mask().expand_as(encoded) == 0
    assert torch.equal(started[~keep], torch.zeros_like(started[~keep]))
    assert torch.equal(started[keep], encoded[keep]) and encoded[keep].abs().sum() > 0


def test_an_existing_step_end_callback_still_runs():
    scheduler = make_scheduler("ddim", {"num_train_timesteps": 1000})
    scheduler.set_timesteps(4)

    class Pipe:
        _num_timesteps = 4

    pipe = Pipe()
    pipe.scheduler = scheduler
    ran = []

    def before(pipe_, index, timestep, tensors):
        ran.append(index)
        return {"latents": tensors["latents"] + 1.0}

    kwargs = {"callback_on_step_end": before, "callback_on_step_end_tensor_inputs": ["latents"]}
    x0, noise = torch.zeros(1, 4, 8, 8), torch.randn(1, 4, 8, 8)
    with masked(pipe, kwargs, MaskInput(half_mask())):
        scheduler.add_noise(x0, noise, scheduler.timesteps[:1])
        out = kwargs["callback_on_step_end"](pipe, 3, scheduler.timesteps[3], {"latents": torch.full_like(x0, 2.0)})
    assert ran == [3] and kwargs["callback_on_step_end_tensor_inputs"] == ["latents"]
    change = half_mask().expand_as(x0) > 0
    assert torch.equal(out["latents"][change], torch.full_like(x0, 3.0)[change])  # the earlier callback's result
    assert torch.equal(out["latents"][~change], x0[~change])  # the last step: the clean init outside


def test_with_a_controlnet_unit(diffuser, embeds, rand_image, tiny_models, anim_cache, spy):
    from anim.models import load_controlnet

    net = load_controlnet("tiny", device=tiny_models.device, dtype=tiny_models.dtype, cache_dir=anim_cache)
    cond, uncond = embeds
    handle = hook_decoder(tiny_models.vae, spy)
    try:
        diffuser(init=rand_image, cond=cond, uncond=uncond, denoise=0.8, sampler="euler_a",
                 controls=[ControlInput(net, torch.rand(1, 3, 64, 64))], mask=MaskInput(half_mask()), **ARGS)
    finally:
        handle.remove()
    check_outside_is_init(spy, tiny_models.vae, steps_run=2)


def test_on_sdxl(anim_cache, spy):
    from anim.diffusion.sdxl import SDXLDiffuser, SDXLPromptEncoder
    from anim.models import load_models
    from anim.models.tiny import tiny_sdxl_dir

    models = load_models(str(tiny_sdxl_dir(anim_cache)), device="cpu")
    cond, uncond = SDXLPromptEncoder.from_models(models).conditioning("a red fox", "blurry")
    handle = hook_decoder(models.vae, spy)
    try:
        SDXLDiffuser(models)(init=torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1)), cond=cond,
                             uncond=uncond, denoise=0.8, sampler="euler_a", mask=MaskInput(half_mask()), **ARGS)
    finally:
        handle.remove()
    check_outside_is_init(spy, models.vae, steps_run=2)
