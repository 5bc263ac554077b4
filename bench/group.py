"""Group benchmark: end-to-end frames/s of cross-job lockstep (anim.engine.group.render_group) through the engine.

For each K, K run folders of the same workload (different seeds and prompts) are rendered together by
render_group (warp, colour match, ControlNet, PNG writing: the whole engine, one batched UNet call per
step for the group), and the same K presets are rendered one after another with anim.engine.loop.render_run
as the solo reference. frames/s = K * frames / seconds; ratios are to the K=1 group row. One ModelCache
serves every render (models load once) and a short untimed run warms it up first.

Workload (--size full): 512x512, SD1.5 UNet/VAE/CLIP and an SD1.5 ControlNet built with random weights
(bench.frames.build_models) and saved as a diffusers folder in a temp dir, 20 steps x denoise 0.6 (every
frame img2img: a mid-grey init image at init_denoise 0.6), CFG 7, euler_a, 2D zoom 1.02 + 0.5 deg per
frame, LAB colour coherence, one ControlNet unit on a PNG edge map (annotator none), 8 frames per run,
no video, fp16 on CUDA. --size small: the tiny model and tiny ControlNet, 64x64, 4 steps, 3 frames per
run, on the CPU (a smoke test). Results: printed, and saved as JSON under bench/results/.

  python bench/group.py --size small --ks 1,2
  python bench/group.py                       # full workload (needs a GPU)
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import io
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.frames import NEGATIVE, PROMPT, build_models, control_image, device_label, save_result, sync

PROMPTS = (PROMPT, "a red fox in deep snow, watercolour", "a neon city street at night, rain, cinematic",
           "an old stone bridge over a river in autumn, oil painting", "a desert canyon at dawn, matte painting",
           "a coral reef with bright fish, underwater photograph", "a cabin in a pine forest, winter, etching",
           "a steam train crossing a viaduct, gouache")
SEED_BASE = 1000  # run slot s renders with seed SEED_BASE + s (seed_behavior iter: +1 per frame)
WARMUP_FRAMES = 2
GREY_LEVEL = 128  # the init image: every frame is img2img at denoise 0.6, as in bench/frames.py


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command line, with the workload's fixed parameters filled in per size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("full", "small"), default="full")
    parser.add_argument("--ks", default="1,2,4,8", help="comma-separated group sizes K")
    parser.add_argument("--frames", type=int, default=None, help="frames per run (default 8 full, 3 small)")
    parser.add_argument("--work", type=Path, default=None,
                        help="folder for models, presets and run folders (kept); default: a temp dir, removed")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)
    args.ks = [int(k) for k in args.ks.split(",") if k.strip()]
    if not args.ks or min(args.ks) < 1:
        parser.error("--ks takes group sizes >= 1, e.g. 1,2,4,8")
    small = args.size == "small"
    args.frames = args.frames or (3 if small else 8)
    args.width = args.height = 64 if small else 512
    args.steps, args.denoise, args.cfg = (4 if small else 20), 0.6, 7.0
    cuda = torch.cuda.is_available() and not small
    args.device = torch.device("cuda" if cuda else "cpu")
    args.dtype = "fp16" if cuda else "fp32"
    return args


# ---------------------------------------------------------------- inputs: models, images, presets


def save_full_models(folder: Path, dtype: torch.dtype) -> tuple[Path, Path]:
    """Save the random SD1.5 models as a diffusers folder and the ControlNet as its own; (model, controlnet)."""
    from anim.models.configs import model_index, write_json

    models, controlnet = build_models("full", torch.device("cpu"), dtype)
    model_dir, controlnet_dir = folder / "sd15-random", folder / "controlnet-random"
    models.unet.save_pretrained(model_dir / "unet", safe_serialization=True)
    models.vae.save_pretrained(model_dir / "vae", safe_serialization=True)
    models.text_encoder.save_pretrained(model_dir / "text_encoder", safe_serialization=True)
    models.tokenizer.save_pretrained(model_dir / "tokenizer")
    write_json(model_dir / "scheduler" / "scheduler_config.json", models.scheduler_config)
    write_json(model_dir / "model_index.json", model_index("sd15"))
    controlnet.save_pretrained(controlnet_dir, safe_serialization=True)
    return model_dir, controlnet_dir


def model_sources(args, work: Path) -> tuple[str, str]:
    """(model, controlnet) as the presets name them: `tiny` for small, saved random folders for full."""
    if args.size == "small":
        return "tiny", "tiny"
    dtype = torch.float16 if args.dtype == "fp16" else torch.float32
    started = time.perf_counter()
    model_dir, controlnet_dir = save_full_models(work / "models", dtype)
    print(f"built and saved the random SD1.5 models in {time.perf_counter() - started:.1f} s", flush=True)
    return str(model_dir), str(controlnet_dir)


def write_images(args, work: Path) -> tuple[Path, Path]:
    """(control map PNG, grey init PNG) at the render size."""
    from PIL import Image

    work.mkdir(parents=True, exist_ok=True)
    control, grey = work / "control.png", work / "grey.png"
    Image.fromarray(control_image(args.width, args.height)).save(control)
    Image.fromarray(np.full((args.height, args.width, 3), GREY_LEVEL, np.uint8)).save(grey)
    return control, grey


def base_preset(args, model: str, controlnet: str, control: Path, grey: Path) -> dict:
    """The workload as preset data, without seed and prompt (those differ per run)."""
    return {
        "model": model, "device": args.device.type, "dtype": args.dtype, "width": args.width,
        "height": args.height, "fps": 12, "max_frames": args.frames, "seed_behavior": "iter",
        "sampler": "euler_a", "steps": args.steps, "negative_prompt": NEGATIVE,
        "init_image": str(grey), "init_denoise": args.denoise,
        "motion": {"mode": "2d", "zoom": "0:(1.02)", "angle": "0:(0.5)"},
        "denoise": args.denoise, "cfg_scale": args.cfg, "color_coherence": "lab",
        "controlnet": [{"model": controlnet, "input": str(control), "annotator": "none", "weight": 1.0}],
        "output": {"video": False},
    }


def write_presets(folder: Path, base: dict, k: int, max_frames: int | None = None) -> list[Path]:
    """K preset files of the workload, run slot s with seed SEED_BASE + s and prompt PROMPTS[s]."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for slot in range(k):
        preset = {**base, "seed": SEED_BASE + slot, "prompts": {0: PROMPTS[slot % len(PROMPTS)]}}
        if max_frames is not None:
            preset["max_frames"] = max_frames
        path = folder / f"run{slot}.yaml"
        path.write_text(yaml.safe_dump(preset, sort_keys=False))
        paths.append(path)
    return paths


