"""What the finishing steps work on (a run's frames, fps, sound, output settings) as plain values, and the names
they write in the run folder."""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anim.errors import ModelError

FRAMES_UPSCALED = "frames_upscaled"  # output.upscale: the rendered frames at factor x the size
FRAMES_INTERPOLATED = "frames_interpolated"  # output.interpolate: factor x the frames
FINISH_STATE = "finish.json"  # each step's settings key and whether it completed
FORMAT_FILES = {"mp4": "video.mp4", "webm": "video.webm", "gif": "video.gif", "prores": "video.mov"}
PICKLE_SUFFIXES = (".pkl", ".pth", ".pt", ".ckpt", ".bin")
WEIGHT_SUFFIXES = (".safetensors", *PICKLE_SUFFIXES)


@dataclass(frozen=True)
class FinishJob:
    """One run's finishing: `frames` in order at `fps`, the preset's `output` section, the sound to mux."""

    run_dir: Path
    frames: tuple[Path, ...]
    fps: float
    output: Any  # anim.preset.schema.Output
    audio: Path | None = None
    audio_start_s: float = 0.0
    allow_pickle: bool = False
    device: str = "auto"

    @property
    def upscaled_dir(self) -> Path:
        return self.run_dir / FRAMES_UPSCALED

    @property
    def interpolated_dir(self) -> Path:
        return self.run_dir / FRAMES_INTERPOLATED

    @property
    def state_path(self) -> Path:
        return self.run_dir / FINISH_STATE

    @property
    def factor(self) -> int:
        """Frames out per frame in (1 without interpolation)."""
        return self.output.interpolate.factor if self.output.interpolate else 1

    @property
    def final_fps(self) -> float:
        """The videos' frame rate: factor x fps, or fps in slow motion (the video then lasts factor x longer)."""
        slow = self.output.interpolate is not None and self.output.interpolate.slow_motion
        return self.fps if slow else self.fps * self.factor

    @property
    def audio_speed(self) -> float:
        """Playback speed of the sound: 1/factor in slow motion (stretched, pitch kept), else 1."""
        return self.final_fps / (self.fps * self.factor)


def needs_finishing(output: Any) -> bool:
    """Whether the output section asks for more than the plain H.264 video.mp4 streamed while frames render."""
    return bool(output.upscale or output.interpolate or output.codec != "h264" or list(output.formats) != ["mp4"])


def digest(*parts: Any) -> str:
    """A short stable hash of plain values (a step's settings key)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_signature(path: Path | None) -> list | None:
    """(path, size, mtime) of a file: a key that changes when the file is replaced; None for no file."""
    if path is None:
        return None
    try:
        stat = os.stat(path)
    except OSError:
        return [str(path), None, None]
    return [str(path), stat.st_size, stat.st_mtime_ns]


def frames_signature(frames: tuple[Path, ...] | list[Path]) -> str:
    """A key of the frames' names, sizes and write times: a frame made again changes it."""
    return digest([file_signature(path)[1:] + [Path(path).name] for path in frames])


def settings_key(output: Any) -> str:
    """A key of the whole output section (finish.json records the one its last complete finish had)."""
    return digest(output.model_dump(mode="json"))


def check_finish_inputs(output: Any, allow_pickle: bool) -> None:
    """The weights files the steps need exist and may be read, before any frame is made (nothing is downloaded)."""
    wanted = []
    if output.upscale is not None and output.upscale.model != "lanczos":
        wanted.append(("output.upscale.model", output.upscale.model, "an ESRGAN-family upscaler"))
    if output.interpolate is not None and output.interpolate.engine == "rife":
        wanted.append(("output.interpolate.model", output.interpolate.model, "RIFE 4.25/4.26 weights (flownet.pkl)"))
    for key, value, what in wanted:
        check_weights_file(key, Path(value), allow_pickle, what)


def check_weights_file(key: str, path: Path, allow_pickle: bool, what: str) -> None:
    """ModelError naming `key` when `path` is absent, of an unknown type, or a pickle the preset did not allow."""
    if not path.is_file():
        raise ModelError(f"{key}: {path}: weights file not found; put {what} there (anim downloads nothing)")
    suffix = path.suffix.lower()
    if suffix not in WEIGHT_SUFFIXES:
        raise ModelError(f"{key}: {path} has an unknown type {suffix!r}; expected .safetensors (or .pth/.pkl)")
    if suffix in PICKLE_SUFFIXES and not allow_pickle:
        raise ModelError(f"{key}: {path} is a Python pickle ({suffix}), which can run code when loaded; use a "
                         ".safetensors version, or set `allow_pickle: true` if you trust its source")
