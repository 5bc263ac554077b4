"""End to end through render.py on the tiny model: frames, metadata, schedule, video, exact resume."""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from anim.media.png import read_png_metadata

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ROOT / "presets" / "smoke.yaml"
# A short render for the resume tests: 6 frames at 128x128, 3 steps, everything in the loop switched on.
SMALL = ["max_frames=6", "width=128", "height=128", "steps=3", "unsharp_amount=0.3", "contrast=1.01"]


def render(*args, timeout=240):
    return subprocess.run([sys.executable, str(ROOT / "render.py"), *map(str, args), "--quiet"], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def frame_bytes(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((run_dir / "frames").glob("*.png"))}


def test_smoke_render_end_to_end(tmp_path):
    out = tmp_path / "smoke"
    from tests.batch.util import (
        render_cli,  # one torch thread, as the golden frames were recorded
    )
    from tests.test_golden import check_golden

    started = time.perf_counter()
    result = render_cli(SMOKE, "--out", out)
    seconds = time.perf_counter() - started
    assert result.returncode == 0, result.stderr
    check_golden("smoke", out)  # the golden smoke frames (tests/test_golden.py)
    n_frames, _ = imageio_ffmpeg.count_frames_and_secs(str(out / "video.mp4"))
    assert n_frames == 8
    rows = list(csv.DictReader(open(out / "schedule.csv", newline="")))
    pngs = sorted((out / "frames").glob("*.png"))
    assert len(pngs) == len(rows) == 8
    for png, row in zip(pngs, rows):
        parameters, meta = read_png_metadata(png)
        assert meta["frame"] == int(row["frame"]) == int(png.stem)
        assert meta["seed"] == int(row["seed"]) and meta["prompt"] == row["prompt"]
        assert meta["zoom"] == pytest.approx(float(row["zoom"]))
        assert f"Seed: {row['seed']}," in parameters and "Sampler: Euler a" in parameters
        assert parameters.startswith(row["prompt"])
    assert (out / "state.json").exists() and "timing" in (out / "log.txt").read_text()
    print(f"smoke render: {seconds:.1f} s wall")


def test_rerun_skips_done_frames_and_refuses_changed_preset(tmp_path):
    out = tmp_path / "run"
    assert render(SMOKE, *SMALL, "max_frames=2", "--out", out).returncode == 0
    before = {p: p.stat().st_mtime_ns for p in (out / "frames").glob("*.png")}
    again = render(SMOKE, *SMALL, "max_frames=2", "--out", out)
    assert again.returncode == 0 and "0 frame(s) rendered" in again.stdout
    assert before == {p: p.stat().st_mtime_ns for p in (out / "frames").glob("*.png")}
    changed = render(SMOKE, *SMALL, "max_frames=2", "cfg_scale=3", "--out", out)
    assert changed.returncode == 2 and "cfg_scale" in changed.stderr and "--force" in changed.stderr
    assert before == {p: p.stat().st_mtime_ns for p in (out / "frames").glob("*.png")}  # nothing lost
    forced = render(SMOKE, *SMALL, "max_frames=2", "cfg_scale=3", "--out", out, "--force")
    assert forced.returncode == 0


def _wait_for(predicate, process, timeout_s=180):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.02)
    return False