def open_runs(presets: list[Path], out_root: Path) -> list:
    """Fresh run folders for the presets, under out_root/<preset stem> (old ones removed: a resume times nothing)."""
    from anim.runfolder import open_run

    shutil.rmtree(out_root, ignore_errors=True)
    return [open_run(str(path), [], out=out_root / path.stem) for path in presets]


# ---------------------------------------------------------------- timing


class ForwardCounter:
    """Counts UNet and ControlNet forwards (class-level wrappers), to show what a group batches."""

    def __init__(self) -> None:
        from diffusers import ControlNetModel, UNet2DConditionModel

        self.classes = {"unet": UNet2DConditionModel, "controlnet": ControlNetModel}
        self.counts = dict.fromkeys(self.classes, 0)

    @contextlib.contextmanager
    def counting(self):
        """Within the block every forward of the counted classes adds one to its count."""
        originals = {name: cls.forward for name, cls in self.classes.items()}

        def wrap(name, forward):
            @functools.wraps(forward)  # signature inspection (diffusers does some) sees the original
            def counted(module, *a, **k):
                self.counts[name] += 1
                return forward(module, *a, **k)
            return counted
        for name, cls in self.classes.items():
            cls.forward = wrap(name, originals[name])
        try:
            yield self
        finally:
            for name, cls in self.classes.items():
                cls.forward = originals[name]


def render_group_checked(runs: list, cache) -> None:
    """render_group, raising the first member error (a benchmark must not time failed renders)."""
    from anim.engine.group import render_group

    errors = render_group(runs, cache=cache)
    for run, error in zip(runs, errors):
        if error is not None:
            raise RuntimeError(f"{run.dir.name}: {type(error).__name__}: {error}") from error


def render_solo(runs: list, cache) -> None:
    """The runs one after another, each alone (the non-lockstep reference)."""
    from anim.engine.loop import render_run

    for run in runs:
        render_run(run, quiet=True, cache=cache)


