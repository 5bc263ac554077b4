"""Helpers for the batch tests: tiny presets written on the fly, the CLI as a subprocess, run folder reads."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
# One torch thread per process: CPU results depend on the thread count (the reference render and the batch
# must agree), and on a busy 2-core machine OpenMP threads spinning against each other make the tiny
# model 10-40x slower.
ENV = dict(os.environ, OMP_NUM_THREADS="1")
# 2-3 frames at 64x64 with 2 steps: a job takes ~0.2 s once the tiny model is loaded.
TINY = {
    "model": "tiny", "width": 64, "height": 64, "fps": 4, "max_frames": 3, "seed": 1, "steps": 2,
    "prompts": {0: "a cabin in the woods"}, "motion": {"mode": "2d", "zoom": "0:(1.02)"},
}


def write_preset(folder: Path, name: str, **changes) -> Path:
    """folder/name.yaml: the TINY preset with `changes` (top-level keys) applied."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**TINY, **changes}, sort_keys=False))
    return path


def six_presets(folder: Path) -> Path:
    """p1..p6 in `folder`, p4 broken (an unknown key)."""
    for i in range(1, 7):
        write_preset(folder, f"p{i}", seed=i, prompts={0: f"a cabin, take {i}"})
    (folder / "p4.yaml").write_text((folder / "p4.yaml").read_text() + "zoom_typo: 1.0\n")
    return folder


def render_cli(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python render.py ARGS --quiet` from the repository root (a plain, uninterrupted render)."""
    return subprocess.run([sys.executable, str(ROOT / "render.py"), *map(str, args), "--quiet"], cwd=ROOT,
                          env=ENV, capture_output=True, text=True, timeout=timeout)


def batch_cli(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    """`python render.py batch ARGS` from the repository root."""
    return subprocess.run([sys.executable, str(ROOT / "render.py"), "batch", *map(str, args)], cwd=ROOT,
                          env=ENV, capture_output=True, text=True, timeout=timeout)


def batch_popen(*args) -> subprocess.Popen:
    """The same, started in the background (output discarded)."""
    return subprocess.Popen([sys.executable, str(ROOT / "render.py"), "batch", *map(str, args)], cwd=ROOT,
                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def rows(root: Path) -> dict[str, dict]:
    """batch.json as {job name: row}."""
    return {row["name"]: row for row in json.loads((root / "batch.json").read_text())}


def frame_bytes(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((run_dir / "frames").glob("*.png"))}


def mtimes(root: Path) -> dict[Path, int]:
    """mtime of every frame and video under a batch root."""
    files = list(root.glob("*/frames/*.png")) + list(root.glob("*/video.mp4"))
    return {p: p.stat().st_mtime_ns for p in files}


def render_starts(run_dir: Path) -> int:
    """How many times the engine started on this run folder (one `render ...` line per render_run)."""
    log = run_dir / "log.txt"
    return sum(" INFO render " in line for line in log.read_text().splitlines()) if log.exists() else 0


def killed_then_resumed(preset: Path, out: Path, *extra, kill_at: int, total: int, timeout: float = 240) -> None:
    """Render `preset` into `out`, SIGKILL it once `kill_at` frames are on disk, then `--resume` it; asserts the
    kill came before the end and the resume finished all `total` frames."""
    import signal
    import time

    process = subprocess.Popen([sys.executable, str(ROOT / "render.py"), str(preset), *map(str, extra), "--out",
                                str(out), "--quiet"], cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while len(list((out / "frames").glob("*.png"))) < kill_at and process.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert len(list((out / "frames").glob("*.png"))) < total, "the render finished before it could be killed"
    result = render_cli("--resume", out)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(list((out / "frames").glob("*.png"))) == total


def split_render_equals_whole(preset: Path, tmp: Path, *extra, first: str, total: int) -> None:
    """Render `preset` whole, and again as `--frames FIRST` then the rest, in this process; the frames must be the
    same bit for bit (a resumed render reads back from disk all it needs)."""
    import numpy as np
    from PIL import Image

    from anim.cli import main

    for name, frames in (("whole", []), ("split", ["--frames", first]), ("split", [])):
        assert main([str(preset), *map(str, extra), "--out", str(tmp / name), *frames, "--quiet"]) == 0
    whole, split = ([np.asarray(Image.open(p).convert("RGB")) for p in sorted((tmp / n / "frames").glob("*.png"))]
                    for n in ("whole", "split"))
    assert len(whole) == len(split) == total and all(np.array_equal(a, b) for a, b in zip(whole, split))
