"""color_coherence video_input (Deforum's "Video Input"): each frame's colours follow the input video's frame,
taken afresh every color_coherence_every_n key frames."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anim.cli import main
from anim.coherence.stages import video_reference_frame
from anim.errors import PresetError
from anim.media.png import read_png_u8

ROOT = Path(__file__).resolve().parents[2]
SMOKE = str(ROOT / "presets" / "smoke.yaml")
SIZE, N = 64, 4
TINTS = [(200, 40, 40), (190, 50, 40), (40, 50, 200), (40, 40, 190)]  # frames 0-1 red, 2-3 blue


def tinted_video(tmp_path: Path) -> Path:
    """N frames of a random texture, each pulled toward its tint."""
    from anim.media.video import encode_video

    rng = np.random.default_rng(1)
    folder = tmp_path / "src"
    folder.mkdir()
    for i, tint in enumerate(TINTS):
        texture = rng.random((SIZE, SIZE, 3)) * 80
        frame = np.clip(np.array(tint, float) * 0.8 + texture, 0, 255).astype(np.uint8)
        Image.fromarray(frame).save(folder / f"{i:06d}.png")
    return encode_video(folder, tmp_path / "tinted.mp4", fps=4, crf=1)


def test_the_reference_is_the_last_key_on_the_every_n_grid():
    assert [video_reference_frame(f, list(range(8)), 3) for f in range(8)] == [0, 0, 0, 3, 3, 3, 6, 6]
    keys = [0, 2, 4, 6, 7]  # cadence 2 over 8 frames: Deforum only looks at key frames
    assert [video_reference_frame(f, keys, 3) for f in keys] == [0, 0, 0, 6, 6]


def render_means(tmp_path: Path, name: str, *overrides: str) -> list[np.ndarray]:
    """Mean RGB of each frame of a hybrid-video render (the camera loop: the init is the previous output, so
    only the colour reference can bring the video's colours in)."""
    out = tmp_path / name
    assert main([SMOKE, f"width={SIZE}", f"height={SIZE}", "steps=2", f"max_frames={N}", "fps=null", "noise=0",
                 f"init_video={tmp_path / 'tinted.mp4'}", "hybrid.motion=optical_flow", *overrides,
                 "--out", str(out), "--quiet"]) == 0
    return [read_png_u8(out / "frames" / f"{f:06d}.png").reshape(-1, 3).mean(0) for f in range(N)]


def test_frames_take_the_colours_of_the_input_frame_on_the_grid(tmp_path):
    tinted_video(tmp_path)
    red, blue = np.array(TINTS[0], float) * 0.8 + 40, np.array(TINTS[2], float) * 0.8 + 40
    means = render_means(tmp_path, "video", "color_coherence=video_input", "color_coherence_every_n=2")
    for frame, wanted, other in ((1, red, blue), (2, blue, red), (3, blue, red)):
        near, far = np.abs(means[frame] - wanted).max(), np.abs(means[frame] - other).max()
        assert near < 25 and near < far / 3, (frame, means[frame], near, far)
    lab = render_means(tmp_path, "lab", "color_coherence=lab")  # frame 0's output's colours throughout
    assert np.abs(lab[3] - blue).max() > 3 * np.abs(means[3] - blue).max(), (lab[3], means[3])


def test_video_input_colours_need_a_video():
    from anim.preset.load import load_preset

    with pytest.raises(PresetError, match="video_input.*init_video"):
        load_preset(SMOKE, ["color_coherence=video_input"])
