"""What a frame is made of, per mode: the camera-only preview and the real render (diffusion, ControlNet).

The loop (anim.engine.loop) runs steps 1-8 in order and asks the maker for the parts that differ by mode;
each part calls a stage that lives in its layer (motion, coherence, control, diffusion).
"""
from __future__ import annotations

import dataclasses
import time
from functools import partial

import torch

from anim.coherence.hybrid import hybrid_before_diffusion
from anim.coherence.masks import desaturate_outside, overlay
from anim.coherence.stages import finish, flow_coherence, follow_flow, prepare_init
from anim.engine.cache import ModelCache
from anim.engine.mask_frames import FrameMasks
from anim.errors import ModelError
from anim.keyframes.networks import column_network, network_column
from anim.media.images import load_image, make_test_card
from anim.media.tensors import from_uint8_hwc
from anim.models import load_depth_model, resolve_device, set_lora_weights
from anim.models.hashing import lora_hash
from anim.motion.camera import Camera
from anim.preset.lora_files import find_loras
from anim.preset.schedules import lora_column
from anim.runfolder import Run


def make_camera(run: Run, device: torch.device, dtype: torch.dtype = torch.float32) -> Camera:
    """The run's camera, with its depth model loaded when the motion is 3D or a hybrid comp mask is a depth map."""
    p = run.preset
    wanted = p.motion.mode == "3d" or (p.hybrid.composite != "none" and p.hybrid.comp_mask in ("depth", "video_depth"))
    depth_model = load_depth_model(p.motion.depth_model, device=device, dtype=dtype) if wanted else None
    return Camera(p, depth_model, depth_dir=run.dir / "depth")


class PreviewMaker:
    """--preview: the camera path only. Frame 0 is the init image (or a test card); no coherence, no diffusion.
    With hybrid video on, the input video drives the hybrid motion and composites too (frame 0: its first frame)."""

    mode = "preview"
    sampler_label, model_hash, model_name = "none (preview)", "none", "preview"

    def labels(self, row: dict) -> tuple[str, str, str]:
        """(sampler label, model hash, model name) for the PNG `parameters`: no model in a preview."""
        return self.sampler_label, self.model_hash, self.model_name

    def __init__(self, run: Run) -> None:
        p = run.preset
        self.preset = p
        self.device = resolve_device(p.device)
        self.camera = make_camera(run, self.device)
        if p.init_image:
            self.first_image = load_image(p.init_image, p.width, p.height, self.device, "init_image")
        else:
            self.first_image = from_uint8_hwc(make_test_card(p.width, p.height), self.device)
        self.video = open_video(p) if p.hybrid.active else None
        self.masks = FrameMasks(p, self.device) if p.mask is not None else None

    def source(self, frame: int) -> torch.Tensor | None:
        """Hybrid video: the input frame at `frame`; else None (a preview does not show video input)."""
        return from_uint8_hwc(self.video.frame(frame), self.device) if self.video is not None else None

    def first(self, row: dict, source) -> tuple[torch.Tensor, None]:
        return (self.first_image if source is None else source), None

    def cohere(self, warped, prev, source, row: dict, reference, before: int) -> torch.Tensor:
        if self.video is None:
            return warped
        return hybrid_before_diffusion(warped, source, self.video.frame(before), row, self.preset.hybrid,
                                       self.camera.depth_model, prev)

    def close(self, log) -> None:
        if self.video is not None:
            self.video.close()
        if self.masks is not None:
            self.masks.close()

    def denoise(self, row: dict) -> None:
        return None

    def controls(self, frame: int, row: dict, warped):
        return None

    def diffuse(self, frame: int, row: dict, init: torch.Tensor, denoise, controls, anchors=()) -> torch.Tensor:
        """No diffusion; with masks, the frame's mask shown: grey where the render would keep the init."""
        if self.masks is None:
            return init
        change = self.masks.for_frame(frame, row, init).change
        return init if change is None else desaturate_outside(init, change)

    def finish(self, image: torch.Tensor, reference) -> torch.Tensor:
        return image


