"""The frame loop: for each frame, warp -> coherence -> img2img -> colour match -> write -> checkpoint.

Resume is exact by construction: the loop carries only what the PNGs hold (the previous frame and the
colour reference are 8-bit, as written), and every random draw derives from the frame's own seed.
"""
from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path

import torch
from tqdm import tqdm

from anim.coherence import from_uint8_hwc, prepare_reference, to_uint8_hwc
from anim.errors import InputError, ModelError, PresetError
from anim.output import FrameWriter, a1111_parameters, close_logger, is_complete_png, read_png_u8, run_logger
from anim.plan import parse_frame_range
from anim.preset import frames_hash
from anim.runfolder import STATE, Run
from anim.stages import finish, has_bad_pixels, load_image, prepare_init, make_test_card, warp
from anim.video import encode_video
from anim.yamlio import atomic_write_text


class PreviewMaker:
    """--preview: the camera path only. Frame 0 is the init image (or a test card); no diffusion."""

    mode = "preview"
    sampler_label, model_hash, model_name = "none (preview)", "none", "preview"

    def __init__(self, run: Run, device: torch.device) -> None:
        p = run.preset
        self.preset, self.device = p, device
        if p.init_image:
            self.first = load_image(p.init_image, p.width, p.height, device, "init_image")
        else:
            self.first = from_uint8_hwc(make_test_card(p.width, p.height), device)

    def make(self, row: dict, prev: torch.Tensor | None, reference, times: dict):
        """(image, denoise used or None)."""
        if prev is None:
            return self.first, None
        started = time.perf_counter()
        image = warp(prev, row, self.preset)
        times["warp"] += time.perf_counter() - started
        return image, None


