"""A1111 settings Deforum users schedule: clip skip (against diffusers' own encode_prompt), variation seeds (A1111's
slerp, checked against a numpy oracle written from modules/rng.py), the img2img noise multiplier, DDIM eta, Deforum's
blank-frame reroll, and how they are written into the PNG parameters."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from anim.diffusion.noise import NoiseSettings, adjust, img2img_noise, seed_noise, slerp_a1111
from anim.engine.makers import not_blank
from anim.errors import ModelError
from anim.media.png import a1111_noise_fields


@pytest.mark.parametrize("clip_skip", [1, 2, 3])
def test_clip_skip_equals_diffusers_encode_prompt(clip_skip, diffuser, encoder):
    prompt = "a lighthouse on a cliff at dusk"
    ours, _ = encoder.conditioning(prompt, "", clip_skip=clip_skip)
    theirs, _ = diffuser.txt2img.encode_prompt(prompt, torch.device("cpu"), 1, False,
                                               clip_skip=None if clip_skip == 1 else clip_skip - 1)
    torch.testing.assert_close(ours.float(), theirs.float(), rtol=1e-5, atol=1e-5)
    if clip_skip > 1:
        plain, _ = encoder.conditioning(prompt, "", clip_skip=1)
        assert not torch.allclose(ours, plain)  # and the cache keeps them apart


def slerp_oracle(val: float, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """A1111's rng.slerp on a (C, H, W) array, one (channel, column) vector along H at a time."""
    out = np.empty_like(low)
    a_all = low / np.linalg.norm(low, axis=1, keepdims=True)
    b_all = high / np.linalg.norm(high, axis=1, keepdims=True)
    dots = (a_all * b_all).sum(axis=1)
    if dots.mean() > 0.9995:
        return low * val + high * (1 - val)
    for c in range(low.shape[0]):
        for x in range(low.shape[2]):
            omega = np.arccos(dots[c, x])
            out[c, :, x] = (np.sin((1 - val) * omega) * low[c, :, x] + np.sin(val * omega) * high[c, :, x]) \
                / np.sin(omega)
    return out


def test_variation_seed_slerps_as_a1111():
    shape = (1, 4, 8, 8)
    noise = seed_noise(11, shape)
    sub = seed_noise(22, shape[1:])
    for strength in (0.25, 0.5, 0.9):
        got = adjust(noise, NoiseSettings(22, strength))[0].numpy()
        np.testing.assert_allclose(got, slerp_oracle(strength, noise[0].double().numpy(), sub.double().numpy()),
                                   rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(adjust(noise, NoiseSettings(22, 1.0))[0], sub, rtol=1e-5, atol=1e-5)  # the subseed's own
    torch.testing.assert_close(adjust(noise, NoiseSettings(22, 0.0, 1.05)), noise * 1.05)
    same = slerp_a1111(0.3, sub, sub.clone())  # nearly parallel: A1111's straight mix (its weights kept)
    torch.testing.assert_close(same, sub)


def call(diffuser, encoder, *, init=True, sampler="euler_a", seed=3, **extra):
    cond, uncond = encoder.pair("a lighthouse", "")
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)) if init else None
    return diffuser(init=image, cond=cond, uncond=uncond, denoise=0.7, cfg_scale=7.0, steps=4, sampler=sampler,
                    seed=seed, width=64, height=64, **extra)


def test_subseed_strength_zero_is_no_subseed_and_one_is_the_subseeds_noise(diffuser, encoder):
    plain = call(diffuser, encoder)
    assert torch.equal(call(diffuser, encoder, noise=NoiseSettings(99, 0.0)), plain)
    half = call(diffuser, encoder, noise=NoiseSettings(99, 0.5))
    assert not torch.equal(half, plain) and torch.equal(call(diffuser, encoder, noise=NoiseSettings(99, 0.5)), half)
    # txt2img with a deterministic sampler: strength 1 starts from the subseed's noise, so it is the subseed's image
    own = call(diffuser, encoder, init=False, sampler="ddim", seed=99)
    full = call(diffuser, encoder, init=False, sampler="ddim", seed=3, noise=NoiseSettings(99, 1.0))
    torch.testing.assert_close(full, own, rtol=0, atol=1e-5)
    assert not torch.allclose(call(diffuser, encoder, init=False, sampler="ddim", seed=3), own, atol=1e-3)