@pytest.mark.slow  # ~80 s; the default suite keeps tests/test_fuzz_hostile.py's damaged-folder resumes
def test_kill_and_resume_is_byte_identical(tmp_path):
    reference = tmp_path / "reference"
    assert render(SMOKE, *SMALL, "--out", reference).returncode == 0
    expected = frame_bytes(reference)
    assert len(expected) == 6
    # Kill points: during start-up (no frame yet), right after the first frame, and mid-run.
    kill_points = {"startup": None, "after-1": 1, "after-4": 4}
    for name, n_done in kill_points.items():
        out = tmp_path / name
        process = subprocess.Popen([sys.executable, str(ROOT / "render.py"), str(SMOKE), *SMALL, "--out", str(out),
                                    "--quiet"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if n_done is None:
            _wait_for(lambda: (out / "preset.resolved.yaml").exists(), process)
        else:
            _wait_for(lambda: len(list((out / "frames").glob("*.png"))) >= n_done, process)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        done_before = len(list((out / "frames").glob("*.png"))) if (out / "frames").exists() else 0
        assert done_before < 6, f"{name}: the render finished before it could be killed"
        resumed = render("--resume", out)
        assert resumed.returncode == 0, resumed.stderr
        assert frame_bytes(out) == expected, f"kill point {name} ({done_before} frames done) differs"


@pytest.mark.slow
def test_truncated_frame_is_rendered_again(tmp_path):
    out = tmp_path / "run"
    assert render(SMOKE, *SMALL, "max_frames=3", "--out", out).returncode == 0
    expected = frame_bytes(out)
    last = out / "frames" / "000002.png"
    last.write_bytes(last.read_bytes()[:200])
    assert render("--resume", out).returncode == 0
    assert frame_bytes(out) == expected


@pytest.mark.slow
def test_frames_subrange_then_rest_equals_full(tmp_path):
    full, parts = tmp_path / "full", tmp_path / "parts"
    assert render(SMOKE, *SMALL, "max_frames=4", "--out", full).returncode == 0
    first = render(SMOKE, *SMALL, "max_frames=4", "--out", parts, "--frames", "0:2")
    assert first.returncode == 0 and (parts / "video_000000-000001.mp4").exists()
    assert render(SMOKE, *SMALL, "max_frames=4", "--out", parts).returncode == 0
    assert frame_bytes(parts) == frame_bytes(full)


def test_text_encoder_lora_changes_the_frames_of_a_render(tmp_path):
    """The product path: a text-encoder-only LoRA through `loras:` loads (transformers + peft agree) and
    changes the frames; weight 0 renders what no LoRA renders."""
    import anim.models
    from anim.cli import main
    from tests.models.test_lora import make_tiny_lora

    lora = make_tiny_lora(anim.models.tiny_model_dir(), tmp_path / "lora", unet_layers=False)
    base = ["max_frames=2", "width=64", "height=64", "steps=2"]
    runs = {"none": [], "on": [f'loras=[{{path: "{lora}", weight: 1}}]'],
            "off": [f'loras=[{{path: "{lora}", weight: 0}}]']}
    frames = {}
    for name, extra in runs.items():
        assert main([str(SMOKE), *base, *extra, "--out", str(tmp_path / name), "--quiet"]) == 0
        frames[name] = [np.asarray(Image.open(p), dtype=np.int16)
                        for p in sorted((tmp_path / name / "frames").glob("*.png"))]
    assert len(frames["on"]) == 2
    assert all(np.abs(a - b).mean() > 1.0 for a, b in zip(frames["on"], frames["none"]))
    assert all(np.abs(a - b).max() <= 1 for a, b in zip(frames["off"], frames["none"]))


def test_lora_weight_schedule_reaches_every_frame(tmp_path, monkeypatch):
    """A LoRA's `weight` schedule is applied per frame (adapters set before each frame's diffusion)."""
    import anim.engine.makers
    import anim.models
    from anim.cli import main
    from tests.models.test_lora import make_tiny_lora

    lora = make_tiny_lora(anim.models.tiny_model_dir(), tmp_path / "lora")
    seen = []
    real = anim.models.set_lora_weights

    def spy(models, weights):
        seen.append(list(weights))
        return real(models, weights)

    monkeypatch.setattr(anim.engine.makers, "set_lora_weights", spy)
    rc = main([str(SMOKE), "max_frames=3", "width=64", "height=64", "steps=2",
               f'loras=[{{path: "{lora}", weight: "0:(0), 2:(1)"}}]', "--out", str(tmp_path / "r"), "--quiet"])
    assert rc == 0
    assert seen == [[0.0], [0.5], [1.0]]
