"""Lockstep benchmark: frames/s when K compatible jobs share each UNet call (anim.diffusion.lockstep).

The workload of bench/frames.py: --size full: SD1.5 architecture and an SD1.5 ControlNet with random
weights, 512x512, 20 steps x denoise 0.6, CFG 7, euler_a, fp16 on CUDA; --size small: the tiny model
and tiny ControlNet, 64x64, 4 steps, on the CPU. Every item has its own init image and seed and one
ControlNet unit (the synthetic edge map of bench.frames.control_image, weight 1, whole schedule);
lockstep batches the ControlNet like the UNet (the items share one ControlNet model, so it runs once
per step for the whole group). --no-controlnet drops the unit (results then go to
lockstep-<device>-<size>-no-controlnet.json). For each K, N lockstep calls of K items are timed after
a warm-up call; throughput = K*N / seconds. The solo Diffuser (one pipeline call per frame) is the
reference row. Results: printed as a table with the ratio to K=1, and saved as JSON under bench/results/.

  python bench/lockstep.py --size small --ks 1,2,4,8
  python bench/lockstep.py                       # full workload (needs a GPU)
  python bench/lockstep.py --no-controlnet       # UNet only
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.frames import NEGATIVE, PROMPT, build_models, control_image, device_label, save_result, sync

SEEDS_PER_CALL = 1000  # item seeds: call * SEEDS_PER_CALL + slot, distinct across calls


def make_controls(controlnet, args, device: torch.device) -> list | None:
    """The workload's ControlNet unit (edge map, weight 1, whole schedule) as a ControlInput list; None if off."""
    from anim.diffusion.diffuse import ControlInput
    from anim.media.tensors import from_uint8_hwc

    if not args.controlnet:
        return None
    image = from_uint8_hwc(control_image(args.width, args.height), device)  # (1,3,H,W) float32 in [0,1]
    return [ControlInput(controlnet, image, 1.0, 0.0, 1.0)]


def make_items(encoder, k: int, call: int, args) -> list:
    """K img2img items of the workload, each with its own random init image and seed, sharing args.controls."""
    from anim.diffusion.lockstep import Item

    cond, uncond = encoder.pair(PROMPT, NEGATIVE)
    gen = torch.Generator("cpu").manual_seed(call)
    items = []
    for slot in range(k):
        init = torch.rand(1, 3, args.height, args.width, generator=gen).to(encoder.device)
        items.append(Item(init=init, cond=cond, uncond=uncond, denoise=args.denoise, cfg_scale=args.cfg,
                          steps=args.steps, sampler="euler_a", seed=call * SEEDS_PER_CALL + slot,
                          width=args.width, height=args.height, controls=args.controls))
    return items


def time_calls(render, encoder, k: int, args, device: torch.device) -> float:
    """Frames/s of `render(items)` over args.calls timed calls of k items, after args.warmup calls."""
    for call in range(args.warmup):
        render(make_items(encoder, k, call, args))
    batches = [make_items(encoder, k, args.warmup + call, args) for call in range(args.calls)]
    sync(device)
    started = time.perf_counter()
    for items in batches:
        render(items)
    sync(device)
    return k * args.calls / (time.perf_counter() - started)


def solo_render(diffuser):
    """A render(items) that calls the Diffuser once per item (the non-lockstep reference)."""
    return lambda items: [diffuser(**vars(it)) for it in items]


def run(models, args, device: torch.device) -> list[dict]:
    """One row per (mode, K): frames/s, ratio to K=1 of the same mode, peak VRAM."""
    from anim.diffusion.conditioning import PromptEncoder
    from anim.diffusion.diffuse import Diffuser
    from anim.diffusion.lockstep import LockstepDiffuser

    encoder = PromptEncoder.from_models(models)
    modes = {"diffuser (solo)": solo_render(Diffuser(models))}
    for decode in args.decode:
        modes[f"lockstep, {decode} decode"] = LockstepDiffuser(models, batch_decode=decode == "batched")
    rows = []
    for mode, render in modes.items():
        base = None
        for k in ([1] if mode.startswith("diffuser") else args.ks):
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            fps = time_calls(render, encoder, k, args, device)
            base = base or fps
            vram = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
            rows.append({"mode": mode, "k": k, "fps": fps, "ratio_to_k1": fps / base, "peak_vram_gib": vram})
            print(f"  {mode:<28} K={k:<3} {fps:8.3f} frames/s  x{fps / base:5.2f}", flush=True)
    return rows


def print_table(rows: list[dict], label: str, controlnet: bool) -> None:
    """The result table: frames/s and the ratio to K=1 of the same mode."""
    print(f"\nlockstep throughput on {label}, ControlNet {'on' if controlnet else 'off'}")
    print(f"{'mode':<28} {'K':>3} {'frames/s':>10} {'vs K=1':>8} {'VRAM GiB':>9}")
    for r in rows:
        vram = f"{r['peak_vram_gib']:.2f}" if r["peak_vram_gib"] is not None else "-"
        print(f"{r['mode']:<28} {r['k']:>3} {r['fps']:>10.3f} {r['ratio_to_k1']:>7.2f}x {vram:>9}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command line, with the workload's fixed parameters filled in per size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("full", "small"), default="full")
    parser.add_argument("--ks", default="1,2,4,8", help="comma-separated group sizes K")
    parser.add_argument("--calls", type=int, default=None, help="timed lockstep calls per K (3 full, 10 small)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls per K")
    parser.add_argument("--decode", default="batched,per-item", help="VAE decode modes: batched, per-item")
    parser.add_argument("--controlnet", action=argparse.BooleanOptionalAction, default=True,
                        help="one ControlNet unit per item (the standard workload)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)
    args.ks = [int(k) for k in args.ks.split(",") if k.strip()]
    args.decode = [d.strip() for d in args.decode.split(",") if d.strip()]
    if any(d not in ("batched", "per-item") for d in args.decode):
        parser.error("--decode takes batched and/or per-item")
    small = args.size == "small"
    args.calls = args.calls or (10 if small else 3)
    args.width = args.height = 64 if small else 512
    args.steps, args.denoise, args.cfg = (4 if small else 20), 0.6, 7.0
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() and args.size == "full" else "cpu")
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    models, controlnet = build_models(args.size, device, dtype)
    args.controls = make_controls(controlnet, args, device)
    label = device_label(device)
    print(f"device {label}, size {args.size}: {args.width}x{args.height}, {args.steps} steps x denoise "
          f"{args.denoise}, CFG {args.cfg}, euler_a, ControlNet {'on' if args.controlnet else 'off'}, "
          f"{args.calls} timed calls per K")
    with torch.inference_mode():
        rows = run(models, args, device)
    print_table(rows, label, args.controlnet)
    result = {"device": label, "size": args.size, "width": args.width, "height": args.height,
              "steps": args.steps, "denoise": args.denoise, "cfg": args.cfg, "sampler": "euler_a",
              "controlnet": args.controlnet,
              "calls": args.calls, "warmup": args.warmup, "rows": rows}
    suffix = "" if args.controlnet else "-no-controlnet"
    save_result(args.out, f"lockstep-{label}-{args.size}{suffix}", result)
    return result


if __name__ == "__main__":
    main()
