"""LockstepDiffuser: K=1 matches Diffuser, K>1 matches solo renders, determinism, batching, edge cases."""

from __future__ import annotations

import pytest
import torch

from anim.diffusion.diffuse import ControlInput, Diffuser
from anim.diffusion.lockstep import Item, LockstepDiffuser, lockstep_compatible

TOL = 1e-3  # mean abs difference allowed where only the batch (float summation order) differs
BASE = {"denoise": 0.6, "cfg_scale": 7.0, "steps": 3, "sampler": "euler_a", "seed": 11, "width": 64, "height": 64}


@pytest.fixture(scope="module")
def models(tiny_models):
    return tiny_models  # the shared tiny model (tests/conftest.py)


@pytest.fixture(scope="module")
def nets(anim_cache):
    """Two ControlNet objects with the same tiny weights (distinct by identity, as two units' models)."""
    from diffusers import ControlNetModel

    from anim.models.tiny import tiny_controlnet_dir

    return [ControlNetModel.from_pretrained(tiny_controlnet_dir(anim_cache)).eval() for _ in range(2)]


@pytest.fixture(scope="module")
def encoder(models):
    from anim.diffusion.conditioning import PromptEncoder

    return PromptEncoder.from_models(models)


@pytest.fixture(scope="module")
def diffuser(models):
    return Diffuser(models)


@pytest.fixture(scope="module")
def lockstep(models, encoder):
    return LockstepDiffuser(models, encoder=encoder)


@pytest.fixture(scope="module")
def inits():
    gen = torch.Generator().manual_seed(0)
    return [torch.rand(1, 3, 64, 64, generator=gen) for _ in range(3)]


@pytest.fixture(scope="module")
def hints():
    """Control images in [0,1]; the second is 32x32 so it is resized to the render size like Diffuser does."""
    gen = torch.Generator().manual_seed(5)
    return [torch.rand(1, 3, 64, 64, generator=gen), torch.rand(1, 3, 32, 32, generator=gen)]


def _item(encoder, init, prompt="a cabin in the snow", negative="blurry", **overrides) -> Item:
    cond, uncond = encoder.pair(prompt, negative)
    return Item(init=init, cond=cond, uncond=uncond, **{**BASE, **overrides})


def _solo(diffuser, item: Item) -> torch.Tensor:
    return diffuser(**vars(item))


def _mad(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().mean())


@pytest.mark.parametrize("sampler", ["euler", "euler_a"])
@pytest.mark.parametrize("img2img", [True, False])
def test_single_item_is_bit_exact_with_diffuser(diffuser, lockstep, encoder, inits, sampler, img2img):
    item = _item(encoder, inits[0] if img2img else None, sampler=sampler)
    out = lockstep([item])[0]
    assert out.shape == (1, 3, 64, 64) and out.dtype == torch.float32
    assert torch.equal(out, _solo(diffuser, item))


def _mixed_group(encoder, inits) -> list[Item]:
    """Three items differing in seed, denoise, CFG, prompt (and its length), steps and sampler."""
    long_prompt = ", ".join(["a very long prompt about mountains and rivers"] * 12)  # two chunks
    return [
        _item(encoder, inits[0], seed=1, denoise=0.3, cfg_scale=7.0, steps=4, sampler="euler_a"),
        _item(encoder, inits[1], prompt="a red fox", seed=2, denoise=0.9, cfg_scale=4.5, steps=2, sampler="euler"),
        _item(encoder, None, prompt=long_prompt, seed=3, denoise=1.0, cfg_scale=1.0, steps=3, sampler="dpmpp_2m"),
    ]


def test_group_items_match_their_solo_renders(diffuser, lockstep, encoder, inits):
    items = _mixed_group(encoder, inits)
    length = max(it.cond.shape[1] for it in items)
    outs = lockstep(items)
    for item, out in zip(items, outs):
        padded = Item(**{**vars(item), "cond": encoder.pad_to(item.cond, length),
                         "uncond": encoder.pad_to(item.uncond, length)})
        assert out.shape == (1, 3, 64, 64)
        assert _mad(out, _solo(diffuser, padded)) < TOL


def test_same_group_twice_is_bit_identical(lockstep, encoder, inits):
    items = _mixed_group(encoder, inits)
    first, second = lockstep(items), lockstep(items)
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    assert not torch.equal(first[0], first[1])