class ModelCache:
    """Loaded models kept between renders (a batch worker renders many jobs with one model)."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._bundle: tuple | None = None

    def get(self, preset, device_name: str, low_memory: bool = False):
        """(models, prompt encoder, diffuser) for this preset, reusing the last ones when they match."""
        key = (preset.model, preset.vae, preset.allow_pickle, device_name, preset.dtype, low_memory,
               tuple((lora.path,) for lora in preset.loras), preset.performance.model_dump_json())
        if key != self._key:
            self._bundle, self._key = None, None  # free the old models before loading new ones
            self._bundle, self._key = _load_bundle(preset, device_name, low_memory), key
        return self._bundle


def _load_bundle(p, device_name: str, low_memory: bool):
    """Load the models of a preset and wrap them for the loop."""
    from anim.conditioning import PromptEncoder
    from anim.diffuse import Diffuser
    from anim.models import apply_loras, load_models

    models = load_models(p.model, vae=p.vae, allow_pickle=p.allow_pickle, device=device_name, dtype=p.dtype)
    if p.loras:
        apply_loras(models, [{"path": lora.path, "weight": 1.0} for lora in p.loras], allow_pickle=p.allow_pickle)
    from anim.performance import apply_performance, enable_low_memory

    apply_performance(models, p.performance)
    if low_memory:
        enable_low_memory(models)
    encoder = PromptEncoder(models.tokenizer, models.text_encoder, models.device, models.dtype)
    return models, encoder, Diffuser(models)


class DiffusionMaker:
    """A real frame: models loaded once; txt2img or init-image img2img first, then warp + img2img."""

    mode = "render"

    def __init__(self, run: Run, device_name: str, times: dict, cache: ModelCache | None = None,
                 low_memory: bool = False) -> None:
        from anim.samplers import a1111_label

        p = self.preset = run.preset
        started = time.perf_counter()
        cache = cache or ModelCache()
        self.models, self.encoder, self.diffuser = cache.get(p, device_name, low_memory)
        self.device = self.models.device
        self.sampler_label = a1111_label(p.sampler)
        self.model_hash, self.model_name = self.models.model_hash, self.models.name
        self.init = load_image(p.init_image, p.width, p.height, self.device, "init_image") if p.init_image else None
        self.video = self.controls = None
        if p.init_video:
            from anim.control.sources import open_source

            self.video = open_source(p.init_video, width=p.width, height=p.height, resize="crop",
                                     nth=p.extract_nth_frame, start_s=p.video_start, end_s=p.video_end,
                                     what="init_video")
        if p.controlnet:
            from anim.control.units import ControlUnits

            self.controls = ControlUnits(p.controlnet, run_dir=run.dir, width=p.width, height=p.height,
                                         device=self.device, dtype=self.models.dtype, allow_pickle=p.allow_pickle,
                                         nth=p.extract_nth_frame, start_s=p.video_start, end_s=p.video_end)
        times["load models"] += time.perf_counter() - started

    def close(self, log) -> None:
        """Release video decoders and annotators; log what the control units cost."""
        if self.controls is not None:
            log.info(self.controls.note())
            self.controls.close()
        if self.video is not None:
            self.video.close()

    def make(self, row: dict, prev: torch.Tensor | None, reference, times: dict):
        """(image, denoise used or None for txt2img); `reference` is a prepared colour reference or None."""
        from anim.models import set_lora_weights

        p = self.preset
        if p.loras:
            set_lora_weights(self.models, [row[f"lora{i}_weight"] for i in range(len(p.loras))])
        started = time.perf_counter()
        cond, uncond = self.encoder.conditioning(
            row["prompt"], row["negative_prompt"], row["blend_prompt"], row["blend_negative_prompt"],
            row["blend_weight"], mode=p.prompt_blend_mode,
        )
        times["prompt"] += time.perf_counter() - started
        frame = int(row["frame"])
        source = from_uint8_hwc(self.video.frame(frame), self.device) if self.video is not None else None
        warped = None
        if prev is None:  # 1. the first frame: the input frame, init_image with init_denoise, or txt2img
            if source is not None:
                init, denoise = source, row["denoise"]
            else:
                init, denoise = self.init, (p.init_denoise if self.init is not None else None)
        else:
            started = time.perf_counter()
            warped = warp(prev, row, p)  # 2. warp the previous output by this frame's camera motion
            # video input: the input frame, steadied toward the warped previous output by video_blend
            init = warped if source is None else torch.lerp(source, warped, float(row["video_blend"]))
            init = prepare_init(init, reference, row, p)  # 3. colour match, contrast, unsharp, noise
            denoise = row["denoise"]
            times["warp+coherence"] += time.perf_counter() - started
        started = time.perf_counter()
        controls = self.controls.for_frame(frame, row, warped) if self.controls is not None else None
        times["control maps"] += time.perf_counter() - started  # 4. conditioning: control maps (cached)
        started = time.perf_counter()
        image = self.diffuser(  # 5. img2img (or txt2img) with the frame's settings and seed
            init=init, cond=cond, uncond=uncond, denoise=1.0 if denoise is None else denoise,
            cfg_scale=row["cfg_scale"], steps=int(row["steps"]), sampler=p.sampler, seed=int(row["seed"]),
            width=p.width, height=p.height, controls=controls,
        )
        times["diffusion"] += time.perf_counter() - started
        if has_bad_pixels(image):
            raise ModelError(f"frame {row['frame']}: the model produced NaN/inf pixels (try dtype: fp32 or another vae)")
        started = time.perf_counter()
        image = finish(image, reference, p)  # 6. colour match the output again
        times["warp+coherence"] += time.perf_counter() - started
        return image, denoise


def _device_name(preset_device: str) -> str:
    """'auto' -> cuda when available (the models module does the same for real renders)."""
    if preset_device != "auto":
        return preset_device
    return "cuda" if torch.cuda.is_available() else "cpu"


def check_inputs(run: Run) -> None:
    """Fail before any work when an input file named by the preset is missing."""
    p = run.preset
    for key, value in (("init_image", p.init_image), ("color_reference", p.color_reference),
                       ("output.audio", p.output.audio), ("init_video", p.init_video)):
        if value and not Path(value).is_file():
            raise InputError(f"{key}: file not found: {value}")
    if p.motion.mode == "3d":
        raise PresetError("motion.mode: '3d' needs the depth camera, which is not built yet; use 2d or none")


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


def _reference(run: Run, state: _State, device: torch.device):
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
        if is_complete_png(path):
            state.reference_path = rel
            return prepare_reference(from_uint8_hwc(read_png_u8(path), device), p.color_coherence)
    return None


class Stopped(Exception):
    """The render was asked to stop between frames (SIGINT/SIGTERM); finished frames are on disk."""


def render_run(run: Run, frames: str | None = None, preview: bool = False, quiet: bool = False, *,
               cache: ModelCache | None = None, should_stop=None, low_memory: bool = False) -> int:
    """Render (or preview) the frames of `run` that are not on disk yet, then encode the video.

    `cache` keeps models between runs, `should_stop()` is asked between frames (raises `Stopped`),
    `low_memory` turns on VAE tiling/slicing and attention slicing.
    """
    p = run.preset
    frame_range = parse_frame_range(frames, p.max_frames)
    check_inputs(run)
    state = _State(run, "preview" if preview else "render")
    state.load()
    times: dict[str, float] = defaultdict(float)
    todo = [f for f in frame_range if not is_complete_png(run.frame_path(f))]
    # Models load before anything is written, so a bad model leaves an existing run folder as it was.
    maker = _make_maker(run, preview, times, cache, low_memory) if todo else None
    run.write_plan()
    log = run_logger(run.dir / "log.txt")
    log.info("%s %s: frames %d..%d, %d to do, hash %s", state.mode, run.source, frame_range.start,
             frame_range.stop - 1, len(todo), state.hash)
    try:
        if todo:
            _render_frames(run, todo, state, maker, quiet, times, log, should_stop)
        started = time.perf_counter()
        video = _encode(run, frame_range) if p.output.video else None
        times["video"] += time.perf_counter() - started
    except BaseException as exc:
        log.error("stopped: %s: %s", type(exc).__name__, exc)
        raise
    finally:
        log.info("timing (s): %s", ", ".join(f"{k} {v:.2f}" for k, v in times.items()))
        close_logger(log)
    print(f"{len(todo)} frame(s) rendered into {run.frames_dir}" + (f"; video {video}" if video else ""))
    return 0


def _make_maker(run: Run, preview: bool, times, cache, low_memory: bool):
    """The frame maker: camera-only preview, or diffusion with models from the cache."""
    if preview:
        return PreviewMaker(run, torch.device(_device_name(run.preset.device)))
    return DiffusionMaker(run, run.preset.device, times, cache=cache, low_memory=low_memory)


def _render_frames(run: Run, todo: list[int], state: _State, maker, quiet: bool, times, log, should_stop) -> None:
    """The loop proper; completed frames are flushed to disk even when a later frame fails."""
    p = run.preset
    preview = maker.mode == "preview"
    device = maker.device
    reference = _reference(run, state, device)
    writer = FrameWriter(after_write=state.written)
    total = len(parse_frame_range(None, p.max_frames))
    bar = tqdm(total=len(todo), unit="frame", disable=quiet, dynamic_ncols=True, desc=run.dir.name)
    prev_index, prev = None, None
    try:
        for f in todo:
            if should_stop is not None and should_stop():
                raise Stopped(f"stopped before frame {f}; run again to continue")
            row = run.table.row(f)  # 1. this frame's row of the schedule
            if prev_index != f - 1:  # resume / sub-range: the previous output is what its PNG holds
                prev_path = run.frame_path(f - 1)
                prev = from_uint8_hwc(read_png_u8(prev_path), device) if f > 0 and is_complete_png(prev_path) else None
            image, denoise = maker.make(row, prev, reference, times)
            started = time.perf_counter()
            image_u8 = to_uint8_hwc(image)
            prev, prev_index = from_uint8_hwc(image_u8, device), f
            if reference is None and not preview and p.color_coherence != "none":
                reference = prepare_reference(prev, p.color_coherence)
                state.reference_path = str(run.frame_path(f).relative_to(run.dir))
            text = a1111_parameters(row, width=p.width, height=p.height, sampler_label=maker.sampler_label,
                                    model_hash=maker.model_hash, model_name=maker.model_name, denoise=denoise)
            writer.submit(f, run.frame_path(f), image_u8, text, row)  # 7. PNG + metadata, off the hot path
            times["hand-off"] += time.perf_counter() - started
            bar.update(1)
            log.info("frame %d/%d seed %d denoise %s", f, total - 1, row["seed"], denoise)
    finally:
        bar.close()
        if hasattr(maker, "close"):
            maker.close(log)
        started = time.perf_counter()
        writer.close()  # 8. state.json follows each durable PNG (see _State.written)
        times["write"] += time.perf_counter() - started


def _encode(run: Run, frame_range: range) -> Path | None:
    """video.mp4 for the whole render, video_A-B.mp4 for a sub-range; skipped if frames are missing."""
    p = run.preset
    paths = [run.frame_path(f) for f in frame_range]
    if not all(is_complete_png(path) for path in paths):
        return None
    full = len(frame_range) == p.max_frames
    name = "video.mp4" if full else f"video_{frame_range.start:06d}-{frame_range.stop - 1:06d}.mp4"
    audio, audio_start_s = _audio(p), frame_range.start / p.fps
    if audio is not None and p.init_video and audio == Path(p.init_video):
        audio_start_s += p.video_start  # the input's sound, from where its frames start
    return encode_video(run.frames_dir, run.dir / name, fps=p.fps, crf=p.output.crf, audio=audio, frames=paths,
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