class DiffusionMaker:
    """A real frame: models loaded once (from the cache); txt2img or init-image img2img first, then
    warp + coherence + img2img with the frame's ControlNet maps."""

    mode = "render"

    def __init__(self, run: Run, times: dict, cache: ModelCache | None = None, low_memory: bool = False,
                 diffuse=None) -> None:
        p = self.preset = run.preset
        self.times = times
        started = time.perf_counter()
        cache = self.cache = cache or ModelCache()
        self.tag_loras = tag_lora_files(run)  # {name: file} of the prompts' <lora:NAME:WEIGHT> tags
        # every model of the checkpoint_schedule (else `model:` alone), loaded once and kept; frames switch in `_use`
        self.bundles = cache.bundles(p, checkpoints(run), low_memory, tuple(self.tag_loras.values()))
        self.models, self.encoder, self.diffuser = next(iter(self.bundles.values()))  # the first frame's model
        self.lora_hashes = {name: lora_hash(path) for name, path in self.tag_loras.items()}  # PNG "Lora hashes"
        # diffuse(frame, **kwargs): the shared diffuser, or a lockstep group's port (anim.engine.group)
        self._diffuse = diffuse or (lambda frame, **kwargs: self.diffuser(**kwargs))
        self.device = self.models.device
        self.init = load_image(p.init_image, p.width, p.height, self.device, "init_image") if p.init_image else None
        self.camera = make_camera(run, self.device, self.models.dtype)
        self.video = self.units = None
        self._anchor_latents: dict[int, torch.Tensor] = {}  # cross-frame anchors' latents by frame
        self._guide = None  # (frame, previous output carried by the input's flow, trusted mask): fusion's guide
        # engine animatediff: the motion UNet, loaded with the models (a bad adapter fails before any frame)
        self._windows = cache.animatediff(p, self.models) if p.engine == "animatediff" else None
        if p.init_video:
            self.video = open_video(p)
        self.masks = FrameMasks(p, self.device) if p.mask is not None else None  # Deforum's masks
        if p.controlnet:
            from anim.control.units import ControlUnits

            self.units = ControlUnits(p.controlnet, run_dir=run.dir, width=p.width, height=p.height,
                                      device=self.device, dtype=self.models.dtype, allow_pickle=p.allow_pickle,
                                      load_controlnet=partial(cache.controlnet, performance=p.performance),
                                      nth=p.extract_nth_frame, start_s=p.video_start, end_s=p.video_end)
        times["load models"] += time.perf_counter() - started

    def window_diffuser(self, window):
        """engine animatediff: one window through the motion UNet."""
        return self._windows(window)

    def labels(self, row: dict) -> tuple[str, str, str]:
        """(sampler label, model hash, model name) of a frame for its PNG `parameters`: its own sampler and model."""
        from anim.diffusion.samplers import a1111_label

        models = self.bundles[row.get("checkpoint", self.preset.model)][0]
        return a1111_label(row.get("sampler", self.preset.sampler)), models.model_hash, models.name

    def _use(self, row: dict) -> None:
        """Switch to the frame's model (checkpoint_schedule): its UNet, VAE, prompt encoder and diffuser. Cached
        cross-frame anchor latents came from the other model's VAE, so they are made again."""
        bundle = self.bundles[row.get("checkpoint", self.preset.model)]
        if bundle[0] is not self.models:
            self.models, self.encoder, self.diffuser = bundle
            self._anchor_latents.clear()

    def lora_weights(self, row: dict) -> list[float]:
        """The frame's adapter weights in load order: the preset's `loras`, then the prompts' tagged LoRAs."""
        return ([row[lora_column(i)] for i in range(len(self.preset.loras))]
                + [row[network_column(name)] for name in self.tag_loras])

    def close(self, log) -> None:
        """Release video decoders and annotators; log what the control units cost."""
        if self.units is not None:
            log.info(self.units.note())
            self.units.close()
        if self.video is not None:
            self.video.close()
        if self.masks is not None:
            self.masks.close()

    def source(self, frame: int) -> torch.Tensor | None:
        """Video input: the input frame at `frame`, else None."""
        return from_uint8_hwc(self.video.frame(frame), self.device) if self.video is not None else None

    def first(self, row: dict, source) -> tuple[torch.Tensor | None, float | None]:
        """(init, denoise) of the first frame: the input frame, init_image at init_denoise, or txt2img (None)."""
        if source is not None:
            return source, row["denoise"]
        return self.init, (self.preset.init_denoise if self.init is not None else None)

    def cohere(self, warped: torch.Tensor, prev: torch.Tensor, source, row: dict, reference,
               before: int) -> torch.Tensor:
        """Step 3. Video input: the input frame steadied toward the warped previous output by video_blend, and
        the previous output (frame `before`) carried along the input's optical flow by flow_blend (the same
        carried image guides latent fusion); then colour match, contrast, unsharp mask and seeded noise.
        Hybrid video instead keeps the camera loop: the warped previous output, moved and composited by the input
        video (anim.coherence.hybrid), is the init."""
        if self.preset.hybrid.active:
            self._guide = None
            init = hybrid_before_diffusion(warped, source, self.video.frame(before), row, self.preset.hybrid,
                                           self.camera.depth_model, prev)
            return prepare_init(init, reference, row, self.preset, noise_mask=self._noise_mask(row, init))
        init = warped if source is None else torch.lerp(source, warped, float(row["video_blend"]))
        self._guide = None
        if source is not None and (row["flow_blend"] > 0.0 or row["fusion_weight"] > 0.0):
            frame = int(row["frame"])
            followed, mask = follow_flow(prev, self.video.frame(frame), self.video.frame(before),
                                         self.preset.flow_method)
            self._guide = (frame, followed, mask)
            if row["flow_blend"] > 0.0:
                init = flow_coherence(init, followed, mask, float(row["flow_blend"]))
        return prepare_init(init, reference, row, self.preset, noise_mask=self._noise_mask(row, init))

    def _noise_mask(self, row: dict, init: torch.Tensor) -> torch.Tensor | None:
        """The frame's noise mask (step 3's noise only inside it), or None without masks."""
        return self.masks.for_frame(int(row["frame"]), row, init).noise if self.masks is not None else None

    def denoise(self, row: dict) -> float:
        """The img2img strength of a frame after the first."""
        return row["denoise"]

    def controls(self, frame: int, row: dict, warped):
        """Step 4: the frame's ControlNet inputs (maps cached on disk), or None without units."""
        return self.units.for_frame(frame, row, warped) if self.units is not None else None

    def diffuse(self, frame: int, row: dict, init, denoise, controls, anchors=()) -> torch.Tensor:
        """Step 5: img2img (txt2img when `denoise` is None) with the frame's prompts, LoRA weights and seed;
        `anchors` ((frame, image) as their PNGs hold them) feed cross-frame attention when its weight is > 0."""
        p = self.preset
        self._use(row)
        if p.loras or self.tag_loras:
            set_lora_weights(self.models, self.lora_weights(row))
        started = time.perf_counter()
        cond, uncond = self.encoder.conditioning(
            row["prompt"], row["negative_prompt"], row["blend_prompt"], row["blend_negative_prompt"],
            row["blend_weight"], mode=p.prompt_blend_mode, clip_skip=int(row["clip_skip"]),
        )
        self.times["prompt"] += time.perf_counter() - started
        features = {**self._cross_frame(row, anchors), **self._fusion(frame, row), **noise_kwargs(row)}  # once
        masked = self._masked(frame, row, init)

        def make(seed: int) -> torch.Tensor:
            start, extra = init, {}
            if masked is not None:  # the mask's fill and latent mask; `latent_noise` draws from the frame's seed
                start, extra = masked.init, {"mask": dataclasses.replace(masked.mask, seed=seed)}
            image = self._diffuse(
                frame, init=start, cond=cond, uncond=uncond, denoise=1.0 if denoise is None else denoise,
                cfg_scale=row["cfg_scale"], steps=int(row["steps"]), sampler=row.get("sampler", p.sampler), seed=seed,
                width=p.width, height=p.height, controls=controls, **features, **extra,
            )
            if masked is not None and masked.overlay is not None:
                image = overlay(image, init, masked.overlay)  # the init pasted back outside the mask
            if has_bad_pixels(image):
                raise ModelError(f"frame {row['frame']}: the model produced NaN/inf pixels (try dtype: fp32 or another "
                                 "vae)")
            return image

        return not_blank(make, int(row["seed"]), p.reroll_blank_frames, p.reroll_patience, int(row["frame"]))

    def finish(self, image: torch.Tensor, reference) -> torch.Tensor:
        """Step 6: colour match the output to the reference again."""
        return finish(image, reference, self.preset)

    def _masked(self, frame: int, row: dict, init):
        """The frame's masked-diffusion parts (anim.engine.mask_frames.Diffusion), or None: no `mask:` section,
        txt2img (no init), a blank mask (Deforum ignores it) or one that changes nothing."""
        if self.masks is None or init is None:
            return None
        change = self.masks.for_frame(frame, row, init).change
        return None if change is None else self.masks.diffusion(change, init, int(row["seed"]))

    def _cross_frame(self, row: dict, anchors) -> dict:
        """{"cross_frame": CrossFrameInput} when the frame's weight is > 0 and it has anchors, else {} (the
        call is then exactly what it was without the feature). Anchor latents are kept for the next frames."""
        weight = float(row["cross_frame_weight"])
        if weight <= 0.0 or not anchors:
            return {}
        from anim.diffusion.crossframe import CrossFrameInput, encode_anchor

        latents = []
        for index, image in anchors:
            if index not in self._anchor_latents:
                self._anchor_latents[index] = encode_anchor(self.models.vae, image)
            latents.append(self._anchor_latents[index])
        for old in sorted(self._anchor_latents)[:-3]:  # frame 0 and the last key frames suffice
            if old != 0:
                del self._anchor_latents[old]
        return {"cross_frame": CrossFrameInput(weight, latents, int(row["seed"]))}

    def _fusion(self, frame: int, row: dict) -> dict:
        """{"fusion": FusionInput} when the frame's fusion weight is > 0 and step 3 carried the previous output
        along the input's flow for it, else {} (the call is then exactly what it was without the feature)."""
        weight = float(row["fusion_weight"])
        if weight <= 0.0 or self._guide is None or self._guide[0] != frame:
            return {}
        from anim.diffusion.crossframe import encode_anchor
        from anim.diffusion.fusion import FusionInput, latent_mask

        _, followed, mask = self._guide
        guide = encode_anchor(self.models.vae, followed)
        settings = self.preset.coherence.fusion
        return {"fusion": FusionInput(guide, latent_mask(mask, *guide.shape[-2:]).to(guide.dtype), weight,
                                      settings.start, settings.end)}


