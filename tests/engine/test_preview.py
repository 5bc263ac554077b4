"""--preview: the camera path alone, compared with an OpenCV warpPerspective loop built from DOMAIN.md."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import cv2
import imageio_ffmpeg
import numpy as np

from anim.keyframes import parse_schedule
from anim.media.images import make_test_card
from anim.media.png import read_png_u8

ROOT = Path(__file__).resolve().parents[2]
W, H, N = 160, 96, 8
MOTION = {"angle": "0:(2)", "zoom": "0:(1.03)", "translation_x": "0:(1.5*t)", "translation_y": "0:(-2)",
          "transform_center_x": "0:(0.4)", "transform_center_y": "0:(0.6)"}


def domain_matrix(angle_deg, zoom, tx, ty, cx, cy):
    """DOMAIN.md: M_rot (OpenCV rotation about the centre, with scale) times M_trans, as 3x3."""
    rot = np.vstack([cv2.getRotationMatrix2D((W * cx, H * cy), angle_deg, zoom), [0, 0, 1]])
    trans = np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]], dtype=np.float64)
    return rot @ trans


def test_preview_matches_opencv_reference(tmp_path):
    preset = tmp_path / "cam.yaml"
    lines = "\n".join(f"  {k}: \"{v}\"" for k, v in MOTION.items())
    preset.write_text(textwrap.dedent(f"""\
        width: {W}
        height: {H}
        max_frames: {N}
        fps: 8
        prompts: {{0: camera test}}
        motion:
          mode: 2d
          border: replicate
        """) + lines + "\n")
    out = tmp_path / "run"
    started = time.perf_counter()
    result = subprocess.run([sys.executable, str(ROOT / "render.py"), str(preset), "--preview", "--out", str(out),
                             "--quiet"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    seconds = time.perf_counter() - started
    assert result.returncode == 0, result.stderr
    assert imageio_ffmpeg.count_frames_and_secs(str(out / "video.mp4"))[0] == N
    values = {k: parse_schedule(v, k).evaluate(N) for k, v in MOTION.items()}
    reference = make_test_card(W, H)
    m = 12  # interior margin in pixels
    for frame in range(N):
        if frame > 0:
            matrix = domain_matrix(*(values[k][frame] for k in MOTION))
            reference = cv2.warpPerspective(reference, matrix, (W, H), flags=cv2.INTER_LINEAR,
                                            borderMode=cv2.BORDER_REPLICATE)
        ours = read_png_u8(out / "frames" / f"{frame:06d}.png")
        diff = np.abs(ours[m:-m, m:-m].astype(float) - reference[m:-m, m:-m].astype(float)).mean() / 255
        assert diff < 2 / 255, f"frame {frame}: mean abs diff {diff * 255:.2f}/255"
    print(f"preview of {N} frames: {seconds:.1f} s wall")


def test_preview_starts_from_init_image(tmp_path):
    init = tmp_path / "init.png"
    rng = np.random.default_rng(1)
    cv2.imwrite(str(init), rng.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    preset = tmp_path / "p.yaml"
    preset.write_text(f"width: 64\nheight: 64\nmax_frames: 2\nprompts: {{0: x}}\ninit_image: {init}\n"
                      "motion: {mode: 2d, zoom: 1.0}\n")
    out = tmp_path / "run"
    result = subprocess.run([sys.executable, str(ROOT / "render.py"), str(preset), "--preview", "--out", str(out),
                             "--quiet"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    first = read_png_u8(out / "frames" / "000000.png")
    assert np.array_equal(first, cv2.cvtColor(cv2.imread(str(init)), cv2.COLOR_BGR2RGB))
    assert np.array_equal(read_png_u8(out / "frames" / "000001.png"), first)  # identity motion


def test_missing_init_image_is_one_line_error(tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text("width: 64\nheight: 64\nmax_frames: 2\nprompts: {0: x}\ninit_image: nowhere.png\n")
    result = subprocess.run([sys.executable, str(ROOT / "render.py"), str(preset), "--preview", "--out",
                             str(tmp_path / "r")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.strip() == "anim: error: init_image: file not found: nowhere.png"
