"""Temporal coherence benchmark: the same input video rendered by each coherence method, warp error and seconds
per frame side by side, measured in one run.

Input: a textured image panned and zoomed by a known motion (written as a video), and a second clip of the same
texture held still (a static camera). Methods, each a video-input render (every frame img2img of its input frame):
plain per-frame img2img, flow_blend (the previous output carried along the input's optical flow), cross-frame
attention (anchors: frame 0 and the previous frame), flow-guided latent fusion (over every step), fusion with
flow_blend, and the AnimateDiff engine (windows of 8 frames, 4 held from the window before). Warp error
(anim.metrics, flow and occlusion from the input) is lower for steadier output.

  python bench/coherence.py --size small                      # the tiny models on the CPU (a smoke test)
  python bench/coherence.py --model stable-diffusion-v1-5/stable-diffusion-v1-5 --size full \
      --motion-adapter guoyww/animatediff-motion-adapter-v1-5-2     # real weights, on a GPU

The tiny model and tiny motion adapter have random weights: their numbers show that each path runs and what it
costs, and what acts directly on latents (fusion) shows there too; whether attention-based methods (cross-frame,
AnimateDiff) steady real frames only real weights can show. Results are printed and saved as JSON under
bench/results/.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

METHODS = {
    "plain img2img": [],
    "flow_blend 0.8": ["flow_blend=0.8"],
    "cross-frame 0.8": ["coherence.cross_frame.weight=0.8"],
    "fusion 0.8": ["coherence.fusion.weight=0.8", "coherence.fusion.end=1"],
    "fusion+flow_blend": ["coherence.fusion.weight=0.8", "coherence.fusion.end=1", "flow_blend=0.8"],
    "animatediff": ["engine=animatediff", "animatediff.context=8", "animatediff.overlap=4"],
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("small", "full"), default="small")
    parser.add_argument("--model", default="tiny", help="tiny | hub id | diffusers folder | .safetensors")
    parser.add_argument("--motion-adapter", default="tiny", help="tiny | hub id | folder | AnimateDiff file")
    parser.add_argument("--frames", type=int, default=None, help="frames per clip (default 10 small, 24 full)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)
    small = args.size == "small"
    args.frames = args.frames or (10 if small else 24)
    args.side, args.steps = (64, 3) if small else (512, 20)
    return args


def texture(side: int, seed: int = 0) -> np.ndarray:
    """A (2*side, 2*side, 3) uint8 texture with detail at several scales (room to pan and zoom inside)."""
    import cv2

    rng = np.random.default_rng(seed)
    image = sum(cv2.resize(rng.random((2 * side // s, 2 * side // s, 3)), (2 * side, 2 * side),
                           interpolation=cv2.INTER_CUBIC) for s in (2, 8, 32))
    image = (image - image.min()) / (image.max() - image.min())
    return np.round(image * 255).astype(np.uint8)


def clip(big: np.ndarray, side: int, frames: int, moving: bool) -> list[np.ndarray]:
    """Frames cut from `big`: panned 1.5 px/frame right and zoomed in 1%/frame (moving), or held still."""
    import cv2

    out = []
    for t in range(frames):
        scale = 1.01 ** t if moving else 1.0
        shift = 1.5 * t if moving else 0.0
        half = side / (2 * scale)
        cx, cy = big.shape[1] / 2 + shift, big.shape[0] / 2
        matrix = np.float32([[1 / (2 * half / side), 0, -(cx - half) * side / (2 * half)],
                             [0, 1 / (2 * half / side), -(cy - half) * side / (2 * half)]])
        out.append(cv2.warpAffine(big, matrix, (side, side), flags=cv2.INTER_AREA))
    return out


def render(preset: Path, out: Path, extra: list[str]) -> float:
    """Render (in this process) and return seconds per frame."""
    from anim.cli import main

    started = time.perf_counter()
    if main([str(preset), *extra, "--out", str(out), "--quiet"]) != 0:
        raise SystemExit(f"render of {preset} {extra} failed")
    frames = len(list((out / "frames").glob("*.png")))
    return (time.perf_counter() - started) / max(1, frames)


def run(args) -> dict:
    from PIL import Image

    from anim.media.video import write_test_video
    from anim.metrics import warp_error

    results: dict = {"size": args.size, "model": args.model, "frames": args.frames, "rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        big = texture(args.side)
        warmup = False
        for name, moving in (("pan+zoom", True), ("static", False)):
            source = clip(big, args.side, args.frames, moving)
            video = write_test_video(work / f"{name}.mp4", source)
            preset = work / f"{name}.yaml"
            preset.write_text(yaml.safe_dump({
                "model": args.model, "width": args.side, "height": args.side, "seed": 7, "steps": args.steps,
                "prompts": {0: "an oil painting of a mossy stone wall"}, "init_video": str(video),
                "denoise": 0.5, "noise": 0.0, "motion": {"mode": "none"}, "output": {"video": False}}))
            if not warmup:  # imports and first model load stay out of the timings
                render(preset, work / "warmup", ["max_frames=2"])
                warmup = True
            for method, extra in METHODS.items():
                if "engine=animatediff" in extra:
                    extra = [*extra, f"motion_adapter={args.motion_adapter}"]
                seconds = render(preset, work / f"{name}-{len(results['rows'])}", extra)
                run_dir = work / f"{name}-{len(results['rows'])}"
                frames = [np.asarray(Image.open(p).convert("RGB")) for p in sorted((run_dir / "frames").glob("*.png"))]
                error, _ = warp_error(frames, source)
                results["rows"].append({"clip": name, "method": method, "warp_error": error, "s_per_frame": seconds})
    return results


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    results = run(args)
    print(f"{'clip':<10} {'method':<18} {'warp error':>11} {'s/frame':>8}")
    for row in results["rows"]:
        print(f"{row['clip']:<10} {row['method']:<18} {row['warp_error']:>11.5f} {row['s_per_frame']:>8.2f}")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"coherence-{args.size}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(results, indent=1))
    print(f"saved {path}")
    return results


if __name__ == "__main__":
    main()
