"""Fixtures for the control tests: numbered test clips, image folders, the astronaut photo, offline hub."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CLIP_FRAMES = 12
CLIP_SIZE = (64, 48)  # width, height


def level_of(k: int) -> int:
    """Grey level of clip frame k (flat frames survive H.264 almost exactly)."""
    return 10 + 20 * k


def index_of(frame: np.ndarray) -> int:
    """Which clip frame a decoded (and resized) flat frame is."""
    return int(round((float(frame.mean()) - 10) / 20))


def write_levels(folder: Path, names: list[str], levels: list[int], size=CLIP_SIZE) -> Path:
    """Flat grey PNGs `names` with the given levels."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, level in zip(names, levels):
        Image.fromarray(np.full((size[1], size[0], 3), level, np.uint8)).save(folder / name)
    return folder


@pytest.fixture(autouse=True)
def _offline_hub(monkeypatch):
    """No test here reaches the network."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def clip_frames(tmp_path_factory) -> Path:
    """A folder of CLIP_FRAMES flat frames, frame k at level_of(k)."""
    folder = tmp_path_factory.mktemp("clip-frames")
    return write_levels(folder, [f"{k:06d}.png" for k in range(CLIP_FRAMES)], [level_of(k) for k in range(CLIP_FRAMES)])


@pytest.fixture(scope="session")
def clip(clip_frames, tmp_path_factory):
    """clip(fps, audio=False) -> an H.264 mp4 of the numbered frames at that frame rate."""
    from anim.media.video import encode_video, make_test_audio

    folder = tmp_path_factory.mktemp("clips")
    made: dict[tuple, Path] = {}

    def make(fps: float, audio: bool = False) -> Path:
        if (fps, audio) not in made:
            sound = make_test_audio(folder / "tone.wav", 2.0) if audio else None
            made[fps, audio] = encode_video(clip_frames, folder / f"clip-{fps}-{int(audio)}.mp4", fps=fps, crf=8,
                                            audio=sound)
        return made[fps, audio]

    return make


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """scikit-image's astronaut portrait (512x512 RGB), a real photo of a person shipped with the package."""
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="session")
def pose_annotator():
    """One pose_offline annotator for the session (skips when mediapipe is not installed)."""
    pytest.importorskip("mediapipe")
    from anim.control.annotators import get_annotator

    annotator = get_annotator("pose_offline")
    yield annotator
    annotator.close()
