"""The frame loop: for each frame, warp -> coherence -> img2img -> colour match -> write -> checkpoint.

Resume is exact by construction: the loop carries only what the PNGs hold (the previous frame and the
colour reference are 8-bit, as written), and every random draw derives from the frame's own seed.
"""
from __future__ import annotations

import json
import shutil
import time
from collections import defaultdict
from pathlib import Path

import torch
from tqdm import tqdm

from anim.coherence import from_uint8_hwc, prepare_reference, to_uint8_hwc
from anim.errors import InputError, PresetError
from anim.makers import DiffusionMaker, ModelCache, PreviewMaker, device_name
from anim.output import FrameWriter, a1111_parameters, close_logger, is_complete_png, read_png_u8, run_logger
from anim.plan import parse_frame_range
from anim.preset import frames_hash
from anim.runfolder import GROUP, STATE, Run
from anim.stages import key_frames, load_image, tween
from anim.video import encode_video
from anim.yamlio import atomic_write_text


def check_inputs(run: Run) -> None:
    """Fail before any work when an input file named by the preset is missing."""
    p = run.preset
    for key, value in (("init_image", p.init_image), ("color_reference", p.color_reference),
                       ("output.audio", p.output.audio), ("init_video", p.init_video)):
        if value and not Path(value).is_file():
            raise InputError(f"{key}: file not found: {value}")


class _State:
    """state.json: what the next frame is and what it depends on, written after each durable PNG."""

    def __init__(self, run: Run, mode: str) -> None:
        self.run, self.mode = run, mode
        self.hash = frames_hash(run.preset)
        self.reference_path: str | None = None

    def load(self) -> None:
        """Refuse to mix preview and render frames; pick up the recorded colour reference."""
        state = self.run.read_state()
        if state is None:
            return
        if state.get("mode", "render") != self.mode:
            raise PresetError(f"{self.run.dir}: holds a {state.get('mode')} run; use another --out for --{self.mode}")
        self.reference_path = state.get("color_reference")
        threads = state.get("torch_threads")
        if threads and threads != torch.get_num_threads():  # CPU results depend on the thread count
            torch.set_num_threads(int(threads))

    def written(self, index: int) -> None:
        """Called by the writer thread once frame `index` is on disk."""
        state = {
            "version": 1, "mode": self.mode, "frames_hash": self.hash, "last_frame": index,
            "next_frame": index + 1, "max_frames": self.run.preset.max_frames,
            "color_reference": self.reference_path,
            "rng": {"scheme": "per-frame", "note": "every draw is seeded by the frame's seed (schedule.csv)"},
            "torch_threads": torch.get_num_threads(),
        }
        atomic_write_text(self.run.dir / STATE, json.dumps(state, indent=1))


def _reference(run: Run, state: _State, device: torch.device, redo: int):
    """The colour-coherence reference, prepared once: color_reference image, else the recorded or first frame."""
    p = run.preset
    if p.color_coherence == "none":
        return None
    if p.color_reference:
        image = load_image(p.color_reference, p.width, p.height, device, "color_reference")
        return prepare_reference(image, p.color_coherence)
    candidates = [state.reference_path] if state.reference_path else []
    candidates.append(str(run.frame_path(0).relative_to(run.dir)))
    for rel in candidates:
        path = run.dir / rel
        if path.parent == run.frames_dir and path.stem.isdigit() and int(path.stem) >= redo:
            continue  # a frame made again: the reference comes from its new version, as in the first render
        if is_complete_png(path):
            state.reference_path = rel
            return prepare_reference(from_uint8_hwc(read_png_u8(path), device), p.color_coherence)
    return None


class Stopped(Exception):
    """The render was asked to stop between frames (SIGINT/SIGTERM); finished frames are on disk."""


