"""Video in, pose-controlled video out, through render.py on the tiny models (issue C acceptance)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from anim.media.png import read_png_u8
from anim.media.video import encode_video, make_test_audio, probe_video

pytest.importorskip("mediapipe", reason="pose_offline needs the [pose] extra (installed by `make install`)")

ROOT = Path(__file__).resolve().parents[2]
N, SIZE, FPS = 8, 256, 8


def person_video(tmp_path: Path) -> Path:
    """8 frames of scikit-image's astronaut photo, panned right-to-left and slowly zoomed, with a tone."""
    from skimage import data

    photo = data.astronaut()  # 512x512 RGB, a person (upper body)
    frames = tmp_path / "src"
    frames.mkdir()
    for i in range(N):
        crop = int(400 - 8 * i)  # zoom in a little each frame
        left = 20 + 10 * i  # the window moves right, so the person moves left in the frame
        window = photo[40:40 + crop, left:left + crop]
        Image.fromarray(window).resize((SIZE, SIZE), Image.Resampling.LANCZOS).save(frames / f"{i:06d}.png")
    audio = make_test_audio(tmp_path / "tone.wav", seconds=2.0)
    return encode_video(frames, tmp_path / "input.mp4", fps=FPS, crf=12, audio=audio)


def test_pose_video_to_video_keeps_frames_audio_and_pose(tmp_path):
    video = person_video(tmp_path)
    # the shipped tiny variant of the pose-video example, pointed at the test's input video
    preset = ROOT / "presets" / "pose_video_tiny.yaml"
    overrides = [f"init_video={video}", f"controlnet.0.input={video}", "max_frames=null", "fps=null", "steps=3",
                 "video_blend=0.2", 'controlnet.0.weight="0:(1.0), 4:(0.5)"']
    out = tmp_path / "run"
    result = subprocess.run([sys.executable, str(ROOT / "render.py"), str(preset), *overrides, "--out", str(out),
                             "--quiet"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    info = probe_video(out / "video.mp4")
    assert info.n_frames == N and info.has_audio and abs(info.fps - FPS) < 0.01  # defaults follow the input
    maps = sorted((out / "control" / "0").glob("*.png"))
    assert len(maps) == N
    for path in maps:  # the person is in every frame: skeleton pixels on every map
        assert (read_png_u8(path).max(axis=2) > 0).sum() > 200, f"{path.name}: no skeleton drawn"
    from anim.control.annotators import get_annotator
    from anim.control.sources import open_source

    pose = get_annotator("pose_offline")
    source = open_source(video, width=SIZE, height=SIZE)
    necks = [pose.keypoints(source.frame(i))[1] for i in range(N)]
    assert all(neck[2] > 0 for neck in necks)
    shift_px = necks[-1][0] - necks[0][0]
    assert shift_px < -20, f"neck moved {shift_px:.1f} px; the pan moves the person left"
    # re-rendering (resume of a finished run) annotates nothing again: control maps come from the cache
    mtimes = [p.stat().st_mtime_ns for p in maps]
    (out / "frames" / "000007.png").unlink()
    again = subprocess.run([sys.executable, str(ROOT / "render.py"), "--resume", str(out), "--quiet"], cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert [p.stat().st_mtime_ns for p in maps] == mtimes
    assert "0 map(s) annotated" in (out / "log.txt").read_text().splitlines()[-3] or \
        "0 map(s) annotated" in (out / "log.txt").read_text()
