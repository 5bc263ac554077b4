"""A1111's ControlNet "Control Mode" on diffusers' ControlNet pipelines: `balanced`, `prompt`, `controlnet`.

Read from the sd-webui-controlnet extension (Mikubill/sd-webui-controlnet):
- scripts/controlnet.py (Script.controlnet_main_entry) turns a unit's mode into two flags of its ControlParams:
  soft_injection = mode is not "Balanced", cfg_injection = mode is "ControlNet is more important".
- scripts/hook.py (UnetHook.hook -> forward; read at commit efda6ddfd82ebafc6e1150fbb7e1f27163482a82, and the
  SDXL-aware copy in AUTOMATIC1111/stable-diffusion-webui extensions/sd-webui-controlnet/scripts/hook.py at
  28ae2586531a1cff21b988b55da750ab94606934) then does, per ControlNet call, on the list of its outputs (the 12
  zero-conv residuals of the down path in order, then the middle one: 13 on SD1.5, 10 on SDXL):
  1. cfg_injection: every output is multiplied by the cond mark, 1 on conditional (prompt) rows and 0 on
     unconditional (negative prompt) rows, so the ControlNet acts on the conditional half of CFG only; CFG
     (uncond + cfg_scale * (cond - uncond)) then multiplies its effect by the CFG scale.
  2. soft_injection: output i is multiplied by weight * 0.825 ** (12 - i), i = 0..12, instead of weight (the middle
     residual of SD1.5 keeps 1.0, the first down residual gets 0.825**12 ~ 0.1); on SDXL the 13 factors are cut to
     the first 10, so its middle residual gets 0.825**3.
  So "My prompt is more important" = soft injection; "ControlNet is more important" = soft injection + cfg injection.
  ControlNets with global average pooling (shuffle) act on conditional rows only in every mode; diffusers' guess
  mode, which the pipelines switch on for them, already runs them on those rows alone.

Here diffusers' ControlNetModel has applied weight * keep (conditioning_scale) to its outputs (down residuals in the
same zero-conv order, then the middle one); a forward hook then applies steps 1 and 2 (the 0.825 factors) to them.
Diffusers' CFG batch is [unconditional rows, conditional rows]. `balanced` installs nothing: bit-identical.
"""
from __future__ import annotations

import itertools
from contextlib import contextmanager

import torch

from anim.errors import ModelError

BALANCED, PROMPT, CONTROLNET = "balanced", "prompt", "controlnet"
MODES = (BALANCED, PROMPT, CONTROLNET)
SOFT_BASE = 0.825  # the extension's per-layer factor base ("0.825**12 < 0.01 ...", lllyasviel's magic number)
SOFT_LAYERS = 13  # SD1.5's ControlNet outputs: 12 down residuals + the middle one


def check_mode(mode: str) -> str:
    """A known control mode, or one clear error naming the valid ones."""
    if mode not in MODES:
        raise ModelError(f"control_mode {mode!r}: use one of {', '.join(MODES)}")
    return mode


def layer_scales(n_outputs: int) -> list[float]:
    """Soft-injection factors of a ControlNet's outputs in diffusers' order (down residuals, then the middle one):
    0.825 ** (12 - i), the first n of the extension's 13 (SDXL: 10; the tiny test nets: fewer)."""
    if n_outputs > SOFT_LAYERS:
        raise ModelError(f"this ControlNet returns {n_outputs} residuals; the prompt/controlnet control modes are "
                         f"defined for at most {SOFT_LAYERS} (SD1.5 and SDXL ControlNets); use control_mode: balanced")
    return [SOFT_BASE ** float(SOFT_LAYERS - 1 - i) for i in range(n_outputs)]


def cond_mark(rows: int, like: torch.Tensor) -> torch.Tensor:
    """(rows, 1, ...) 0 on the unconditional first half of a CFG batch and 1 on the conditional second half."""
    if rows % 2:
        raise ModelError(f"a CFG batch of {rows} rows cannot be split into unconditional and conditional halves")
    mark = torch.ones((rows,) + (1,) * (like.ndim - 1), dtype=like.dtype, device=like.device)
    mark[: rows // 2] = 0
    return mark


def apply_mode(down, mid: torch.Tensor, mode: str, *, cfg_pair: bool) -> tuple[list, torch.Tensor]:
    """One ControlNet call's (down residuals, middle residual), already scaled by weight * keep, in `mode`:
    `controlnet` zeroes the unconditional rows (when the rows are a CFG pair), `prompt` and `controlnet` multiply
    output i by 0.825 ** (12 - i); `balanced` returns them untouched. The extension's order: mark, then factors."""
    if check_mode(mode) == BALANCED:
        return down, mid
    outputs = [*down, mid]
    if mode == CONTROLNET and cfg_pair:
        mark = cond_mark(mid.shape[0], mid)
        outputs = [out * mark for out in outputs]
    outputs = [out * scale for out, scale in zip(outputs, layer_scales(len(outputs)))]
    return list(outputs[:-1]), outputs[-1]


@contextmanager
def control_modes(pipe, controls):
    """During one call of a diffusers ControlNet pipeline, each unit's ControlNet returns its residuals in the
    unit's `control_mode` (units with a `.model` and a `.control_mode`, in the order the pipeline got them).

    A forward hook per distinct net; a net serving several units is called once per unit per step, in unit
    order (MultiControlNetModel calls every net every step), so its hook takes the units' modes in turn.
    """
    modes = [check_mode(getattr(unit, "control_mode", BALANCED)) for unit in controls]
    if all(mode == BALANCED for mode in modes):
        yield
        return
    uses: dict[int, tuple[object, list[str]]] = {}
    for unit, mode in zip(controls, modes):
        uses.setdefault(id(unit.model), (unit.model, []))[1].append(mode)
    handles = [net.register_forward_hook(_mode_hook(pipe, net_modes), with_kwargs=True)
               for net, net_modes in uses.values()]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _mode_hook(pipe, modes: list[str]):
    """A forward hook applying the next unit's mode to a ControlNet's output (None leaves it as it is)."""
    calls = itertools.count()

    def hook(module, args, kwargs, output):
        mode = modes[next(calls) % len(modes)]
        if mode == BALANCED:
            return None
        cfg_pair = bool(pipe.do_classifier_free_guidance) and not kwargs.get("guess_mode", False)
        down, mid = output if isinstance(output, tuple) else (output.down_block_res_samples,
                                                             output.mid_block_res_sample)
        down, mid = apply_mode(down, mid, mode, cfg_pair=cfg_pair)
        if isinstance(output, tuple):
            return down, mid
        return type(output)(down_block_res_samples=down, mid_block_res_sample=mid)

    return hook
