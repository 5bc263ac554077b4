"""The frame loop: steps 1-8 of DESIGN.md for every frame, in one place (`FrameLoop.key`).

1. the frame's row   2. warp the previous output (motion)   3. coherence (colour, contrast, sharpen, noise,
video/flow blend)   4. conditioning (control maps)   5. img2img (+ControlNet)   6. colour match again
7. hand the frame to the writer (PNG + metadata, async)   8. state.json after each durable PNG.

Resume is exact by construction: the loop carries only what the PNGs hold (the previous frame and the
colour reference are 8-bit, as written), and every random draw derives from the frame's own seed.
"""
from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from anim.coherence import prepare_reference
from anim.coherence.hybrid import follow_video, hybrid_after_generation
from anim.coherence.stages import video_reference_frame
from anim.engine.cache import ModelCache
from anim.engine.makers import DiffusionMaker, PreviewMaker
from anim.engine.state import RunState
from anim.engine.video_out import encode_range, finishes, stream_encoder, sweep_video_temps
from anim.errors import InputError
from anim.finish import check_finish_inputs
from anim.media.images import load_image
from anim.media.png import (
    FrameWriter,
    a1111_parameters,
    close_logger,
    is_complete_png,
    read_png_u8,
    run_logger,
)
from anim.media.tensors import from_uint8_hwc, to_uint8_hwc
from anim.media.video import check_encode_inputs
from anim.motion.cadence import key_frames, tween
from anim.plan import parse_frame_range
from anim.runfolder import GROUP, Run


@dataclass(frozen=True)
class Rendered:
    """What a render did: frames made this time, where they are, and the video (None when not encoded)."""

    frames: int
    frames_dir: Path
    video: Path | None

    def summary(self) -> str:
        return f"{self.frames} frame(s) rendered into {self.frames_dir}" + (f"; video {self.video}" if self.video else "")


class Stopped(Exception):
    """The render was asked to stop between frames (SIGINT/SIGTERM); finished frames are on disk."""


def check_inputs(run: Run) -> None:
    """Fail before any work when an input file named by the preset is missing."""
    p = run.preset
    for key, value in (("init_image", p.init_image), ("color_reference", p.color_reference),
                       ("output.audio", p.output.audio), ("init_video", p.init_video)):
        if value and not Path(value).is_file():
            raise InputError(f"{key}: file not found: {value}")
    if p.output.audio and p.output.video:  # before any frame: a bad sound file must not cost a render
        check_encode_inputs(Path(p.output.audio), p.output.crf, what="output.audio")
    check_finish_inputs(p.output, p.allow_pickle)  # upscaler and RIFE weights on disk (nothing is downloaded)


def _reference(run: Run, state: RunState, device: torch.device, redo: int):
    """The colour-coherence reference, prepared once: color_reference image, else the recorded or first frame."""
    p = run.preset
    if p.color_coherence in ("none", "video_input"):  # video_input: taken from the input video per key frame
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


def render_run(run: Run, frames: str | None = None, preview: bool = False, quiet: bool = False, *,
               cache: ModelCache | None = None, should_stop=None, low_memory: bool = False,
               redo_from: int | None = None, diffuse=None) -> Rendered:
    """Render (or preview) the frames of `run` that are not on disk yet, then encode the video.

    `cache` keeps models between runs, `should_stop()` is asked between frames (raises `Stopped`),
    `low_memory` turns on VAE tiling/slicing and attention slicing. A lockstep group (anim.engine.group) passes
    `diffuse(frame, **diffuser_kwargs)` to share UNet calls, and `redo_from` to render frames from there on
    again even when on disk (a resumed group re-forms the exact rounds, so the frames come out identical).
    """
    p = run.preset
    frame_range = parse_frame_range(frames, p.max_frames)
    check_inputs(run)
    state = RunState(run, "preview" if preview else "render")
    recorded_threads = state.load()
    times: dict[str, float] = defaultdict(float)
    redo = p.max_frames if redo_from is None else redo_from
    todo = [f for f in frame_range if f >= redo or not is_complete_png(run.frame_path(f))]
    # Models load before anything is written, so a bad model leaves an existing run folder as it was.
    maker = (PreviewMaker(run) if preview else DiffusionMaker(run, times, cache, low_memory, diffuse)) if todo else None
    run.write_plan()
    log = run_logger(run.dir / "log.txt")
    log.info("%s %s: frames %d..%d, %d to do, hash %s", state.mode, run.source, frame_range.start,
             frame_range.stop - 1, len(todo), state.hash)
    if todo and diffuse is None and (run.dir / GROUP).is_file():
        log.warning("this run was rendered in a lockstep group (%s); frames made alone from here on may differ "
                    "in the last bits from an uninterrupted group render: resume it with its batch", GROUP)
    sweep_video_temps(run)
    finishing = finishes(run, frame_range)  # upscale/interpolate/formats: the videos are made after the frames
    encoder = stream_encoder(run, frame_range, todo) if todo and p.output.video and not finishing else None
    try:
        if todo:
            on_frame = (lambda f, image_u8: encoder.add(f - frame_range.start, image_u8)) if encoder else None
            with torch_threads(recorded_threads):  # CPU results depend on the thread count: resume with the same
                _render_frames(run, todo, state, maker, quiet, times, log, should_stop, redo, on_frame)
        started = time.perf_counter()
        if encoder is not None:  # ffmpeg ran alongside the frames: only its last frames are left
            video, encoder = encoder.finish(), None
        else:
            video = encode_range(run, frame_range, quiet, log) if p.output.video or finishing else None
        times["video"] += time.perf_counter() - started
    except BaseException as exc:
        if encoder is not None:
            encoder.abort()
        log.error("stopped: %s: %s", type(exc).__name__, exc)
        raise
    finally:
        log.info("timing (s): %s", ", ".join(f"{k} {v:.2f}" for k, v in times.items()))
        close_logger(log)
    return Rendered(len(todo), run.frames_dir, video)


