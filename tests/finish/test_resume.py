"""Every finishing step resumes: a kill at any instant (frames half made, temps left, finish.json not done) is
completed by the next run, which keeps what was whole; changed settings redo only the steps they touch."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from anim.finish import finish
from anim.media.png import is_complete_png
from anim.media.video import probe_video
from tests.finish.test_interpolate import rife_weights
from tests.finish.util import job, moving_frames

ROOT = Path(__file__).resolve().parents[2]


def interrupted(run_dir: Path, step: str, keep: int, folder: str) -> None:
    """Make `run_dir` look killed inside `step`: frames after the first `keep` gone, a temp write and a temp
    folder left, finish.json recording the step started but not done."""
    for path in sorted((run_dir / folder).glob("*.png"))[keep:]:
        path.unlink()
    (run_dir / folder / ".000005.png.abc.tmp").write_bytes(b"half a png")
    (run_dir / ".finish-interpolate.xyz").mkdir()
    state = json.loads((run_dir / "finish.json").read_text())
    state["steps"][step]["done"] = False
    for name in [name for name in state["steps"] if name.startswith("encode") or name == "all"]:
        del state["steps"][name]
    (run_dir / "finish.json").write_text(json.dumps(state))
    (run_dir / "video.mp4").unlink()


def test_killed_rife_interpolation_continues_and_equals_an_uninterrupted_finish(tmp_path):
    weights = rife_weights(tmp_path / "flownet.safetensors")
    frames = moving_frames(tmp_path / "frames", count=3)
    spec = {"interpolate": {"factor": 2, "engine": "rife", "model": str(weights)}, "upscale": {"factor": 2}}
    finish(job(tmp_path, frames, **spec))
    folder = tmp_path / "frames_interpolated"
    reference = {path.name: path.read_bytes() for path in sorted(folder.glob("*.png"))}
    interrupted(tmp_path, "interpolate", 3, "frames_interpolated")
    kept = {path.name: path.stat().st_mtime_ns for path in folder.glob("*.png")}
    upscaled = {path.name: path.stat().st_mtime_ns for path in (tmp_path / "frames_upscaled").glob("*.png")}
    video = finish(job(tmp_path, frames, **spec))
    assert {path.name: path.read_bytes() for path in sorted(folder.glob("*.png"))} == reference
    assert all((folder / name).stat().st_mtime_ns == mtime for name, mtime in kept.items())  # not made again
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "frames_upscaled").glob("*.png")} == upscaled
    assert not list(folder.glob(".*.tmp")) and not list(tmp_path.glob(".finish-*"))
    assert probe_video(video).n_frames == 6


def test_changed_settings_redo_only_the_steps_they_touch(tmp_path):
    frames = moving_frames(tmp_path / "frames", count=3)
    finish(job(tmp_path, frames, upscale={"factor": 2}, interpolate={"factor": 2}, formats=["mp4", "gif"]))
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "frames_upscaled").glob("*.png")}
    gif_made = (tmp_path / "video.gif").stat().st_mtime_ns
    finish(job(tmp_path, frames, upscale={"factor": 2}, interpolate={"factor": 3}, formats=["mp4", "gif"], crf=30))
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "frames_upscaled").glob("*.png")} == before
    assert len(list((tmp_path / "frames_interpolated").glob("*.png"))) == 9
    assert probe_video(tmp_path / "video.mp4").n_frames == 9 and probe_video(tmp_path / "video.gif").n_frames == 9
    assert (tmp_path / "video.gif").stat().st_mtime_ns > gif_made
    frames[1].write_bytes(frames[1].read_bytes())  # a frame made again: every step follows it
    finish(job(tmp_path, frames, upscale={"factor": 2}, interpolate={"factor": 3}, formats=["mp4", "gif"], crf=30))
    assert (tmp_path / "frames_upscaled" / "000001.png").stat().st_mtime_ns > before["000001.png"]


@pytest.mark.slow
def test_kill_9_during_interpolation_then_resume_completes(tmp_path):
    """Through render.py: --preview renders 8 frames, RIFE makes 32; SIGKILL mid-way; --resume finishes."""
    weights = rife_weights(tmp_path / "flownet.safetensors")
    preset = tmp_path / "p.yaml"
    preset.write_text(yaml.safe_dump({
        "model": "tiny", "width": 64, "height": 64, "fps": 4, "max_frames": 8, "prompts": {0: "a"},
        "motion": {"mode": "2d", "translation_x": "0:(3)"},
        "output": {"interpolate": {"factor": 4, "engine": "rife", "model": str(weights)}}}))
    run_dir, folder = tmp_path / "run", tmp_path / "run" / "frames_interpolated"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, str(ROOT / "render.py"), str(preset), "--preview", "--out", str(run_dir),
                             "--quiet"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline:
        made = len(list(folder.glob("*.png"))) if folder.is_dir() else 0
        if 6 <= made < 28:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    assert proc.wait(timeout=30) == -signal.SIGKILL, f"not killed mid-interpolation: {proc.stderr.read()[-500:]}"
    killed_at = time.time_ns()
    survivors = {p.name: p.stat().st_mtime_ns for p in folder.glob("*.png")}
    assert 6 <= len(survivors) < 32 and not (run_dir / "video.mp4").exists()
    resumed = subprocess.run([sys.executable, str(ROOT / "render.py"), "--resume", str(run_dir), "--preview",
                              "--quiet"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr
    out = sorted(folder.glob("*.png"))
    assert len(out) == 32 and all(is_complete_png(path) for path in out)
    assert all((folder / name).stat().st_mtime_ns == mtime < killed_at for name, mtime in survivors.items())
    info = probe_video(run_dir / "video.mp4")
    assert (info.n_frames, info.fps) == (32, 16.0) and info.duration_s == pytest.approx(2.0, abs=0.01)
    assert json.loads((run_dir / "finish.json").read_text())["steps"]["all"]["done"] is True
