"""RIFE (Practical-RIFE 4.25/4.26, the IFNet of cccv) from local weights: one in-between frame of two frames.

The architecture comes from the cccv package; its weights only from the user's file (Practical-RIFE's flownet.pkl,
keys with or without the `module.` prefix of its trainer, or a .safetensors of it). Nothing is downloaded.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from anim.errors import ModelError
from anim.finish.weights import read_weights
from anim.media.tensors import from_uint8_hwc, to_uint8_hwc

KEY = "output.interpolate.model"
WHAT = "RIFE 4.25/4.26 weights (Practical-RIFE's flownet.pkl, or a .safetensors of it)"
MULTIPLE_PX = 64  # IFNet's coarsest level sees the frame at 1/64: sides are padded up to a multiple of this
SCALES = (16, 8, 4, 2, 1)  # IFNet's pyramid at full resolution (Practical-RIFE's scale 1.0)


def rife_net():
    """A RIFE 4.25/4.26 IFNet with random weights (the architecture, from cccv)."""
    from cccv.arch.vfi.ifnet_arch import IFNet

    return IFNet()


def ifnet_weights(raw) -> dict[str, torch.Tensor]:
    """The IFNet tensors of a loaded weights file: a trainer's `module.` prefix dropped, other keys kept."""
    if isinstance(raw, dict) and isinstance(raw.get("state_dict"), dict):
        raw = raw["state_dict"]
    if not isinstance(raw, dict):
        return {}
    return {key.removeprefix("module."): value for key, value in raw.items()
            if isinstance(key, str) and isinstance(value, torch.Tensor)}


def load_rife(path: Path, *, allow_pickle: bool, device: torch.device) -> torch.nn.Module:
    """The IFNet with the file's weights, in eval mode on `device`; ModelError when the file does not fit it."""
    net = rife_net()
    weights = ifnet_weights(read_weights(KEY, path, allow_pickle, WHAT))
    expected = net.state_dict()
    missing = [key for key in expected if key not in weights]
    wrong = [key for key in expected if key in weights and weights[key].shape != expected[key].shape]
    if missing or wrong:
        shown = ", ".join((missing + wrong)[:3])
        raise ModelError(f"{KEY}: {path} is not RIFE 4.25/4.26 (IFNet) weights: {len(missing)} missing and "
                         f"{len(wrong)} mis-shaped tensor(s), e.g. {shown}; expected {WHAT}")
    net.load_state_dict({key: weights[key] for key in expected})
    return net.eval().to(device)


def padded(image: torch.Tensor, multiple: int) -> torch.Tensor:
    """`image` with its bottom and right edges repeated up to sides that are multiples of `multiple`."""
    height, width = image.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    return F.pad(image, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else image


@torch.inference_mode()
def rife_between(net: torch.nn.Module, first_u8: np.ndarray, second_u8: np.ndarray, t: float) -> np.ndarray:
    """The frame at time `t` (0 = first, 1 = second) between two (H, W, 3) uint8 frames."""
    device = next(net.parameters()).device
    first, second = from_uint8_hwc(first_u8, device), from_uint8_hwc(second_u8, device)
    height, width = first.shape[-2:]
    pair = padded(torch.cat([first, second], dim=1), MULTIPLE_PX)
    middle = net(pair, timestep=float(t), scale_list=list(SCALES))
    return to_uint8_hwc(middle[..., :height, :width])