def test_unet_calls_are_batched(models, encoder, inits):
    lock = LockstepDiffuser(models)
    seen: list[int] = []
    hook = models.unet.register_forward_hook(lambda _m, args, _out: seen.append(args[0].shape[0]))
    try:
        lock([_item(encoder, inits[i], seed=i, denoise=1.0, steps=3) for i in range(3)])
    finally:
        hook.remove()
    assert lock.last_steps_run == 3 and len(seen) == 3 and lock.unet_calls == 3
    assert seen == [6, 6, 6]  # 3 items x (uncond, cond)


def test_items_with_fewer_steps_drop_out(models, encoder, inits):
    lock = LockstepDiffuser(models)
    seen: list[int] = []
    hook = models.unet.register_forward_hook(lambda _m, args, _out: seen.append(args[0].shape[0]))
    try:
        outs = lock([_item(encoder, inits[0], denoise=0.3, steps=4), _item(encoder, inits[1], denoise=0.9, steps=4)])
    finally:
        hook.remove()
    assert seen == [4, 2, 2]  # int(4*0.9)=3 steps vs int(4*0.3)=1 step
    assert all(o.shape == (1, 3, 64, 64) for o in outs)


def test_denoise_zero_returns_init_and_txt2img_mixes_in(lockstep, encoder, inits, diffuser):
    still = _item(encoder, inits[0], denoise=0.0)
    fresh = _item(encoder, None, denoise=1.0, seed=4)
    outs = lockstep([still, fresh])
    assert outs[0] is inits[0]
    assert _mad(outs[1], _solo(diffuser, fresh)) < TOL
    assert lockstep([still]) == [inits[0]]


def test_tiny_denoise_still_runs_one_step(lockstep, encoder, inits, diffuser):
    item = _item(encoder, inits[0], denoise=0.05, steps=3)  # effective_steps -> 20, one step kept
    out = lockstep([item])[0]
    assert lockstep.last_steps_run == 1 and torch.equal(out, _solo(diffuser, item))


def test_mixed_sizes_are_refused(lockstep, encoder, inits):
    with pytest.raises(ValueError, match="width/height"):
        lockstep([_item(encoder, inits[0]), _item(encoder, None, width=32, height=32)])


def test_unequal_lengths_need_an_encoder(models, encoder, inits):
    long_prompt = ", ".join(["a very long prompt about mountains and rivers"] * 12)
    with pytest.raises(ValueError, match="encoder"):
        LockstepDiffuser(models)([_item(encoder, inits[0]), _item(encoder, inits[1], prompt=long_prompt)])


def test_compatibility(models, encoder, inits):
    a, b = _item(encoder, inits[0]), _item(encoder, None, sampler="ddim")
    long = _item(encoder, None, prompt=", ".join(["mountains and rivers at dawn"] * 20))
    assert lockstep_compatible(a, b) and lockstep_compatible(a, long)
    assert not lockstep_compatible(a, long, exact=True)
    assert not lockstep_compatible(a, _item(encoder, None, width=128))


def test_bench_small_runs(tmp_path):
    import importlib.util
    import json
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "bench_lockstep", Path(__file__).resolve().parents[2] / "bench" / "lockstep.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.main(["--size", "small", "--ks", "1,2", "--calls", "1", "--warmup", "0",
                         "--decode", "batched", "--out", str(tmp_path)])
    assert [(r["mode"].split()[0], r["k"]) for r in result["rows"]] == [("diffuser", 1), ("lockstep,", 1),
                                                                         ("lockstep,", 2)]
    assert all(r["fps"] > 0 for r in result["rows"])
    saved = json.loads(next(tmp_path.glob("lockstep-*-small.json")).read_text())
    assert saved["rows"] == result["rows"]


# ---------------------------------------------------------------- ControlNet


def _count_forwards(net, rows: list[int]):
    """Forward hook appending each call's batch rows to `rows`; returns the handle."""
    return net.register_forward_hook(lambda _m, args, _out: rows.append(args[0].shape[0]))


@pytest.mark.parametrize("weight,start,end", [(1.0, 0.0, 1.0), (0.7, 0.25, 0.75)])
@pytest.mark.parametrize("img2img", [True, False])
def test_single_item_with_controlnet_is_bit_exact(diffuser, lockstep, encoder, inits, hints, nets,
                                                   img2img, weight, start, end):
    unit = ControlInput(nets[0], hints[0], weight=weight, guidance_start=start, guidance_end=end)
    item = _item(encoder, inits[0] if img2img else None, denoise=0.9, steps=5 if img2img else 4, controls=[unit])
    out = lockstep([item])[0]
    assert lockstep.last_steps_run == 4  # window 0.25..0.75 keeps steps 1 and 2 of 4
    assert torch.equal(out, _solo(diffuser, item))
    assert _mad(out, _solo(diffuser, _no_controls(item))) > TOL  # the control has a visible effect


