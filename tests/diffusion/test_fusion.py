"""Flow-guided latent fusion: the scheduler's own clean-latent prediction becomes the blend of the model's and the
guide's (checked on the schedulers that report it), only inside the step window; on the tiny model a fused call
lands closer to the guide than a plain one, and weight 0 is the plain call bit for bit."""
from __future__ import annotations

import pytest
import torch

from anim.diffusion.crossframe import encode_anchor
from anim.diffusion.fusion import FusionInput, fused, in_window
from anim.diffusion.samplers import make_scheduler

SHAPE = (1, 4, 8, 8)


def tensors(seed: int):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(SHAPE, generator=g) for _ in range(3)]


def one_step(scheduler, output, sample, step: int = 0):
    """What a pipeline does at step `step`: scale the model input, then step."""
    t = scheduler.timesteps[step]
    scheduler.scale_model_input(sample, t)
    return scheduler.step(output, t, sample)


def clean_prediction(sampler: str, config: dict, fusion: FusionInput | None, prediction: str = "epsilon"):
    config = {**config, "prediction_type": prediction}
    scheduler = make_scheduler(sampler, config)
    scheduler.set_timesteps(10)
    sample, output, _ = tensors(0)
    sample = sample * float(scheduler.init_noise_sigma)
    if fusion is None:
        return one_step(scheduler, output, sample)
    with fused(scheduler, fusion, prediction):
        result = one_step(scheduler, output, sample)
    if sampler.startswith("dpmpp_2m"):  # DPM++ keeps its clean-latent estimate instead of returning it
        return scheduler.model_outputs[-1]
    return result.pred_original_sample


@pytest.mark.parametrize("sampler", ["ddim", "euler", "euler_a", "dpmpp_2m", "lms", "heun", "dpm2"])
@pytest.mark.parametrize("prediction", ["epsilon", "v_prediction"])
def test_the_scheduler_predicts_the_blend_of_model_and_guide(sampler, prediction, tiny_models):
    config = dict(tiny_models.scheduler_config)
    guide = tensors(1)[2]
    mask = torch.rand((1, 1, 8, 8), generator=torch.Generator().manual_seed(2))
    plain = clean_prediction(sampler, config, FusionInput(guide, mask, weight=1.0, start=1.0, end=1.0), prediction)
    full = clean_prediction(sampler, config, FusionInput(guide, torch.ones(1, 1, 8, 8), 1.0), prediction)
    half = clean_prediction(sampler, config, FusionInput(guide, mask, 0.5), prediction)
    torch.testing.assert_close(full, guide, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(half, torch.lerp(plain, guide, 0.5 * mask), rtol=1e-4, atol=1e-4)


def test_outside_the_window_the_step_is_untouched(tiny_models):
    config = dict(tiny_models.scheduler_config)
    scheduler = make_scheduler("ddim", config)
    scheduler.set_timesteps(4)
    sample, output, guide = tensors(3)
    expected = make_scheduler("ddim", config)
    expected.set_timesteps(4)
    with fused(scheduler, FusionInput(guide, torch.ones(1, 1, 8, 8), 1.0, start=0.5, end=1.0)):
        for step in range(4):
            got = one_step(scheduler, output, sample, step).pred_original_sample
            want = one_step(expected, output, sample, step).pred_original_sample
            assert torch.equal(got, want) == (step < 2)
    assert scheduler.step.__func__ is type(scheduler).step  # put back after the block


def test_window_rule_is_controlnets():
    assert [in_window(i, 10, 0.0, 0.5) for i in range(10)] == [True] * 5 + [False] * 5
    assert [in_window(i, 4, 0.25, 1.0) for i in range(4)] == [False, True, True, True]


def call(diffuser, encoder, **extra):
    cond, uncond = encoder.pair("a cabin in the woods", "")
    init = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    return diffuser(init=init, cond=cond, uncond=uncond, denoise=0.8, cfg_scale=7.0, steps=5, sampler="euler_a",
                    seed=3, width=64, height=64, **extra)


def test_a_fused_call_lands_closer_to_the_guide(diffuser, encoder):
    vae = diffuser.models.vae
    target = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(9))
    guide = encode_anchor(vae, target)
    plain = call(diffuser, encoder)
    assert torch.equal(call(diffuser, encoder, fusion=FusionInput(guide, torch.ones(1, 1, 8, 8), 0.0)), plain)
    on = call(diffuser, encoder, fusion=FusionInput(guide, torch.ones(1, 1, 8, 8), 1.0, 0.0, 1.0))
    # repeatable: Euler a still gets the call's seeded generator through the wrapped step
    assert torch.equal(call(diffuser, encoder, fusion=FusionInput(guide, torch.ones(1, 1, 8, 8), 1.0, 0.0, 1.0)), on)
    with torch.inference_mode():
        decoded = (vae.decode(guide / vae.config.scaling_factor).sample / 2 + 0.5).clamp(0, 1)
    far, near = float((plain - decoded).abs().mean()), float((on - decoded).abs().mean())
    print(f"mean |frame - decoded guide|: plain {far:.4f}, fused {near:.4f}")
    assert near < 0.25 * far
    assert torch.equal(call(diffuser, encoder), plain)  # nothing left installed
