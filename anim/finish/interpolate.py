"""Frame interpolation: N frames become factor x N (factor-1 new frames between each pair, the last frame held for
its factor slots), so at factor x the fps the video lasts exactly as long and its sound stays in sync.

Engines: `ffmpeg` (motion-compensated minterpolate of the bundled binary, no weights; one ffmpeg call, redone
whole after a kill) and `rife` (anim.finish.rife, frame by frame, a kill loses at most the frame being made).
The rendered frames are copied into their slots unchanged; only the new frames are made.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from tqdm import tqdm

from anim.errors import InputError
from anim.finish.frames import TEMP_PREFIX, copy_frame, link_sequence, numbered, write_png
from anim.finish.state import remove_path
from anim.media.png import is_complete_png, read_png_u8
from anim.media.video import fps_rational, run_ffmpeg

# minterpolate waits for frames past the last one before it emits the last in-betweens: the input is padded with
# clones of the last frame and the output cut to factor x N.
TAIL_CLONES = 4


def source_of(index: int, factor: int, n_frames: int) -> tuple[int, int]:
    """(i, k): output frame `index` lies k/factor of the way from source frame i to i+1 (k = 0: frame i itself;
    the slots after the last frame hold it)."""
    i, k = divmod(index, factor)
    return (n_frames - 1, 0) if i >= n_frames - 1 else (i, k)


def minterpolate_filter(fps_out: float) -> str:
    """ffmpeg's motion-compensated interpolation to `fps_out` (bidirectional motion search, overlapped blocks,
    scene cuts repeated instead of blended), in 4:4:4 so colour is not halved on the way."""
    return (f"tpad=stop_mode=clone:stop={TAIL_CLONES},format=yuv444p,"
            f"minterpolate=fps={fps_rational(fps_out)}:mi_mode=mci:mc_mode=aobmc:me_mode=bidir:vsbmc=1:scd=fdiff")


def ffmpeg_interpolate(sources: Sequence[Path], out_dir: Path, fps: float, factor: int) -> list[Path]:
    """factor x len(sources) frames into `out_dir` by minterpolate, made in a temp folder and renamed into place."""
    out_dir = Path(out_dir)
    n_out = len(sources) * factor
    temp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f"{TEMP_PREFIX}interpolate."))
    try:
        pattern = link_sequence(sources, temp / "in")
        made = temp / "out"
        made.mkdir()
        args = ["-framerate", fps_rational(fps), "-start_number", "0", "-i", pattern,
                "-vf", minterpolate_filter(fps * factor), "-frames:v", str(n_out), "-pix_fmt", "rgb24",
                "-start_number", "0", str(made / "%06d.png")]
        run_ffmpeg(args, out_dir, "interpolation (minterpolate)")
        targets = numbered(made, n_out)
        if not all(path.is_file() for path in targets):
            raise InputError(f"{out_dir}: ffmpeg made {len(list(made.glob('*.png')))} of {n_out} frames")
        for index, target in enumerate(targets):
            i, k = source_of(index, factor, len(sources))
            if k == 0:
                copy_frame(sources[i], target)
        remove_path(out_dir)
        os.replace(made, out_dir)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return numbered(out_dir, n_out)


def learned_interpolate(sources: Sequence[Path], out_dir: Path, factor: int,
                        load_between: Callable[[], Callable[[np.ndarray, np.ndarray, float], np.ndarray]],
                        quiet: bool = True) -> list[Path]:
    """factor x len(sources) frames into `out_dir`, each written atomically; frames already whole are kept, so a
    killed step continues. `load_between()` gives the model's (first, second, t) -> frame, loaded on first need."""
    targets = numbered(out_dir, len(sources) * factor)
    todo = [index for index, target in enumerate(targets) if not is_complete_png(target)]
    between, images = None, {}
    for index in tqdm(todo, unit="frame", disable=quiet, dynamic_ncols=True, desc="interpolate"):
        i, k = source_of(index, factor, len(sources))
        if k == 0:
            copy_frame(sources[i], targets[index])
            continue
        between = between or load_between()
        for needed in (i, i + 1):
            if needed not in images:
                images = {key: value for key, value in images.items() if key >= i}  # two frames in memory
                images[needed] = read_png_u8(sources[needed])
        write_png(targets[index], between(images[i], images[i + 1], k / factor))
    return targets