@contextlib.contextmanager
def torch_threads(count: int | None):
    """torch's CPU thread count set to `count` for the block (unchanged when None), then restored."""
    before = torch.get_num_threads()
    if count and count != before:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def _render_frames(run: Run, todo: list[int], state: RunState, maker, quiet: bool, times, log, should_stop,
                   redo: int, on_frame=None) -> None:
    """Walk the key frames (every frame, or every Nth with cadence) and the in-betweens of the frames to do.
    Finished frames are flushed to disk even when a later one fails. `on_frame(frame, image_u8)` sees each
    frame as its PNG will hold it (the streaming video encoder)."""
    if maker.mode != "preview" and run.preset.engine == "animatediff":
        _render_windows(run, todo, state, maker, quiet, times, log, should_stop, redo, on_frame)
        return
    loop = FrameLoop(run, state, maker, times, log, redo, on_frame)
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
        loop.writer.close()  # 8. state.json follows each durable PNG (see RunState.written)
        times["write"] += time.perf_counter() - started


def _render_windows(run: Run, todo: list[int], state: RunState, maker, quiet: bool, times, log, should_stop,
                    redo: int, on_frame=None) -> None:
    """engine animatediff: the frames to do, rendered window by window (anim.engine.windows)."""
    from anim.engine.windows import render_windows

    loop = FrameLoop(run, state, maker, times, log, redo, on_frame, keep=run.preset.animatediff.context + 1)
    try:
        render_windows(loop, todo, quiet, should_stop, Stopped)
    finally:
        if hasattr(maker, "close"):
            maker.close(log)
        started = time.perf_counter()
        loop.writer.close()
        times["write"] += time.perf_counter() - started


def _needs(key: int, before: int, wanted: set[int]) -> bool:
    """Whether the segment before `key` holds a wanted in-between (so the key `before` is needed)."""
    return any(f in wanted for f in range(before + 1, key))


