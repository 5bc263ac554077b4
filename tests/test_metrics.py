"""Warp error (flicker metric): exact zero, ordering on synthetic pans, CLI contract."""

import subprocess
import sys

import cv2
import numpy as np
import pytest

from anim.errors import InputError
from anim.media.video import write_test_video
from anim.metrics import main, masked_pair_error, warp_error

SIZE = 96
N_FRAMES = 8


def texture(height, width, seed=0):
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.random((height, width, 3)).astype(np.float32), (0, 0), 2.0)
    base = (base - base.min()) / (base.max() - base.min())
    return np.round(base * 255).astype(np.uint8)


def pan(n=N_FRAMES, step_px=2, size=SIZE):
    """A steady horizontal pan across a texture: frame t is the window at x = step * t."""
    big = texture(size, size + step_px * n, seed=1)
    return [np.ascontiguousarray(big[:, step_px * t : step_px * t + size]) for t in range(n)]


def jitter(frames, amount=12, seed=2):
    """Per-frame brightness flicker of +-amount levels."""
    rng = np.random.default_rng(seed)
    offsets = rng.choice([-amount, amount], size=len(frames))
    return [np.clip(f.astype(np.int16) + int(o), 0, 255).astype(np.uint8) for f, o in zip(frames, offsets)]


def test_identical_frames_score_exactly_zero():
    frames = [texture(SIZE, SIZE)] * 5
    mean, per_frame = warp_error(frames)
    assert mean == 0.0 and per_frame == [0.0] * 4
    mean_src, _ = warp_error(frames, source=frames)  # flow on the source: zero too (no motion)
    assert mean_src == 0.0


def test_steady_pan_scores_lower_than_a_flickering_pan():
    frames = pan()
    steady, per_frame = warp_error(frames)
    flicker, _ = warp_error(jitter(frames))
    assert len(per_frame) == N_FRAMES - 1
    assert steady < 0.002
    assert flicker > 10 * steady


def test_source_flow_judges_the_output():
    source = pan()
    faithful, _ = warp_error(source, source=source)
    flickering, _ = warp_error(jitter(source), source=source)
    frozen, _ = warp_error([source[0]] * N_FRAMES, source=source)  # output ignores the source's motion
    assert faithful < flickering and faithful < frozen


def test_masked_pair_error_definition():
    import torch

    a = torch.zeros(1, 3, 2, 2)
    b = torch.zeros(1, 3, 2, 2)
    b[0, :, 0, 0] = 0.5  # squared error 3 * 0.25 at one pixel
    b[0, :, 1, 1] = 1.0  # masked out
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]]).view(1, 1, 2, 2)
    assert masked_pair_error(a, b, mask) == pytest.approx(0.75 / 3)
    assert masked_pair_error(a, b, torch.zeros_like(mask)) == 0.0


def test_bad_inputs():
    with pytest.raises(InputError, match="at least 2 frames"):
        warp_error([texture(8, 8)])
    with pytest.raises(InputError, match="fewer than"):
        warp_error(pan(4), source=pan(3))


def test_cli_prints_one_line_and_writes_csv(tmp_path, capsys):
    import torch

    video = write_test_video(tmp_path / "pan.mp4", pan())
    csv_path = tmp_path / "out" / "err.csv"
    threads = torch.get_num_threads()
    assert main(["warp-error", str(video), "--csv", str(csv_path)]) == 0
    assert torch.get_num_threads() == threads  # the CLI's one-thread setting does not leak
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("warp_error=")
    value = float(lines[0].split("=", 1)[1])
    rows = csv_path.read_text().splitlines()
    assert rows[0] == "frame,warp_error" and len(rows) == N_FRAMES
    per_frame = [float(row.split(",")[1]) for row in rows[1:]]
    assert [int(row.split(",")[0]) for row in rows[1:]] == list(range(N_FRAMES - 1))
    assert value == pytest.approx(np.mean(per_frame), rel=1e-6)
    assert main(["warp-error", str(video), "--source", str(video)]) == 0
    assert capsys.readouterr().out.startswith("warp_error=")


def test_cli_missing_video_exits_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "anim.metrics", "warp-error", str(tmp_path / "nope.mp4")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "nope.mp4" in proc.stderr


def test_cli_unreadable_video_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    assert main(["warp-error", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.mp4" in err[0]
