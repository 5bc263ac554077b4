"""3D camera, cadence and flow coherence through the engine on the tiny model (issue D acceptance)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anim.cli import main
from anim.media.png import read_png_u8

ROOT = Path(__file__).resolve().parents[2]
SMOKE = str(ROOT / "presets" / "smoke.yaml")
SMALL = ["width=64", "height=64", "steps=2"]


def frames_of(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((run / "frames").glob("*.png"))}


def test_cadence_diffuses_every_third_frame_only(tmp_path, monkeypatch):
    import anim.engine.makers

    diffused = []
    original = anim.engine.makers.DiffusionMaker.diffuse

    def spy(self, frame, *args, **kwargs):
        diffused.append(frame)
        return original(self, frame, *args, **kwargs)

    monkeypatch.setattr(anim.engine.makers.DiffusionMaker, "diffuse", spy)
    assert main([SMOKE, *SMALL, "max_frames=7", "cadence=3", "--out", str(tmp_path / "r"), "--quiet"]) == 0
    assert diffused == [0, 3, 6]
    assert len(list((tmp_path / "r" / "frames").glob("*.png"))) == 7
    # an in-between is a crossfade of its keys moved by the camera: close to both, equal to neither
    f3, f4, f6 = (read_png_u8(tmp_path / "r" / "frames" / f"{i:06d}.png").astype(float) for i in (3, 4, 6))
    assert 0 < np.abs(f4 - f3).mean() and 0 < np.abs(f4 - f6).mean()


def test_cadence_flow_and_3d_cadence_run(tmp_path):
    assert main([SMOKE, *SMALL, "max_frames=4", "cadence=3", "cadence_flow=true", "--out", str(tmp_path / "a"),
                 "--quiet"]) == 0
    assert main([SMOKE, *SMALL, "max_frames=4", "cadence=2", "motion.mode=3d", "motion.translation_z=2",
                 "--out", str(tmp_path / "b"), "--quiet"]) == 0
    assert len(frames_of(tmp_path / "a")) == len(frames_of(tmp_path / "b")) == 4


@pytest.mark.slow
def test_kill_mid_cadence_then_resume_is_identical(tmp_path):
    args = [SMOKE, *SMALL, "max_frames=10", "cadence=3", "steps=3"]
    full = tmp_path / "full"
    assert subprocess.run([sys.executable, "render.py", *args, "--out", str(full), "--quiet"], cwd=ROOT,
                          capture_output=True, timeout=300).returncode == 0
    out = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "render.py", *args, "--out", str(out), "--quiet"], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:  # kill once key 3 and a tween are written
        if len(list((out / "frames").glob("*.png"))) >= 3 if (out / "frames").exists() else False:
            break
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    written = len(list((out / "frames").glob("*.png")))
    assert 0 < written < 10
    assert subprocess.run([sys.executable, "render.py", "--resume", str(out), "--quiet"], cwd=ROOT,
                          capture_output=True, timeout=300).returncode == 0
    assert frames_of(out) == frames_of(full)


def test_3d_render_with_tiny_depth_saves_depth_maps(tmp_path):
    out = tmp_path / "r"
    assert main([SMOKE, *SMALL, "max_frames=3", "motion.mode=3d", "motion.depth_model=tiny",
                 "motion.save_depth=true", "motion.translation_z=5", "motion.rotation_3d_y=1",
                 "--out", str(out), "--quiet"]) == 0
    depth = sorted(p.name for p in (out / "depth").glob("*.png"))
    assert depth == ["000000.png", "000001.png"]  # the depth each next frame was warped with


def moving_video(tmp_path: Path, n: int = 6, size: int = 64) -> Path:
    """A textured scene panning 3 px per frame: known motion for the flow-coherence test."""
    from anim.media.video import encode_video

    rng = np.random.default_rng(0)
    scene = (rng.random((size, size * 2, 3)) * 255).astype(np.uint8)
    scene = np.asarray(Image.fromarray(scene).resize((size * 4, size * 2)).resize((size * 2, size)))
    folder = tmp_path / "src"
    folder.mkdir()
    for i in range(n):
        Image.fromarray(np.ascontiguousarray(scene[:, 3 * i:3 * i + size])).save(folder / f"{i:06d}.png")
    return encode_video(folder, tmp_path / "pan.mp4", fps=6, crf=10)


def test_flow_blend_lowers_warp_error(tmp_path, capsys):
    from anim.media.video import read_frames
    from anim.metrics import warp_error

    video = moving_video(tmp_path)
    errors = {}
    for blend in (0.0, 0.8):
        out = tmp_path / f"blend{blend}"
        assert main([SMOKE, *SMALL, f"init_video={video}", "max_frames=6", "motion.mode=none", "seed_behavior=fixed", "noise=0",
                     f"flow_blend={blend}", "denoise=0.6", "--out", str(out), "--quiet"]) == 0
        frames = [read_png_u8(p) for p in sorted((out / "frames").glob("*.png"))]
        errors[blend], _ = warp_error(frames, list(read_frames(video)))
    with capsys.disabled():
        print(f"\nwarp error: flow_blend 0 -> {errors[0.0]:.5f}, flow_blend 0.8 -> {errors[0.8]:.5f}")
    assert errors[0.8] < errors[0.0]