def timed(render, runs: list, cache, device: torch.device) -> dict:
    """Seconds, peak VRAM and forward counts of render(runs, cache); render_run's prints are swallowed."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    counter = ForwardCounter()
    sync(device)
    started = time.perf_counter()
    with counter.counting(), contextlib.redirect_stdout(io.StringIO()):
        render(runs, cache)
    sync(device)
    seconds = time.perf_counter() - started
    vram = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    return {"seconds": seconds, "peak_vram_gib": vram, "unet_forwards": counter.counts["unet"],
            "controlnet_forwards": counter.counts["controlnet"]}


def warm_up(base: dict, work: Path, cache, device: torch.device) -> float:
    """Untimed short renders (alone and as a group of 1): model load and first calls; returns seconds."""
    started = time.perf_counter()
    presets = write_presets(work / "presets" / "warmup", base, 1, max_frames=WARMUP_FRAMES)
    with contextlib.redirect_stdout(io.StringIO()):
        render_solo(open_runs(presets, work / "runs" / "warmup-solo"), cache)
        render_group_checked(open_runs(presets, work / "runs" / "warmup-group"), cache)
    sync(device)
    return time.perf_counter() - started


def controlnet_load_seconds(source: str, device: torch.device, dtype: str) -> float:
    """Seconds one ControlNet load takes (every run loads its own: ControlUnits in the engine)."""
    from anim.models import load_controlnet, resolve_dtype

    started = time.perf_counter()
    net = load_controlnet(source, device=device, dtype=resolve_dtype(device, dtype))
    sync(device)
    seconds = time.perf_counter() - started
    del net
    return seconds


# ---------------------------------------------------------------- rows and results


def frame_stats(runs: list) -> tuple[list[int], list[np.ndarray]]:
    """(shape of the frames, every frame as uint8) of the runs; all frames must exist with one shape."""
    from anim.media.png import read_png_u8

    frames = [read_png_u8(run.frame_path(f)) for run in runs for f in range(run.preset.max_frames)]
    shapes = {f.shape for f in frames}
    if len(shapes) != 1:
        raise RuntimeError(f"frames of different shapes: {sorted(shapes)}")
    return list(frames[0].shape), frames


def measure_k(k: int, base: dict, work: Path, cache, args) -> list[dict]:
    """The group and the solo row of one K (same presets), with the group's mean |difference| to solo."""
    presets = write_presets(work / "presets" / f"k{k}", base, k)
    rows = {}
    for mode, render in (("group", render_group_checked), ("solo", render_solo)):
        runs = open_runs(presets, work / "runs" / f"{mode}-k{k}")
        stats = timed(render, runs, cache, args.device)
        shape, frames = frame_stats(runs)
        rows[mode] = {"mode": mode, "k": k, "fps": k * args.frames / stats["seconds"], **stats,
                      "frames": k * args.frames, "frame_shape": shape, "run_dirs": [str(r.dir) for r in runs],
                      "_frames": frames}
    group, solo = rows["group"], rows["solo"]
    diffs = [np.abs(a.astype(np.int16) - b.astype(np.int16)).mean() for a, b in zip(group["_frames"], solo["_frames"])]
    group["mean_abs_diff_vs_solo_levels"] = float(np.mean(diffs))
    for row in rows.values():
        del row["_frames"]
        print(f"  {row['mode']:<6} K={k:<3} {row['fps']:8.3f} frames/s  ({row['seconds']:.2f} s, "
              f"{row['unet_forwards']} UNet / {row['controlnet_forwards']} ControlNet forwards)", flush=True)
    return [group, solo]


def add_ratios(rows: list[dict]) -> None:
    """ratio_to_k1: frames/s over the K=1 group row's (the first K when 1 is not measured)."""
    groups = [r for r in rows if r["mode"] == "group"]
    base = next((r for r in groups if r["k"] == 1), groups[0])["fps"]
    for row in rows:
        row["ratio_to_k1"] = row["fps"] / base


def print_table(rows: list[dict], label: str, args) -> None:
    """The result table: mode, K, frames/s, ratio to the K=1 group row, peak VRAM."""
    print(f"\nend-to-end group throughput on {label}, {args.size}: {args.frames} frames per run")
    print(f"{'mode':<6} {'K':>3} {'frames/s':>10} {'vs K=1':>8} {'VRAM GiB':>9} {'|grp-solo|':>10}")
    for r in rows:
        vram = f"{r['peak_vram_gib']:.2f}" if r["peak_vram_gib"] is not None else "-"
        diff = f"{r['mean_abs_diff_vs_solo_levels']:.3f}" if "mean_abs_diff_vs_solo_levels" in r else "-"
        print(f"{r['mode']:<6} {r['k']:>3} {r['fps']:>10.3f} {r['ratio_to_k1']:>7.2f}x {vram:>9} {diff:>10}")


def run_bench(args, work: Path) -> dict:
    """Build inputs, warm up, measure every K; the result dict (rows and workload)."""
    from anim.engine.cache import ModelCache

    model, controlnet = model_sources(args, work)
    control, grey = write_images(args, work)
    base = base_preset(args, model, controlnet, control, grey)
    cache = ModelCache()
    warmup_s = warm_up(base, work, cache, args.device)
    load_s = controlnet_load_seconds(controlnet, args.device, args.dtype)
    label = device_label(args.device)
    print(f"device {label}, size {args.size}: {args.width}x{args.height}, {args.steps} steps x denoise "
          f"{args.denoise}, CFG {args.cfg}, euler_a, 1 ControlNet unit, {args.frames} frames per run; "
          f"warm-up {warmup_s:.1f} s, one ControlNet load {load_s:.2f} s", flush=True)
    rows = [row for k in args.ks for row in measure_k(k, base, work, cache, args)]
    add_ratios(rows)
    print_table(rows, label, args)
    return {"device": label, "size": args.size, "width": args.width, "height": args.height,
            "steps": args.steps, "denoise": args.denoise, "cfg": args.cfg, "sampler": "euler_a",
            "controlnet": True, "frames_per_run": args.frames, "dtype": args.dtype, "warmup_s": warmup_s,
            "controlnet_load_s": load_s, "rows": rows}


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="anim-bench-group-"))
    try:
        result = run_bench(args, work)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    if args.work is None:  # the run folders are gone with the temp dir
        for row in result["rows"]:
            row.pop("run_dirs")
    save_result(args.out, f"group-{result['device']}-{args.size}", result)
    return result


if __name__ == "__main__":
    main()