def render_run(run: Run, frames: str | None = None, preview: bool = False, quiet: bool = False, *,
               cache: ModelCache | None = None, should_stop=None, low_memory: bool = False,
               redo_from: int | None = None, diffuse=None) -> int:
    """Render (or preview) the frames of `run` that are not on disk yet, then encode the video.

    `cache` keeps models between runs, `should_stop()` is asked between frames (raises `Stopped`),
    `low_memory` turns on VAE tiling/slicing and attention slicing. A lockstep group (anim.group) passes
    `diffuse(frame, **diffuser_kwargs)` to share UNet calls, and `redo_from` to render frames from there on
    again even when on disk (a resumed group re-forms the exact rounds, so the frames come out identical).
    """
    p = run.preset
    frame_range = parse_frame_range(frames, p.max_frames)
    check_inputs(run)
    state = _State(run, "preview" if preview else "render")
    state.load()
    times: dict[str, float] = defaultdict(float)
    redo = p.max_frames if redo_from is None else redo_from
    todo = [f for f in frame_range if f >= redo or not is_complete_png(run.frame_path(f))]
    # Models load before anything is written, so a bad model leaves an existing run folder as it was.
    maker = _make_maker(run, preview, times, cache, low_memory, diffuse) if todo else None
    run.write_plan()
    log = run_logger(run.dir / "log.txt")
    log.info("%s %s: frames %d..%d, %d to do, hash %s", state.mode, run.source, frame_range.start,
             frame_range.stop - 1, len(todo), state.hash)
    if todo and diffuse is None and (run.dir / GROUP).is_file():
        log.warning("this run was rendered in a lockstep group (%s); frames made alone from here on may differ "
                    "in the last bits from an uninterrupted group render: resume it with its batch", GROUP)
    _sweep_video_temps(run)
    encoder = _stream_encoder(run, frame_range, todo) if todo and p.output.video else None
    try:
        if todo:
            on_frame = (lambda f, image_u8: encoder.add(f - frame_range.start, image_u8)) if encoder else None
            _render_frames(run, todo, state, maker, quiet, times, log, should_stop, redo, on_frame)
        started = time.perf_counter()
        if encoder is not None:  # ffmpeg ran alongside the frames: only its last frames are left
            video, encoder = encoder.finish(), None
        else:
            video = _encode(run, frame_range) if p.output.video else None
        times["video"] += time.perf_counter() - started
    except BaseException as exc:
        if encoder is not None:
            encoder.abort()
        log.error("stopped: %s: %s", type(exc).__name__, exc)
        raise
    finally:
        log.info("timing (s): %s", ", ".join(f"{k} {v:.2f}" for k, v in times.items()))
        close_logger(log)
    print(f"{len(todo)} frame(s) rendered into {run.frames_dir}" + (f"; video {video}" if video else ""))
    return 0


def _make_maker(run: Run, preview: bool, times, cache, low_memory: bool, diffuse=None):
    """The frame maker: camera-only preview, or diffusion with models from the cache."""
    if preview:
        return PreviewMaker(run, torch.device(device_name(run.preset.device)))
    return DiffusionMaker(run, run.preset.device, times, cache=cache, low_memory=low_memory, diffuse=diffuse)


def _render_frames(run: Run, todo: list[int], state: _State, maker, quiet: bool, times, log, should_stop,
                   redo: int, on_frame=None) -> None:
    """The loop proper: key frames are diffused (every frame, or every Nth with cadence), in-betweens
    made from their two keys. Finished frames are flushed to disk even when a later one fails.
    `on_frame(frame, image_u8)` sees each frame as its PNG will hold it (the streaming video encoder)."""
    loop = _Loop(run, state, maker, times, log, redo, on_frame)
    keys = key_frames(run.preset.max_frames, 1 if maker.mode == "preview" else run.preset.cadence)
    bar = tqdm(total=len(todo), unit="frame", disable=quiet, dynamic_ncols=True, desc=run.dir.name)
    wanted = set(todo)
    try:
        for i, key in enumerate(keys):
            before = keys[i - 1] if i > 0 else None
            tweens = [f for f in range(before + 1, key) if f in wanted] if before is not None else []
            if key not in wanted and not tweens and not (i + 1 < len(keys) and _needs(keys[i + 1], keys[i], wanted)):
                continue
            if should_stop is not None and should_stop():
                raise Stopped(f"stopped before frame {min(wanted)}; run again to continue")
            if not loop.done(key):
                loop.key(key, before)
                bar.update(key in wanted)
            for frame in tweens:
                if not loop.done(frame):
                    loop.tween(frame, before, key)
                    bar.update(1)
            wanted.difference_update(tweens)
            wanted.discard(key)
            if not wanted:
                break
    finally:
        bar.close()
        if hasattr(maker, "close"):
            maker.close(log)
        started = time.perf_counter()
        loop.writer.close()  # 8. state.json follows each durable PNG (see _State.written)
        times["write"] += time.perf_counter() - started


def _needs(key: int, before: int, wanted: set[int]) -> bool:
    """Whether the segment before `key` holds a wanted in-between (so the key `before` is needed)."""
    return any(f in wanted for f in range(before + 1, key))