def open_video(p):
    """The preset's init_video as a frame source at the render size (cropped), nth frame and time window."""
    from anim.control.sources import open_source

    return open_source(p.init_video, width=p.width, height=p.height, resize="crop", nth=p.extract_nth_frame,
                       start_s=p.video_start, end_s=p.video_end, what="init_video")


def tag_lora_files(run: Run) -> dict:
    """{name: file} of the LoRAs the prompts tag (the table's `lora:NAME` columns), in column order."""
    names = [name for name in map(column_network, run.table.names) if name is not None]
    p = run.preset
    return find_loras(names, p.lora_dir, allow_pickle=p.allow_pickle)


def noise_kwargs(row: dict) -> dict:
    """The frame's variation seed, noise multiplier and DDIM eta for the diffuser, only where they change
    something (otherwise the call is exactly what it was without them)."""
    from anim.diffusion.noise import NoiseSettings

    out: dict = {}
    settings = NoiseSettings(int(row["subseed"]), float(row["subseed_strength"]), float(row["noise_multiplier"]))
    if settings.active:
        out["noise"] = settings
    if float(row["ddim_eta"]) != 0.0:
        out["eta"] = float(row["ddim_eta"])
    if float(row["ancestral_eta"]) != 1.0:
        out["ancestral_eta"] = float(row["ancestral_eta"])
    return out


