"""`engine: animatediff`: the input video rendered in overlapping windows of frames that a UNet with motion
modules denoises together (anim.diffusion.animatediff).

Windows are laid out from frame 0 by the preset alone: each holds `context` frames, its first `overlap` frames
being the previous window's last ones, already rendered and held fixed; the last window is moved back to hold a
full `context`. A window starts from its frames as the PNGs hold them, so a render stopped anywhere resumes at the
window of the first missing frame and makes exactly the frames an uninterrupted render makes.
"""
from __future__ import annotations

import time

import torch
from tqdm import tqdm

from anim.diffusion.animatediff import Window
from anim.diffusion.crossframe import encode_anchor
from anim.diffusion.diffuse import ControlInput
from anim.diffusion.noise import NoiseSettings, adjust, seed_noise
from anim.errors import ModelError
from anim.models import set_lora_weights
from anim.plan import window_layout


def render_windows(loop, todo: list[int], quiet: bool, should_stop, stopped) -> None:
    """Render the windows that hold a frame to do (and those before them that are missing), in order; `loop` is
    the run's FrameLoop (frames as their PNGs hold them, the writer, the colour reference)."""
    p = loop.p
    wanted = set(todo)
    bar = tqdm(total=len(wanted), unit="frame", disable=quiet, dynamic_ncols=True, desc=loop.run.dir.name)
    try:
        for start, first_new, stop in window_layout(p.max_frames, p.animatediff.context, p.animatediff.overlap):
            if not wanted:
                break
            new = range(first_new, stop)
            if all(loop.done(f) for f in new):
                wanted.difference_update(new)
                continue
            if should_stop is not None and should_stop():
                raise stopped(f"stopped before frame {first_new}; run again to continue")
            render_window(loop, start, first_new, stop)
            bar.update(len(wanted.intersection(new)))
            wanted.difference_update(new)
    finally:
        bar.close()


def render_window(loop, start: int, first_new: int, stop: int) -> None:
    """One window: build it from the fixed frames' PNGs and the input frames, denoise, hand the new frames over."""
    maker, times = loop.maker, loop.times
    rows = [loop.run.table.row(f) for f in range(start, stop)]
    started = time.perf_counter()
    fixed = [loop.image(f) for f in range(start, first_new)]
    if any(image is None for image in fixed):
        raise ModelError(f"window {start}..{stop - 1}: frames {start}..{first_new - 1} are not on disk")
    sources = [maker.source(f) for f in range(first_new, stop)]
    controls = window_controls(maker, range(start, stop), rows, first_new - start)
    times["control maps"] += time.perf_counter() - started
    started = time.perf_counter()
    window = build_window(maker, rows, fixed, sources, controls, first_new - start)
    images = maker.window_diffuser(window)
    times["diffusion"] += time.perf_counter() - started
    for frame in range(first_new, stop):
        row = rows[frame - start]
        image = maker.finish(images[frame - start:frame - start + 1], loop.reference_for(frame))
        loop.emit(frame, row, image, row["denoise"])


def build_window(maker, rows: list[dict], fixed: list[torch.Tensor], sources: list[torch.Tensor],
                 controls: list[ControlInput], n_fixed: int) -> Window:
    """The window's clean latents (fixed frames from their PNGs, new ones from the input video), per-frame noise
    from each frame's seed, per-frame prompt conditioning, and the settings of its first new frame."""
    p = maker.preset
    first = rows[n_fixed]
    if p.loras or maker.tag_loras:
        set_lora_weights(maker.models, maker.lora_weights(first))
    vae = maker.models.vae
    latents = torch.cat([encode_anchor(vae, image) for image in [*fixed, *sources]])
    shape = (1, *latents.shape[1:])
    noise = torch.cat([frame_noise(row, shape) for row in rows])
    pairs = [maker.encoder.conditioning(row["prompt"], row["negative_prompt"], row["blend_prompt"],
                                        row["blend_negative_prompt"], row["blend_weight"], mode=p.prompt_blend_mode,
                                        clip_skip=int(row["clip_skip"]))
             for row in rows]
    length = max(t.shape[1] for pair in pairs for t in pair)
    cond = torch.cat([maker.encoder.pad_to(c, length) for c, _ in pairs])
    uncond = torch.cat([maker.encoder.pad_to(u, length) for _, u in pairs])
    return Window(latents=latents, noise=noise, cond=cond, uncond=uncond, fixed=n_fixed,
                  denoise=float(first["denoise"]), cfg_scale=float(first["cfg_scale"]), steps=int(first["steps"]),
                  sampler=first.get("sampler", p.sampler), seed=int(first["seed"]), width=p.width, height=p.height,
                  controls=controls, eta=float(first["ddim_eta"]), ancestral_eta=float(first["ancestral_eta"]))


def frame_noise(row: dict, shape: tuple[int, ...]) -> torch.Tensor:
    """A frame's own noise from its seed, with its variation seed and noise multiplier (A1111's)."""
    settings = NoiseSettings(int(row["subseed"]), float(row["subseed_strength"]), float(row["noise_multiplier"]))
    noise = seed_noise(int(row["seed"]), shape)
    return adjust(noise, settings) if settings.active else noise


def window_controls(maker, frames: range, rows: list[dict], n_fixed: int) -> list[ControlInput]:
    """Per unit, the control maps of every frame of the window stacked (F, 3, H, W), with the unit's weight
    and step window at the window's first new frame (units off there are left out)."""
    if maker.units is None:
        return []
    from anim.control.units import unit_schedule
    from anim.media.tensors import from_uint8_hwc

    units = []
    for unit in maker.units.units:
        weight, begin, end = unit_schedule(rows[n_fixed], unit.index)
        if weight == 0.0 or end <= begin:
            continue
        images = torch.cat([from_uint8_hwc(maker.units.map_for(unit, frame), maker.device) for frame in frames])
        units.append(ControlInput(unit.model, images, weight, begin, end, control_mode=unit.control_mode))
    return units
