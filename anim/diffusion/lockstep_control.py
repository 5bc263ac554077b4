"""ControlNet residuals for a lockstep step: each ControlNet runs once on the rows of the tracks that use it.

A track's ControlNet units (anim.diffusion.diffuse.ControlInput) become TrackUnits: the control image prepared as
StableDiffusionControlNet(Img2Img)Pipeline prepares it (no normalisation, render size, the net's dtype,
doubled for CFG) plus the unit's weight and guidance window. Each step, every distinct net (by identity)
runs once with conditioning_scale=1.0 on the sub-batch of (track, unit) usages whose scale is not 0; each
usage's residuals are then multiplied by its own scale = weight * keep (diffusers' controlnet_keep rule on
the track's own schedule). ControlNetModel.forward multiplies by conditioning_scale itself, and x * 1.0 == x,
so x * 1.0 * s has the bits of diffusers' x * s.

Each track sums its units' residuals in its own unit order, as MultiControlNetModel does
((u0 + u1) + u2 ...), so tracks listing units in different orders each get their solo sum. A unit whose scale
is 0 (weight 0, or outside its window) is skipped: diffusers adds its x * 0 == 0, and a + 0 == a (finite
residuals). Tracks without a unit at this step get zero residuals (the UNet adds 0); when no track has one,
the UNet gets none at all.

A unit's control mode (anim.diffusion.control_modes) is applied to its scaled residuals as the Diffuser's forward
hook applies it (the track's rows are [uncond, cond] with CFG), so modes match the Diffuser bit for bit too.

Limits: nets with global_pool_conditions (diffusers' guess mode) are refused; one net used by several units
of one track runs once on all those rows (batch 4 with CFG), so that track matches diffusers (two calls of
batch 2) to float summation order, not bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from anim.diffusion.control_modes import apply_mode, check_mode
from anim.diffusion.diffuse import ControlInput, fit_image
from anim.errors import ModelError

Residuals = tuple[list[torch.Tensor], torch.Tensor]  # (down block residuals, mid block residual)


@dataclass
class TrackUnit:
    """One ControlNet unit of one track: its net, prepared control image (rows,3,H,W), weight, window, control mode
    and whether the track's rows are a CFG pair."""

    model: object
    image: torch.Tensor
    weight: float
    guidance_start: float
    guidance_end: float
    control_mode: str = "balanced"
    cfg: bool = False

    def scale(self, step_index: int, step_count: int) -> float:
        """weight * keep for step `step_index` of `step_count`, keep as diffusers' controlnet_keep computes it."""
        outside = step_index / step_count < self.guidance_start or (step_index + 1) / step_count > self.guidance_end
        return self.weight * (1.0 - float(outside))


def check_controls(controls: list[ControlInput] | None) -> None:
    """Refuse guess-mode nets and the guidance windows diffusers' check_inputs refuses (same messages)."""
    for unit in controls or []:
        if getattr(unit.model.config, "global_pool_conditions", False):
            raise ModelError("ControlNets with global_pool_conditions (guess mode) are not supported in lockstep; "
                             "render these items with anim.diffusion.diffuse.Diffuser")
        check_mode(getattr(unit, "control_mode", "balanced"))
        start, end = float(unit.guidance_start), float(unit.guidance_end)
        if start >= end:
            raise ValueError(f"control guidance start: {start} cannot be larger or equal to control guidance end: "
                             f"{end}.")
        if start < 0.0:
            raise ValueError(f"control guidance start: {start} can't be smaller than 0.")
        if end > 1.0:
            raise ValueError(f"control guidance end: {end} can't be larger than 1.0.")


def prepare_units(controls: list[ControlInput] | None, *, width: int, height: int, cfg: bool, device,
                  vae_scale_factor: int) -> list[TrackUnit]:
    """TrackUnits of one item, control images prepared like the pipelines' prepare_(control_)image."""
    from diffusers.image_processor import VaeImageProcessor

    processor = VaeImageProcessor(vae_scale_factor=vae_scale_factor, do_convert_rgb=True, do_normalize=False)
    units = []
    for unit in controls or []:
        image = processor.preprocess(fit_image(unit.image, width, height), height=int(height), width=int(width))
        image = image.to(dtype=torch.float32).to(device=device, dtype=unit.model.dtype)
        if cfg:
            image = torch.cat([image] * 2)
        units.append(TrackUnit(model=unit.model, image=image, weight=float(unit.weight),
                               guidance_start=float(unit.guidance_start), guidance_end=float(unit.guidance_end),
                               control_mode=getattr(unit, "control_mode", "balanced"), cfg=cfg))
    return units


