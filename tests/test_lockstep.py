"""LockstepDiffuser: K=1 matches Diffuser, K>1 matches solo renders, determinism, batching, edge cases."""

from __future__ import annotations

import pytest
import torch

from anim.diffuse import Diffuser
from anim.lockstep import Item, LockstepDiffuser, fresh_scheduler, lockstep_compatible

TOL = 1e-3  # mean abs difference allowed where only the batch (float summation order) differs
BASE = {"denoise": 0.6, "cfg_scale": 7.0, "steps": 3, "sampler": "euler_a", "seed": 11, "width": 64, "height": 64}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from anim.models import load_models

    return load_models("tiny", device="cpu", cache_dir=tmp_path_factory.mktemp("anim-cache"))


@pytest.fixture(scope="module")
def encoder(models):
    from anim.conditioning import PromptEncoder

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


def test_compatibility_and_fresh_schedulers(models, encoder, inits):
    a, b = _item(encoder, inits[0]), _item(encoder, None, sampler="ddim")
    long = _item(encoder, None, prompt=", ".join(["mountains and rivers at dawn"] * 20))
    assert lockstep_compatible(a, b) and lockstep_compatible(a, long)
    assert not lockstep_compatible(a, long, exact=True)
    assert not lockstep_compatible(a, _item(encoder, None, width=128))
    one, two = (fresh_scheduler("euler_a", models.scheduler_config) for _ in range(2))
    assert one is not two and type(one) is type(two) and one.config == two.config


def test_bench_small_runs(tmp_path):
    import importlib.util
    import json
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "bench_lockstep", Path(__file__).resolve().parent.parent / "bench" / "lockstep.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.main(["--size", "small", "--ks", "1,2", "--calls", "1", "--warmup", "0",
                         "--decode", "batched", "--out", str(tmp_path)])
    assert [(r["mode"].split()[0], r["k"]) for r in result["rows"]] == [("diffuser", 1), ("lockstep,", 1),
                                                                         ("lockstep,", 2)]
    assert all(r["fps"] > 0 for r in result["rows"])
    saved = json.loads(next(tmp_path.glob("lockstep-*-small.json")).read_text())
    assert saved["rows"] == result["rows"]
