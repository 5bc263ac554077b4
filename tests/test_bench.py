"""bench/frames.py --size small: both the naive loop and anim's path run and agree on output shape."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_small_runs_both_paths(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_frames", ROOT / "bench" / "frames.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    result = bench.main(["--size", "small", "--frames", "2", "--warmup", "1", "--out", str(tmp_path)])
    naive_shape, anim_shape = result["output_shapes"]
    assert naive_shape == anim_shape == [64, 64, 3]
    assert result["naive_fps"] > 0 and result["anim_fps"] > 0
    saved = json.loads(next(tmp_path.glob("*.json")).read_text())
    for key in ("device", "naive_fps", "anim_fps", "ratio", "tflops", "mfu", "peak_vram_gib"):
        assert key in saved
    assert {"unet", "controlnet", "vae encode", "vae decode"} <= set(saved["ms_per_frame"])
