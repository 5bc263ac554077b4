"""Bench scripts at --size small: frames.py (naive vs anim), lockstep.py (with ControlNet), group.py (engine)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

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


def _load(name: str):
    """Import bench/<name>.py as a module (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_lockstep_bench_small_with_controlnet(tmp_path):
    """bench/lockstep.py --controlnet: solo and lockstep rows for K=1,2, every item with a ControlNet unit."""
    bench = _load("lockstep")
    assert bench.parse_args(["--no-controlnet"]).controlnet is False
    assert bench.parse_args([]).controlnet is True
    result = bench.main(["--size", "small", "--ks", "1,2", "--calls", "1", "--decode", "batched", "--controlnet",
                         "--out", str(tmp_path)])
    saved = json.loads(next(tmp_path.glob("lockstep-*-small.json")).read_text())
    assert saved["rows"] == result["rows"]
    assert saved["controlnet"] is True
    rows = {(r["mode"], r["k"]): r for r in saved["rows"]}
    assert set(rows) == {("diffuser (solo)", 1), ("lockstep, batched decode", 1), ("lockstep, batched decode", 2)}
    assert all(r["fps"] > 0 for r in rows.values())


def test_group_bench_small_renders_groups_and_solo(tmp_path):
    """bench/group.py --size small: group rows for K=1,2 and solo rows, frames of one shape in every run folder."""
    bench = _load("group")
    result = bench.main(["--size", "small", "--ks", "1,2", "--work", str(tmp_path / "work"),
                         "--out", str(tmp_path / "out")])
    saved = json.loads(next((tmp_path / "out").glob("group-*-small.json")).read_text())
    rows = {(r["mode"], r["k"]): r for r in saved["rows"]}
    assert {("group", 1), ("group", 2), ("solo", 1), ("solo", 2)} <= set(rows)
    assert all(r["fps"] > 0 and r["ratio_to_k1"] > 0 for r in rows.values())
    assert rows[("group", 1)]["ratio_to_k1"] == 1.0
    assert rows[("group", 1)]["mean_abs_diff_vs_solo_levels"] == 0.0  # K=1 lockstep is bit-exact with solo
    assert rows[("group", 2)]["unet_forwards"] == rows[("group", 1)]["unet_forwards"]  # one UNet call per step
    # the members share one ControlNet (ModelCache.controlnet), so it is batched too
    assert rows[("group", 2)]["controlnet_forwards"] == rows[("group", 1)]["controlnet_forwards"]
    shapes = set()
    for row in result["rows"]:
        assert len(row["run_dirs"]) == row["k"]
        for run_dir in map(Path, row["run_dirs"]):
            frames = sorted((run_dir / "frames").glob("*.png"))
            assert len(frames) == saved["frames_per_run"] == 3
            shapes.update(np.asarray(Image.open(f)).shape for f in frames)
    assert shapes == {(64, 64, 3)}


@pytest.mark.slow
def test_coherence_bench_small_measures_every_method(tmp_path):
    bench = _load("coherence")
    result = bench.main(["--size", "small", "--frames", "3", "--out", str(tmp_path)])
    rows = {(row["clip"], row["method"]) for row in result["rows"]}
    assert rows == {(clip, method) for clip in ("pan+zoom", "static") for method in bench.METHODS}
    assert all(row["warp_error"] > 0 and row["s_per_frame"] > 0 for row in result["rows"])
