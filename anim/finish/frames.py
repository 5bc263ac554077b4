"""Frame files of the finishing steps: numbered PNGs written atomically, sequences linked for ffmpeg, temps swept."""
from __future__ import annotations

import io
import os
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from anim.media.files import atomic_write_bytes

TEMP_PREFIX = ".finish-"  # temp folders of a step (swept when a killed finish starts again)


def numbered(folder: Path, count: int) -> list[Path]:
    """folder/000000.png .. folder/(count-1).png"""
    return [Path(folder) / f"{index:06d}.png" for index in range(count)]


def write_png(path: Path, image_u8: np.ndarray) -> None:
    """An (H, W, 3) uint8 frame as a PNG, atomically (a reader sees no file or the whole one)."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image_u8), mode="RGB").save(buffer, format="PNG", compress_level=4)
    atomic_write_bytes(path, buffer.getvalue())


def copy_frame(source: Path, target: Path) -> None:
    """The same PNG (its metadata too) under a new name, atomically."""
    atomic_write_bytes(target, Path(source).read_bytes())


def link_sequence(frames: Sequence[Path], folder: Path) -> str:
    """Link (or copy) `frames` into `folder` as 000000.png, ...; returns ffmpeg's input pattern."""
    folder.mkdir(parents=True, exist_ok=True)
    for index, frame in enumerate(frames):
        target = folder / f"{index:06d}.png"
        try:
            os.symlink(os.path.abspath(frame), target)
        except OSError:  # no symlinks here
            shutil.copyfile(frame, target)
    return str(folder / "%06d.png")


def sweep_temps(run_dir: Path, folders: Sequence[Path]) -> None:
    """Remove what a killed finish left: its temp folders, and the temp files of atomic writes in `folders`."""
    for leftover in Path(run_dir).glob(f"{TEMP_PREFIX}*"):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
    for folder in folders:
        if Path(folder).is_dir():
            for temp in Path(folder).glob(".*.tmp"):
                temp.unlink(missing_ok=True)