class FrameLoop:
    """Per-run loop state: the last frames made (as their PNGs hold them), the colour reference, the writer."""

    def __init__(self, run: Run, state: RunState, maker, times, log, redo: int, on_frame=None, keep: int = 3) -> None:
        self.run, self.state, self.maker, self.times, self.log = run, state, maker, times, log
        self.keep = keep  # frames kept in memory: they are needed again before the writer may have them on disk
        self.on_frame = on_frame
        self.redo = redo  # frames from here on are made again even when on disk
        self.p = run.preset
        self.device = maker.device
        self.reference = _reference(run, state, self.device, redo)
        self.writer = FrameWriter(after_write=state.written)
        self.recent: dict[int, torch.Tensor] = {}  # frames made in this run, kept until the writer has them
        self._video_reference: tuple[int, object] | None = None  # color_coherence video_input: (input frame, ref)

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
        """A key frame, from the key before it (moved by the motion of every frame in between), steps 1-8."""
        maker, times = self.maker, self.times
        row = self.run.table.row(frame)  # 1. this frame's row of the schedule
        prev = self.image(before)
        source = maker.source(frame)  # video input: the input frame
        started = time.perf_counter()
        if prev is None:  # the first frame: the input frame, init_image with init_denoise, or txt2img
            (init, denoise), warped = maker.first(row, source), None
        else:
            warped = self._warp(prev, before, frame, row)  # 2. warp the previous output by the camera
            init = maker.cohere(warped, prev, source, row, self.reference_for(frame), before)  # 3. coherence
            denoise = maker.denoise(row)
        times["warp+coherence"] += time.perf_counter() - started
        started = time.perf_counter()
        controls = maker.controls(frame, row, warped)  # 4. conditioning: control maps (cached)
        times["control maps"] += time.perf_counter() - started
        started = time.perf_counter()
        anchors = self._anchors(before, prev) if prev is not None else ()
        image = maker.diffuse(frame, row, init, denoise, controls, anchors)  # 5. img2img / txt2img (+ControlNet)
        times["diffusion"] += time.perf_counter() - started
        started = time.perf_counter()
        if prev is not None:  # hybrid video 'after_generation': the input frame blended into the output
            image = hybrid_after_generation(image, source, row, self.p.hybrid, maker.camera.depth_model, prev)
        reference = self.reference_for(frame) if prev is not None else self.reference  # video_input: after frame 0
        image = maker.finish(image, reference)  # 6. colour match the output again
        times["warp+coherence"] += time.perf_counter() - started
        self.emit(frame, row, image, denoise)  # 7. to the writer; 8. state.json once the PNG is durable

    def reference_for(self, frame: int):
        """The colour reference of a key frame: the run's one reference, or with color_coherence video_input the
        input frame Deforum would hold (taken afresh every color_coherence_every_n key frames), prepared once."""
        if self.p.color_coherence != "video_input" or self.maker.mode == "preview":
            return self.reference
        wanted = video_reference_frame(frame, key_frames(self.p.max_frames, self.p.cadence),
                                       self.p.color_coherence_every_n)
        if self._video_reference is None or self._video_reference[0] != wanted:
            self._video_reference = (wanted, prepare_reference(self.maker.source(wanted), "lab"))
        return self._video_reference[1]

    def _anchors(self, before: int, prev: torch.Tensor) -> list[tuple[int, torch.Tensor]]:
        """Cross-frame attention's anchors as their PNGs hold them: frame 0 ('first') and the previous key frame
        ('previous'), each once."""
        chosen = []
        for name in self.p.coherence.cross_frame.anchors:
            index = 0 if name == "first" else before
            if all(index != i for i, _ in chosen):
                image = prev if index == before else self.image(index)
                if image is not None:
                    chosen.append((index, image))
        return chosen

    def _warp(self, prev: torch.Tensor, before: int, frame: int, row: dict) -> torch.Tensor:
        """Step 2: the previous key moved to `frame` (cadence: the motion of every frame in between at once)."""
        if frame - before > 1:
            return self.maker.camera.move_many(prev, self._rows(before + 1, frame + 1))
        return self.maker.camera.move(prev, row, frame - 1)

    def tween(self, frame: int, before: int, after: int) -> None:
        """A cadence in-between: its two keys moved to it and crossfaded (no diffusion)."""
        started = time.perf_counter()
        follow = self._follow_video(frame, before, after)
        image = tween(self.maker.camera, self.image(before), self.image(after), self._rows(before + 1, after + 1),
                      frame - before, use_flow=self.p.cadence_flow, flow_method=self.p.flow_method, follow=follow)
        self.times["cadence"] += time.perf_counter() - started
        self.emit(frame, self.run.table.row(frame), image, None)

    def _follow_video(self, frame: int, before: int, after: int):
        """Hybrid motion of an in-between: (move the key before, move the key after) by the input video's motion
        from each key's input frame to the in-between's; None without hybrid motion."""
        settings, video = self.p.hybrid, getattr(self.maker, "video", None)
        if settings.motion == "none" or video is None:
            return None
        row, to = self.run.table.row(frame), video.frame(frame)
        return (lambda image: follow_video(image, video.frame(before), to, row, settings),
                lambda image: follow_video(image, video.frame(after), to, row, settings))

    def _rows(self, start: int, stop: int) -> list[dict]:
        return [self.run.table.row(f) for f in range(start, stop)]

    def emit(self, frame: int, row: dict, image: torch.Tensor, denoise) -> None:
        """Quantise to what the PNG holds, keep it for the next frames, hand it to the writer (7)."""
        started = time.perf_counter()
        image_u8 = to_uint8_hwc(image)
        self.recent[frame] = from_uint8_hwc(image_u8, self.device)
        for old in sorted(self.recent)[:-self.keep]:  # frames loop: the last key, the next key, the frame just made
            del self.recent[old]
        if self.reference is None and self.maker.mode != "preview" and self.p.color_coherence not in (
                "none", "video_input"):
            self.reference = prepare_reference(self.recent[frame], self.p.color_coherence)
            self.state.reference_path = str(self.run.frame_path(frame).relative_to(self.run.dir))
        sampler_label, model_hash, model_name = self.maker.labels(row)  # the frame's own sampler and model
        text = a1111_parameters(row, width=self.p.width, height=self.p.height, sampler_label=sampler_label,
                                model_hash=model_hash, model_name=model_name, denoise=denoise,
                                lora_hashes=getattr(self.maker, "lora_hashes", None))
        self.writer.submit(frame, self.run.frame_path(frame), image_u8, text, row)
        if self.on_frame is not None:
            self.on_frame(frame, image_u8)
        self.times["hand-off"] += time.perf_counter() - started
        self.log.info("frame %d/%d seed %d denoise %s", frame, self.p.max_frames - 1, row["seed"], denoise)
