"""One AnimateDiff window on the tiny model and tiny MotionAdapter: repeatable; the motion modules, each frame's own
prompt, the fixed frames and ControlNet units all reach the new frames; the fixed frames are held at their own
latents between steps."""
from __future__ import annotations

import pytest
import torch

from anim.diffusion.animatediff import Window, WindowDiffuser, _keep_fixed
from anim.diffusion.crossframe import encode_anchor
from anim.diffusion.diffuse import ControlInput
from anim.errors import ModelError
from anim.models.motion_adapter import load_motion_adapter, motion_unet, tiny_motion_adapter

FRAMES = 5


@pytest.fixture(scope="module")
def windows(tiny_models):
    adapter = load_motion_adapter("tiny", device=tiny_models.device, dtype=tiny_models.dtype)
    return WindowDiffuser(tiny_models, motion_unet(tiny_models.unet, adapter))


def window(models, encoder, prompts=None, fixed=2, images=None, **changes):
    images = torch.rand(FRAMES, 3, 64, 64, generator=torch.Generator().manual_seed(0)) if images is None else images
    latents = torch.cat([encode_anchor(models.vae, images[i:i + 1]) for i in range(FRAMES)])
    noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(1))
    pairs = [encoder.pair(text, "") for text in (prompts or ["a stone wall"] * FRAMES)]
    settings = dict(fixed=fixed, denoise=0.7, cfg_scale=7.0, steps=4, sampler="euler_a", seed=3, width=64, height=64)
    settings.update(changes)
    return Window(latents, noise, torch.cat([c for c, _ in pairs]), torch.cat([u for _, u in pairs]), **settings)


def change(a: torch.Tensor, b: torch.Tensor) -> list[float]:
    return [round(float((x - y).abs().mean()), 5) for x, y in zip(a, b)]


def test_a_window_is_repeatable_and_the_motion_modules_act(windows, tiny_models, encoder):
    first = windows(window(tiny_models, encoder))
    assert first.shape == (FRAMES, 3, 64, 64) and torch.equal(windows(window(tiny_models, encoder)), first)
    still = tiny_motion_adapter()
    with torch.no_grad():
        for name, param in still.named_parameters():
            if name.endswith("proj_out.weight") or name.endswith("proj_out.bias"):
                param.zero_()  # motion modules add nothing: each frame is plain img2img
    plain = WindowDiffuser(tiny_models, motion_unet(tiny_models.unet, still))
    assert min(change(first, plain(window(tiny_models, encoder)))) > 1e-3


def test_each_frame_gets_its_own_prompt(windows, tiny_models, encoder):
    same = windows(window(tiny_models, encoder))
    prompts = ["a stone wall"] * FRAMES
    prompts[3] = "a red neon sign at night"
    other = windows(window(tiny_models, encoder, prompts))
    diffs = change(same, other)
    print("mean change per frame when frame 3's prompt changes:", diffs)
    assert diffs[3] == max(diffs) and diffs[3] > 1e-3


def test_the_fixed_frames_carry_into_the_new_ones(windows, tiny_models, encoder):
    images = torch.rand(FRAMES, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    base = windows(window(tiny_models, encoder, images=images))
    changed = images.clone()
    changed[:2] = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(5))  # other fixed frames
    other = windows(window(tiny_models, encoder, images=changed))
    assert min(change(base[2:], other[2:])) > 1e-4  # the new frames see the fixed ones through the motion modules


def test_fixed_latents_are_put_back_at_the_next_level(tiny_models):
    from anim.diffusion.samplers import make_scheduler

    scheduler = make_scheduler("ddim", tiny_models.scheduler_config)
    scheduler.set_timesteps(4)
    x0, noise = torch.randn(3, 4, 8, 8), torch.randn(3, 4, 8, 8)
    latents = torch.randn(1, 4, 3, 8, 8)
    callback = _keep_fixed(x0, noise, 2, scheduler.timesteps)
    pipe = type("Pipe", (), {"scheduler": scheduler})()
    out = callback(pipe, 0, scheduler.timesteps[0], {"latents": latents})["latents"]
    want = scheduler.add_noise(x0[:2], noise[:2], scheduler.timesteps[1].repeat(2))
    assert torch.equal(out[0, :, :2], want.permute(1, 0, 2, 3)) and torch.equal(out[0, :, 2], latents[0, :, 2])
    assert callback(pipe, 3, scheduler.timesteps[3], {"latents": latents}) == {}  # the last step: nothing to do


def test_controlnet_units_reach_a_window(windows, tiny_models, encoder, anim_cache):
    from anim.models import load_controlnet

    net = load_controlnet("tiny", device=tiny_models.device, dtype=tiny_models.dtype, cache_dir=anim_cache)
    maps = torch.rand(FRAMES, 3, 64, 64, generator=torch.Generator().manual_seed(8))
    plain = windows(window(tiny_models, encoder))
    unit = [ControlInput(net, maps, weight=1.0)]
    on = windows(window(tiny_models, encoder, controls=unit))
    assert torch.equal(windows(window(tiny_models, encoder, controls=unit)), on)
    assert min(change(plain[2:], on[2:])) > 1e-4
    two = [*unit, ControlInput(net, maps.flip(-1), weight=0.5, guidance_start=0.25)]
    assert torch.isfinite(windows(window(tiny_models, encoder, controls=two))).all()
    strong = [ControlInput(net, maps, weight=1.0, control_mode="controlnet")]  # A1111's "ControlNet is more important"
    assert not torch.equal(windows(window(tiny_models, encoder, controls=strong)), on)


def test_an_adapter_that_does_not_fit_is_named(tiny_models, tmp_path):
    with pytest.raises(ModelError, match="motion_adapter not found: .*nowhere"):
        load_motion_adapter(str(tmp_path / "nowhere"), device=tiny_models.device, dtype=tiny_models.dtype)
    from diffusers import MotionAdapter

    wrong = MotionAdapter(block_out_channels=(16, 32), motion_layers_per_block=1, motion_num_attention_heads=2,
                          motion_norm_num_groups=8, use_motion_mid_block=False)
    with pytest.raises(ModelError, match="does not fit the model's UNet"):
        motion_unet(tiny_models.unet, wrong)