def _no_controls(item: Item) -> Item:
    return Item(**{**vars(item), "controls": None})


@pytest.mark.parametrize("img2img", [True, False])
def test_single_item_with_two_controlnets_is_bit_exact(diffuser, lockstep, encoder, inits, hints, nets, img2img):
    units = [ControlInput(nets[0], hints[0], weight=0.8, guidance_end=0.75),
             ControlInput(nets[1], hints[1], weight=0.5, guidance_start=0.25)]
    item = _item(encoder, inits[1] if img2img else None, denoise=0.9, steps=5 if img2img else 4, controls=units)
    assert torch.equal(lockstep([item])[0], _solo(diffuser, item))


def _control_group(encoder, inits, hints, nets) -> list[Item]:
    """Full-strength unit (4 steps), a weaker windowed unit (4 steps), no unit (2 steps); samplers differ."""
    return [
        _item(encoder, None, seed=21, steps=4, sampler="euler_a", controls=[ControlInput(nets[0], hints[0])]),
        _item(encoder, inits[1], prompt="a red fox", seed=22, denoise=0.9, steps=5, sampler="euler", cfg_scale=4.5,
              controls=[ControlInput(nets[0], hints[1], weight=0.6, guidance_start=0.25, guidance_end=0.75)]),
        _item(encoder, inits[2], seed=23, denoise=0.5, steps=4, sampler="euler_a"),
    ]


def test_group_with_controlnets_matches_solo_and_runs_the_net_once_per_step(diffuser, models, encoder, inits,
                                                                             hints, nets):
    items = _control_group(encoder, inits, hints, nets)
    lock = LockstepDiffuser(models)
    control_rows: list[int] = []
    unet_rows: list[int] = []
    hooks = [_count_forwards(nets[0], control_rows), _count_forwards(models.unet, unet_rows)]
    try:
        outs = lock(items)
    finally:
        for hook in hooks:
            hook.remove()
    assert lock.last_steps_run == 4 and unet_rows == [6, 6, 4, 4]  # the no-control item stops after 2 steps
    assert control_rows == [2, 4, 4, 2] and lock.control_calls == 4  # item 1's window keeps steps 1 and 2
    for item, out in zip(items, outs):
        assert _mad(out, _solo(diffuser, item)) < TOL
    assert _mad(outs[0], _solo(diffuser, _no_controls(items[0]))) > TOL


def test_group_with_controlnets_twice_is_bit_identical(lockstep, encoder, inits, hints, nets):
    items = _control_group(encoder, inits, hints, nets)
    first, second = lockstep(items), lockstep(items)
    assert all(torch.equal(a, b) for a, b in zip(first, second))


def test_weight_zero_unit_is_skipped_with_the_same_bits(diffuser, models, encoder, inits, hints, nets):
    item = _item(encoder, inits[0], denoise=0.9, steps=4, controls=[ControlInput(nets[0], hints[0], weight=0.0)])
    lock = LockstepDiffuser(models)
    rows: list[int] = []
    hook = _count_forwards(nets[0], rows)
    try:
        out = lock([item])[0]
    finally:
        hook.remove()
    assert rows == [] and lock.control_calls == 0
    assert torch.equal(out, lock([_no_controls(item)])[0])
    assert torch.equal(out, _solo(diffuser, item))  # diffusers runs the net at scale 0 and adds the zeros


def test_units_in_different_orders_match_their_solo_renders(diffuser, lockstep, encoder, inits, hints, nets):
    a = ControlInput(nets[0], hints[0], weight=0.9)
    b = ControlInput(nets[1], hints[1], weight=0.4, guidance_start=0.5)
    items = [_item(encoder, inits[0], denoise=1.0, steps=3, seed=31, controls=[a, b]),
             _item(encoder, inits[1], denoise=1.0, steps=3, seed=32, controls=[b, a])]
    for item, out in zip(items, lockstep(items)):
        assert _mad(out, _solo(diffuser, item)) < TOL


def test_bad_control_units_are_refused(lockstep, encoder, inits, hints, nets):
    from types import SimpleNamespace

    from anim.errors import ModelError

    backwards = ControlInput(nets[0], hints[0], guidance_start=0.6, guidance_end=0.4)
    with pytest.raises(ValueError, match="cannot be larger or equal"):
        lockstep([_item(encoder, inits[0], controls=[backwards])])
    pooled = SimpleNamespace(config=SimpleNamespace(global_pool_conditions=True))
    with pytest.raises(ModelError, match="global_pool_conditions"):
        lockstep([_item(encoder, inits[0], controls=[ControlInput(pooled, hints[0])])])
