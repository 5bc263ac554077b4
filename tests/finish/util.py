"""Helpers for the finishing tests: small moving-square frames written as a run's PNGs, and jobs over them."""
from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
from PIL import Image

from anim.finish import FinishJob
from anim.media.video import run_ffmpeg
from anim.preset.schema import Output


def moving_frames(folder: Path, count: int = 4, size: int = 64) -> tuple[Path, ...]:
    """`count` 64x64 frames: a bright square moving 4 px right per frame on a gradient (000000.png, ...)."""
    folder.mkdir(parents=True, exist_ok=True)
    ramp = np.linspace(0, 200, size, dtype=np.float32)
    paths = []
    for index in range(count):
        image = np.stack([np.tile(ramp, (size, 1)), np.tile(ramp[:, None], (1, size)),
                          np.full((size, size), 60.0)], axis=-1)
        x0 = 8 + 4 * index
        image[20:36, x0:x0 + 16] = (250, 240, 30)
        paths.append(folder / f"{index:06d}.png")
        Image.fromarray(image.astype(np.uint8)).save(paths[-1])
    return tuple(paths)


def job(run_dir: Path, frames: tuple[Path, ...], fps: float = 4, **output) -> FinishJob:
    """A FinishJob over `frames` with the output section `output` (validated as a preset's)."""
    audio = output.pop("audio_path", None)
    allow_pickle = output.pop("allow_pickle", False)
    return FinishJob(run_dir, frames, fps, Output(**output), audio, 0.0, allow_pickle, "cpu")


def audio_seconds(video: Path, tmp_path: Path) -> float:
    """Length of a video's sound track, decoded to WAV."""
    target = tmp_path / f"{video.stem}-{video.suffix[1:]}.wav"
    run_ffmpeg(["-i", str(video), "-map", "0:a:0", "-c:a", "pcm_s16le", str(target)], target, "audio")
    with wave.open(str(target)) as handle:
        return handle.getnframes() / handle.getframerate()