def test_img2img_noise_adjusts_only_the_first_add_noise():
    seen = []

    class Scheduler:
        def add_noise(self, samples, noise, timesteps):
            seen.append(noise.clone())
            return samples + noise

    scheduler = Scheduler()
    noise = seed_noise(5, (1, 4, 8, 8))
    with img2img_noise(scheduler, NoiseSettings(-1, 0.0, 1.5)):
        scheduler.add_noise(torch.zeros_like(noise), noise, None)
        scheduler.add_noise(torch.zeros_like(noise), noise, None)  # a cross-frame anchor's, say
    scheduler.add_noise(torch.zeros_like(noise), noise, None)
    assert torch.equal(seen[0], noise * 1.5) and torch.equal(seen[1], noise) and torch.equal(seen[2], noise)


def test_noise_multiplier_and_ddim_eta_change_img2img(diffuser, encoder):
    plain = call(diffuser, encoder, sampler="ddim")
    assert not torch.equal(call(diffuser, encoder, sampler="ddim", noise=NoiseSettings(-1, 0.0, 1.05)), plain)
    assert not torch.equal(call(diffuser, encoder, sampler="ddim", eta=0.5), plain)
    euler = call(diffuser, encoder, sampler="euler")
    assert torch.equal(call(diffuser, encoder, sampler="euler", eta=0.5), euler)  # eta is DDIM's alone


def test_blank_frames_are_rerolled_or_stop_the_render():
    black, white = torch.zeros(1, 3, 4, 4), torch.ones(1, 3, 4, 4)
    seeds = []

    def make(seed):
        seeds.append(seed)
        return black if seed < 12 else white

    assert torch.equal(not_blank(make, 10, "reroll", 5, 7), white) and seeds == [10, 11, 12]
    assert torch.equal(not_blank(make, 10, "ignore", 5, 7), black)
    with pytest.raises(ModelError, match="frame 7 came out blank .*interrupt"):
        not_blank(make, 10, "interrupt", 5, 7)
    with pytest.raises(ModelError, match="blank 2 times .*seeds 3..4"):
        not_blank(make, 3, "reroll", 1, 7)


def test_png_parameters_say_what_a1111_says():
    row = {"clip_skip": 2, "subseed": 42, "subseed_strength": 0.3, "noise_multiplier": 1.05, "ddim_eta": 0.0}
    assert a1111_noise_fields(row) == {"Clip skip": 2, "Variation seed": 42, "Variation seed strength": 0.3,
                                       "Noise multiplier": 1.05}
    assert a1111_noise_fields({"clip_skip": 1, "subseed": -1, "subseed_strength": 0.0, "noise_multiplier": 1.0,
                               "ddim_eta": 0.5}) == {"Eta DDIM": 0.5}


def test_ancestral_eta_zero_is_plain_euler_and_one_is_euler_a(diffuser, encoder):
    from anim.diffusion.ancestral import ancestral_sigmas

    euler_a = call(diffuser, encoder, sampler="euler_a")
    assert torch.equal(call(diffuser, encoder, sampler="euler_a", ancestral_eta=1.0), euler_a)
    euler = call(diffuser, encoder, sampler="euler")
    torch.testing.assert_close(call(diffuser, encoder, sampler="euler_a", ancestral_eta=0.0), euler, rtol=0, atol=1e-4)
    half = call(diffuser, encoder, sampler="euler_a", ancestral_eta=0.5)
    assert not torch.allclose(half, euler, atol=1e-3) and not torch.allclose(half, euler_a, atol=1e-3)
    down, up = ancestral_sigmas(2.0, 1.0, 1.0)  # k-diffusion's get_ancestral_step, by hand
    assert (round(down, 6), round(up, 6)) == (round(0.5, 6), round((1 * 3 / 4) ** 0.5, 6))
    assert call(diffuser, encoder, sampler="ddim", ancestral_eta=0.5).shape == euler.shape  # ignored, as A1111


def test_ancestral_eta_on_an_unwrapped_ancestral_sampler_is_one_clear_error(diffuser, encoder):
    with pytest.raises(ModelError, match="ancestral_eta 0.5: only Euler a"):
        call(diffuser, encoder, sampler="dpm2_a", ancestral_eta=0.5)
