"""The render's video: video.mp4 (or video_A-B.mp4 for a sub-range) streamed while frames are made, or
encoded from the PNGs; the input video's sound kept. A whole render whose output section asks for finishing
(upscale, interpolate, other formats or codec) is finished by anim.finish instead, after its last frame."""
from __future__ import annotations

import shutil
from pathlib import Path

from anim.errors import InputError
from anim.finish import FinishJob, finish, needs_finishing
from anim.media.png import is_complete_png, read_png_u8
from anim.media.stream import StreamEncoder
from anim.media.video import encode_video, source_audio
from anim.runfolder import RESOLVED, Run


def video_target(run: Run, frame_range: range) -> tuple[Path, Path | None, float]:
    """(video path, audio or None, audio start in s): video.mp4 for the whole render, video_A-B.mp4 for a
    sub-range, with the audio cut to start where the range starts."""
    p = run.preset
    full = len(frame_range) == p.max_frames
    name = "video.mp4" if full else f"video_{frame_range.start:06d}-{frame_range.stop - 1:06d}.mp4"
    audio, audio_start_s = audio_track(p), frame_range.start / p.fps
    if audio is not None and p.init_video and audio == Path(p.init_video):
        audio_start_s += p.video_start  # the input's sound, from where its frames start
    return run.dir / name, audio, audio_start_s


def encode_range(run: Run, frame_range: range, quiet: bool = True, log=None) -> Path | None:
    """Encode the range's PNGs (nothing was rendered this time), or finish a whole render (anim.finish); skipped
    if frames are missing."""
    p = run.preset
    paths = [run.frame_path(f) for f in frame_range]
    if not all(is_complete_png(path) for path in paths):
        return None
    if finishes(run, frame_range):
        return finish(finish_job(run), quiet=quiet, log=log)
    path, audio, audio_start_s = video_target(run, frame_range)
    if is_current(path, [*paths, run.dir / RESOLVED]):
        return path  # a finished run resumed again: the video already holds these frames and settings
    return encode_video(run.frames_dir, path, fps=p.fps, crf=p.output.crf, audio=audio, frames=paths,
                        audio_start_s=audio_start_s)


def is_current(video: Path, sources: list[Path]) -> bool:
    """The video was encoded after every frame and after the plan (preset.resolved.yaml, rewritten when an
    output setting such as crf changes) were last written."""
    try:
        made = video.stat().st_mtime_ns
        return all(source.stat().st_mtime_ns <= made for source in sources)
    except OSError:
        return False


def sweep_video_temps(run: Run) -> None:
    """Remove what a killed render left: hidden temp videos and frame-link folders of the encoder, and the
    temp files of atomic writes (`.000003.png.*.tmp`, `.state.json.*.tmp`); never a finished file. Safe: this
    process holds the run folder (anim.runfolder.RunLock)."""
    temps = [*run.dir.glob(".*.tmp"), *run.frames_dir.glob(".*.tmp")] if run.frames_dir.is_dir() else \
        list(run.dir.glob(".*.tmp"))
    for leftover in [*run.dir.glob(".video*"), *temps]:
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def stream_encoder(run: Run, frame_range: range, todo: list[int]):
    """ffmpeg started before the first frame and fed as frames are made (frames on disk are read back)."""
    p = run.preset
    path, audio, audio_start_s = video_target(run, frame_range)
    start = frame_range.start
    return StreamEncoder(path, width=p.width, height=p.height, fps=p.fps, crf=p.output.crf,
                         n_frames=len(frame_range), delivered={f - start for f in todo},
                         read_frame=lambda i: read_png_u8(run.frame_path(start + i)), audio=audio,
                         audio_start_s=audio_start_s)


def audio_track(p) -> Path | None:
    """output.audio, else the input video's own sound track when it has one."""
    if p.output.audio:
        return Path(p.output.audio)
    if p.init_video:
        if source_audio(p.init_video):
            return Path(p.init_video)
    return None


def finishes(run: Run, frame_range: range) -> bool:
    """The whole render, and its output section asks for finishing steps (a sub-range gets its plain clip)."""
    return len(frame_range) == run.preset.max_frames and needs_finishing(run.preset.output)


def finish_job(run: Run) -> FinishJob:
    """The run's finishing: every frame, its fps, output section and sound (from where the frames start)."""
    p = run.preset
    _, audio, audio_start_s = video_target(run, range(p.max_frames))
    return FinishJob(run.dir, tuple(run.frame_path(f) for f in range(p.max_frames)), p.fps, p.output, audio,
                     audio_start_s, p.allow_pickle, p.device)


def finish_run(run: Run, *, quiet: bool = True, redo: bool = False, log=None) -> Path | None:
    """`render.py finish RUN_DIR`: the finishing steps of a run whose frames are all rendered, the output settings
    (changed by overrides) recorded in preset.resolved.yaml first."""
    missing = [f for f in range(run.preset.max_frames) if not is_complete_png(run.frame_path(f))]
    if missing:
        raise InputError(f"{run.dir}: {len(missing)} frame(s) not rendered yet (first {run.frame_path(missing[0])}); "
                         f"finish the render with --resume {run.dir}")
    run.write_plan()
    sweep_video_temps(run)
    return finish(finish_job(run), quiet=quiet, redo=redo, log=log)
