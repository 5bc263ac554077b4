"""Frame makers for the loop: camera-only preview, and diffusion with models kept between renders."""
from __future__ import annotations

import threading
import time
from functools import partial

import torch

from anim.coherence import from_uint8_hwc
from anim.errors import ModelError
from anim.runfolder import Run
from anim.stages import Camera, finish, flow_coherence, has_bad_pixels, load_image, make_test_card, prepare_init


class PreviewMaker:
    """--preview: the camera path only. Frame 0 is the init image (or a test card); no diffusion."""

    mode = "preview"
    sampler_label, model_hash, model_name = "none (preview)", "none", "preview"

    def __init__(self, run: Run, device: torch.device) -> None:
        p = run.preset
        self.preset, self.device = p, device
        self.camera = Camera(p, device, depth_dir=run.dir / "depth")
        if p.init_image:
            self.first = load_image(p.init_image, p.width, p.height, device, "init_image")
        else:
            self.first = from_uint8_hwc(make_test_card(p.width, p.height), device)

    def make(self, row: dict, prev: torch.Tensor | None, reference, times: dict, moved=None):
        """(image, denoise used or None); `moved` is `prev` already moved to this frame (cadence)."""
        if prev is None:
            return self.first, None
        started = time.perf_counter()
        image = moved if moved is not None else self.camera.move(prev, row, int(row["frame"]) - 1)
        times["warp"] += time.perf_counter() - started
        return image, None


class ModelCache:
    """Loaded models kept between renders (a batch worker renders many jobs with one model)."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._bundle: tuple | None = None
        self._lock = threading.Lock()  # the members of a lockstep group ask from their own threads
        self._nets: dict[tuple, object] = {}

    def get(self, preset, device_name: str, low_memory: bool = False):
        """(models, prompt encoder, diffuser) for this preset, reusing the last ones when they match."""
        key = (preset.model, preset.vae, preset.allow_pickle, device_name, preset.dtype, low_memory,
               tuple((lora.path,) for lora in preset.loras), preset.performance.model_dump_json())
        with self._lock:
            if key != self._key:
                self._bundle, self._key, self._nets = None, None, {}  # free the old models before loading new ones
                self._bundle, self._key = _load_bundle(preset, device_name, low_memory), key
            return self._bundle


    def controlnet(self, source: str, *, device, dtype, allow_pickle: bool = False, performance=None):
        """A ControlNet loaded once and shared by every run that names it: a lockstep group then batches one
        ControlNet call per step for all its members, and the weights sit in memory once."""
        key = (source, str(device), str(dtype), allow_pickle)
        with self._lock:
            if key not in self._nets:
                from anim.models import load_controlnet

                net = load_controlnet(source, device=device, dtype=dtype, allow_pickle=allow_pickle)
                if performance is not None and getattr(performance, "channels_last", False) \
                        and torch.device(device).type == "cuda":
                    net.to(memory_format=torch.channels_last)
                self._nets[key] = net
            return self._nets[key]


def _load_bundle(p, device_name: str, low_memory: bool):
    """Load the models of a preset and wrap them for the loop (SD1.5 or SDXL encoder and diffuser)."""
    from anim.models import apply_loras, load_models
    from anim.performance import apply_performance, enable_low_memory

    models = load_models(p.model, vae=p.vae, allow_pickle=p.allow_pickle, device=device_name, dtype=p.dtype)
    if p.loras:
        apply_loras(models, [{"path": lora.path, "weight": 1.0} for lora in p.loras], allow_pickle=p.allow_pickle)
    apply_performance(models, p.performance)
    if low_memory and not p.performance.low_vram:  # low_vram already did it (offload hooks must not stack)
        enable_low_memory(models)
    if models.is_sdxl:
        from anim.sdxl import SDXLDiffuser, SDXLPromptEncoder

        return models, SDXLPromptEncoder.from_models(models), SDXLDiffuser(models)
    from anim.conditioning import PromptEncoder
    from anim.diffuse import Diffuser

    return models, PromptEncoder.from_models(models), Diffuser(models)


class DiffusionMaker:
    """A real frame: models loaded once; txt2img or init-image img2img first, then warp + img2img."""

    mode = "render"

    def __init__(self, run: Run, device_name: str, times: dict, cache: ModelCache | None = None,
                 low_memory: bool = False, diffuse=None) -> None:
        from anim.samplers import a1111_label

        p = self.preset = run.preset
        started = time.perf_counter()
        cache = self.cache = cache or ModelCache()
        self.models, self.encoder, self.diffuser = cache.get(p, device_name, low_memory)
        # diffuse(frame, **kwargs): the shared diffuser, or a lockstep group's port (anim.group)
        self.diffuse = diffuse or (lambda frame, **kwargs: self.diffuser(**kwargs))
        self.device = self.models.device
        self.sampler_label = a1111_label(p.sampler)
        self.model_hash, self.model_name = self.models.model_hash, self.models.name
        self.init = load_image(p.init_image, p.width, p.height, self.device, "init_image") if p.init_image else None
        self.camera = Camera(p, self.device, self.models.dtype, depth_dir=run.dir / "depth")
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
                                         load_controlnet=partial(cache.controlnet, performance=p.performance),
                                         nth=p.extract_nth_frame, start_s=p.video_start, end_s=p.video_end)
        times["load models"] += time.perf_counter() - started

    def close(self, log) -> None:
        """Release video decoders and annotators; log what the control units cost."""
        if self.controls is not None:
            log.info(self.controls.note())
            self.controls.close()
        if self.video is not None:
            self.video.close()

    def make(self, row: dict, prev: torch.Tensor | None, reference, times: dict, moved=None):
        """(image, denoise used or None for txt2img); `reference` is a prepared colour reference or None;
        `moved` is `prev` already moved to this frame (cadence: the motion of several frames)."""
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
            # 2. warp the previous output by this frame's camera motion
            warped = moved if moved is not None else self.camera.move(prev, row, frame - 1)
            # video input: the input frame, steadied toward the warped previous output by video_blend,
            # and the previous output carried along the input's optical flow by flow_blend
            init = warped if source is None else torch.lerp(source, warped, float(row["video_blend"]))
            if source is not None and row["flow_blend"] > 0.0:
                init = flow_coherence(init, prev, self.video.frame(frame), self.video.frame(frame - 1),
                                      float(row["flow_blend"]), p.flow_method)
            init = prepare_init(init, reference, row, p)  # 3. colour match, contrast, unsharp, noise
            denoise = row["denoise"]
            times["warp+coherence"] += time.perf_counter() - started
        started = time.perf_counter()
        controls = self.controls.for_frame(frame, row, warped) if self.controls is not None else None
        times["control maps"] += time.perf_counter() - started  # 4. conditioning: control maps (cached)
        started = time.perf_counter()
        image = self.diffuse(  # 5. img2img (or txt2img) with the frame's settings and seed
            frame, init=init, cond=cond, uncond=uncond, denoise=1.0 if denoise is None else denoise,
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


def device_name(preset_device: str) -> str:
    """'auto' -> cuda when available (the models module does the same for real renders)."""
    if preset_device != "auto":
        return preset_device
    return "cuda" if torch.cuda.is_available() else "cpu"
