"""The finishing steps in order (upscale, interpolate, each format), each skipped when finish.json records it done
with the same settings and inputs, so `--resume` after a kill in any step, or `render.py finish`, completes it."""
from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from PIL import Image
from tqdm import tqdm

from anim.finish.formats import encode_format
from anim.finish.frames import TEMP_PREFIX, link_sequence, numbered, sweep_temps, write_png
from anim.finish.interpolate import ffmpeg_interpolate, learned_interpolate
from anim.finish.job import FORMAT_FILES, FinishJob, digest, file_signature, frames_signature, settings_key
from anim.finish.state import ALL, FinishState
from anim.media.png import is_complete_png, read_png_u8


def finish(job: FinishJob, *, quiet: bool = True, redo: bool = False, log: logging.Logger | None = None) -> Path | None:
    """Run the steps `job.output` asks for; returns the first format's video (None with `output.video: false`)."""
    sweep_temps(job.run_dir, [job.upscaled_dir, job.interpolated_dir])
    state = FinishState(job.state_path)
    if redo:
        state.reset()
    frames, key = list(job.frames), frames_signature(job.frames)
    steps: list[tuple[str, Any]] = []
    if job.output.upscale is not None:
        steps.append(("upscale", upscale_step))
    if job.output.interpolate is not None:
        steps.append(("interpolate", interpolate_step))
    for name, step in steps:
        started = time.perf_counter()
        frames, key = step(job, state, frames, key, quiet)
        _note(log, "%s: %d frames (%.1f s)", name, len(frames), time.perf_counter() - started)
    videos = []
    for fmt in job.output.formats if job.output.video else []:
        started = time.perf_counter()
        videos.append(encode_step(job, state, fmt, frames, key))
        _note(log, "encode %s: %s (%.1f s)", fmt, videos[-1].name, time.perf_counter() - started)
    state.complete(ALL, settings_key(job.output))
    return videos[0] if videos else None


def upscale_step(job: FinishJob, state: FinishState, sources: list[Path], key: str, quiet: bool):
    """frames_upscaled/: each frame at factor x its size, frame by frame (a kill loses one frame's work)."""
    from anim.finish.upscale import upscaler

    spec = job.output.upscale
    step_key = digest("upscale", 1, spec.model_dump(mode="json"), _model_file(spec.model), key)
    targets = numbered(job.upscaled_dir, len(sources))
    if not _done(state, "upscale", step_key, targets):
        state.start("upscale", step_key, (job.upscaled_dir,))
        todo = [i for i, target in enumerate(targets) if not is_complete_png(target)]
        run = upscaler(spec, allow_pickle=job.allow_pickle, device=job.device) if todo else None
        for i in tqdm(todo, unit="frame", disable=quiet, dynamic_ncols=True, desc="upscale"):
            write_png(targets[i], run(read_png_u8(sources[i])))
        state.complete("upscale", step_key)
    return targets, step_key


def interpolate_step(job: FinishJob, state: FinishState, sources: list[Path], key: str, quiet: bool):
    """frames_interpolated/: factor x the frames (anim.finish.interpolate)."""
    spec = job.output.interpolate
    step_key = digest("interpolate", 1, spec.model_dump(mode="json"), _model_file(spec.model), key, job.fps)
    targets = numbered(job.interpolated_dir, len(sources) * spec.factor)
    if not _done(state, "interpolate", step_key, targets):
        state.start("interpolate", step_key, (job.interpolated_dir,))
        if spec.engine == "ffmpeg":
            ffmpeg_interpolate(sources, job.interpolated_dir, job.fps, spec.factor)
        else:
            learned_interpolate(sources, job.interpolated_dir, spec.factor, lambda: _rife(job), quiet)
        state.complete("interpolate", step_key)
    return targets, step_key


def encode_step(job: FinishJob, state: FinishState, fmt: str, frames: list[Path], key: str) -> Path:
    """video.<ext> of one format, encoded again only when its frames, sound or settings changed."""
    output, path = job.output, job.run_dir / FORMAT_FILES[fmt]
    step_key = digest("encode", 1, fmt, output.codec, output.crf, output.gif_max_side, key, job.final_fps,
                      file_signature(job.audio), job.audio_start_s, job.audio_speed)
    if _done(state, f"encode {fmt}", step_key, [path]):
        return path
    state.start(f"encode {fmt}", step_key)
    with Image.open(frames[0]) as first:
        size = first.size
    links = Path(tempfile.mkdtemp(dir=job.run_dir, prefix=f"{TEMP_PREFIX}links."))
    try:
        encode_format(fmt, path, pattern=link_sequence(frames, links), n_frames=len(frames), fps=job.final_fps,
                      size=size, output=output, audio=job.audio, audio_start_s=job.audio_start_s,
                      speed=job.audio_speed)
    finally:
        shutil.rmtree(links, ignore_errors=True)
    state.complete(f"encode {fmt}", step_key)
    return path


def _done(state: FinishState, step: str, key: str, outputs: list[Path]) -> bool:
    """Recorded done with this key, and its outputs still there (one deleted by hand is made again)."""
    return state.is_done(step, key) and all(path.is_file() for path in outputs)


def _model_file(model: str | None) -> list | None:
    """The weights file's signature (a replaced file redoes the step); None for lanczos and ffmpeg."""
    return file_signature(Path(model)) if model and model != "lanczos" else None


def _rife(job: FinishJob):
    """The RIFE model of output.interpolate, loaded on the preset's device: (first, second, t) -> frame."""
    from anim.finish.rife import load_rife, rife_between
    from anim.finish.weights import pick_device

    net = load_rife(Path(job.output.interpolate.model), allow_pickle=job.allow_pickle, device=pick_device(job.device))
    return lambda first, second, t: rife_between(net, first, second, t)


def _note(log: logging.Logger | None, message: str, *args) -> None:
    if log is not None:
        log.info(message, *args)