def not_blank(make, seed: int, mode: str, patience: int, frame: int) -> torch.Tensor:
    """make(seed), and with Deforum's reroll_blank_frames: an all-black result made again with seed + 1, + 2, ...
    up to `patience` times ('reroll'), or stopped at once ('interrupt'); 'ignore' keeps it."""
    for attempt in range(patience + 1 if mode == "reroll" else 1):
        image = make(seed + attempt)
        if mode == "ignore" or not is_blank(image):
            return image
        if mode == "interrupt":
            raise ModelError(f"frame {frame} came out blank (all black; a safety filter?); "
                             "reroll_blank_frames: interrupt stopped the render")
    raise ModelError(f"frame {frame} came out blank {patience + 1} times (seeds {seed}..{seed + patience}); raise "
                     "reroll_patience or change the prompt")


def is_blank(image: torch.Tensor) -> bool:
    """Deforum's blank frame: every pixel black (what a safety filter returns), in 8-bit terms."""
    return bool((image * 255.0).round().max() <= 0)


def checkpoints(run: Run) -> tuple[str, ...]:
    """The models a render uses, in the order its frames first need them: the checkpoint_schedule's names (with
    `model:` for frames before its first keyframe), else `model:` alone."""
    table = run.table
    names = table.texts("checkpoint") if "checkpoint" in table.text_names else ()
    return tuple(dict.fromkeys(names)) or (run.preset.model,)


def has_bad_pixels(image: torch.Tensor) -> bool:
    """True when the model produced NaN/inf (fp16 overflow in some VAEs)."""
    return not bool(torch.isfinite(image).all())