class _Loop:
    """Per-run loop state: the last frames made (as their PNGs hold them), the colour reference, the writer."""

    def __init__(self, run: Run, state: _State, maker, times, log, redo: int, on_frame=None) -> None:
        self.run, self.state, self.maker, self.times, self.log = run, state, maker, times, log
        self.on_frame = on_frame
        self.redo = redo  # frames from here on are made again even when on disk
        self.p = run.preset
        self.device = maker.device
        self.reference = _reference(run, state, self.device, redo)
        self.writer = FrameWriter(after_write=state.written)
        self.recent: dict[int, torch.Tensor] = {}  # frames made in this run, kept until the writer has them

    def done(self, frame: int) -> bool:
        return frame in self.recent or (frame < self.redo and is_complete_png(self.run.frame_path(frame)))

    def image(self, frame: int | None) -> torch.Tensor | None:
        """A frame as its PNG holds it (from memory when made in this run), or None if absent."""
        if frame is None:
            return None
        if frame in self.recent:
            return self.recent[frame]
        path = self.run.frame_path(frame)
        return from_uint8_hwc(read_png_u8(path), self.device) if is_complete_png(path) else None

    def key(self, frame: int, before: int | None) -> None:
        """Diffuse a key frame from the key before it, moved by the motion of every frame in between."""
        row = self.run.table.row(frame)  # 1. this frame's row of the schedule
        prev = self.image(before)
        moved = None
        if prev is not None and frame - before > 1:  # cadence: the motion of several frames at once
            started = time.perf_counter()
            moved = self.maker.camera.move_many(prev, self._rows(before + 1, frame + 1))
            self.times["warp+coherence"] += time.perf_counter() - started
        image, denoise = self.maker.make(row, prev, self.reference, self.times, moved=moved)
        self._emit(frame, row, image, denoise)

    def tween(self, frame: int, before: int, after: int) -> None:
        """A cadence in-between: its two keys moved to it and crossfaded (no diffusion)."""
        started = time.perf_counter()
        image = tween(self.maker.camera, self.image(before), self.image(after), self._rows(before + 1, after + 1),
                      frame - before, use_flow=self.p.cadence_flow, flow_method=self.p.flow_method)
        self.times["cadence"] += time.perf_counter() - started
        self._emit(frame, self.run.table.row(frame), image, None)

    def _rows(self, start: int, stop: int) -> list[dict]:
        return [self.run.table.row(f) for f in range(start, stop)]

    def _emit(self, frame: int, row: dict, image: torch.Tensor, denoise) -> None:
        """Quantise to what the PNG holds, keep it for the next frames, hand it to the writer (7)."""
        started = time.perf_counter()
        image_u8 = to_uint8_hwc(image)
        self.recent[frame] = from_uint8_hwc(image_u8, self.device)
        for old in sorted(self.recent)[:-3]:  # the last key, the next key and the frame just made suffice
            del self.recent[old]
        if self.reference is None and self.maker.mode != "preview" and self.p.color_coherence != "none":
            self.reference = prepare_reference(self.recent[frame], self.p.color_coherence)
            self.state.reference_path = str(self.run.frame_path(frame).relative_to(self.run.dir))
        text = a1111_parameters(row, width=self.p.width, height=self.p.height, sampler_label=self.maker.sampler_label,
                                model_hash=self.maker.model_hash, model_name=self.maker.model_name, denoise=denoise)
        self.writer.submit(frame, self.run.frame_path(frame), image_u8, text, row)
        if self.on_frame is not None:
            self.on_frame(frame, image_u8)
        self.times["hand-off"] += time.perf_counter() - started
        self.log.info("frame %d/%d seed %d denoise %s", frame, self.p.max_frames - 1, row["seed"], denoise)


def _video_target(run: Run, frame_range: range) -> tuple[Path, Path | None, float]:
    """(video path, audio or None, audio start in s): video.mp4 for the whole render, video_A-B.mp4 for a
    sub-range, with the audio cut to start where the range starts."""
    p = run.preset
    full = len(frame_range) == p.max_frames
    name = "video.mp4" if full else f"video_{frame_range.start:06d}-{frame_range.stop - 1:06d}.mp4"
    audio, audio_start_s = _audio(p), frame_range.start / p.fps
    if audio is not None and p.init_video and audio == Path(p.init_video):
        audio_start_s += p.video_start  # the input's sound, from where its frames start
    return run.dir / name, audio, audio_start_s


def _encode(run: Run, frame_range: range) -> Path | None:
    """Encode the range's PNGs (nothing was rendered this time); skipped if frames are missing."""
    p = run.preset
    paths = [run.frame_path(f) for f in frame_range]
    if not all(is_complete_png(path) for path in paths):
        return None
    path, audio, audio_start_s = _video_target(run, frame_range)
    return encode_video(run.frames_dir, path, fps=p.fps, crf=p.output.crf, audio=audio, frames=paths,
                        audio_start_s=audio_start_s)


def _sweep_video_temps(run: Run) -> None:
    """Remove what a killed encoder left (hidden temp videos and frame-link folders; never the video)."""
    for leftover in run.dir.glob(".video*"):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def _stream_encoder(run: Run, frame_range: range, todo: list[int]):
    """ffmpeg started before the first frame and fed as frames are made (frames on disk are read back)."""
    from anim.video_stream import StreamEncoder

    p = run.preset
    path, audio, audio_start_s = _video_target(run, frame_range)
    start = frame_range.start
    return StreamEncoder(path, width=p.width, height=p.height, fps=p.fps, crf=p.output.crf,
                         n_frames=len(frame_range), delivered={f - start for f in todo},
                         read_frame=lambda i: read_png_u8(run.frame_path(start + i)), audio=audio,
                         audio_start_s=audio_start_s)


def _audio(p) -> Path | None:
    """output.audio, else the input video's own sound track when it has one."""
    if p.output.audio:
        return Path(p.output.audio)
    if p.init_video:
        from anim.control.sources import source_audio

        if source_audio(p.init_video):
            return Path(p.init_video)
    return None