def step_residuals(tracks: list, inputs: list[torch.Tensor], times: list[torch.Tensor],
                   embeds: list[torch.Tensor]) -> tuple[list[torch.Tensor] | None, torch.Tensor | None, int]:
    """Full-batch (down, mid) residuals for this step's UNet call and the ControlNet forwards run for them;
    (None, None, 0) when no unit is active at this step.

    tracks are the active _Tracks (units, cursor, timesteps, rows); inputs, times and embeds are their UNet
    rows (scaled latents, per-row timesteps, embeddings), in the same order.
    """
    scales = [[unit.scale(tr.cursor, len(tr.timesteps)) for unit in tr.units] for tr in tracks]
    usages = [(k, j) for k, row in enumerate(scales) for j, s in enumerate(row) if s != 0.0]
    if not usages:
        return None, None, 0
    raw: dict[tuple[int, int], Residuals] = {}
    groups = _group_by_model(tracks, usages)
    for model, group in groups:
        raw.update(_run_net(model, group, tracks, inputs, times, embeds))
    summed = [_track_sum(raw, k, row, tr.units) for k, (tr, row) in enumerate(zip(tracks, scales))]
    reference = next(iter(raw.values()))
    filled = [res if res is not None else _zeros_like(reference, tr.rows) for tr, res in zip(tracks, summed)]
    downs = [torch.cat(level) for level in zip(*(res[0] for res in filled))]
    return downs, torch.cat([res[1] for res in filled]), len(groups)


def _group_by_model(tracks: list, usages: list[tuple[int, int]]) -> list[tuple[object, list[tuple[int, int]]]]:
    """Usages grouped per distinct net (by identity), nets in first-use order, usages in track order."""
    groups: dict[int, tuple[object, list]] = {}
    for k, j in usages:
        model = tracks[k].units[j].model
        groups.setdefault(id(model), (model, []))[1].append((k, j))
    return list(groups.values())


def _run_net(model, group: list[tuple[int, int]], tracks, inputs, times, embeds) -> dict[tuple[int, int], Residuals]:
    """One forward of `model` on the rows of its usages at conditioning_scale=1.0, split back per usage."""
    down, mid = model(torch.cat([inputs[k] for k, _ in group]), torch.cat([times[k] for k, _ in group]),
                      encoder_hidden_states=torch.cat([embeds[k] for k, _ in group]),
                      controlnet_cond=torch.cat([tracks[k].units[j].image for k, j in group]),
                      conditioning_scale=1.0, guess_mode=False, return_dict=False)
    rows = [tracks[k].rows for k, _ in group]
    down_parts = [level.split(rows) for level in down]
    return {usage: ([parts[n] for parts in down_parts], mid_part)
            for n, (usage, mid_part) in enumerate(zip(group, mid.split(rows)))}


def _track_sum(raw: dict[tuple[int, int], Residuals], k: int, scales: list[float],
               units: list[TrackUnit]) -> Residuals | None:
    """Track k's residuals: each active unit's scaled residuals (in its control mode) summed in unit order, as
    MultiControlNetModel."""
    total: Residuals | None = None
    for j, s in enumerate(scales):
        if s == 0.0:
            continue
        down, mid = raw[(k, j)]
        down, mid = [level * s for level in down], mid * s
        down, mid = apply_mode(down, mid, units[j].control_mode, cfg_pair=units[j].cfg)
        total = (down, mid) if total is None else ([a + b for a, b in zip(total[0], down)], total[1] + mid)
    return total


def _zeros_like(reference: Residuals, rows: int) -> Residuals:
    """Zero residuals of `rows` rows shaped like the reference's levels, for a track without active units."""
    down, mid = reference
    return [level.new_zeros((rows, *level.shape[1:])) for level in down], mid.new_zeros((rows, *mid.shape[1:]))
