"""Single-file ControlNets (A1111's models/ControlNet/*.safetensors) loaded offline into diffusers.

A1111-layout files hold `control_model.*` weights (or the same names unprefixed); files copied from
a diffusers repo hold diffusers names. Both are converted by diffusers' own converter, checked
against an architecture config (generated SD1.5 / SDXL, or the caller's) and loaded with
ControlNetModel.from_single_file. Pickles are read only when the user allows it (weights only).
"""

from __future__ import annotations

from pathlib import Path

import torch

from anim.errors import ModelError
from anim.models.checkpoints import converted, one_line, quiet_cast_warning, read_state_dict, require_fit, unused
from anim.models.configs import controlnet_config_dir

LDM_PREFIX = "control_model."
LDM_MARKERS = ("control_model.time_embed.0.weight", "time_embed.0.weight")
DIFFUSERS_MARKER = "controlnet_cond_embedding.conv_in.weight"
LDM_ROOTS = ("time_embed.", "label_emb.", "input_blocks.", "middle_block", "zero_convs.", "input_hint_block.")
CONVERTED_MARKER = "time_embedding.linear_1.weight"  # diffusers' converter passes such files through as they are
XL_MARKERS = ("control_model.label_emb.0.0.weight", "label_emb.0.0.weight", "add_embedding.linear_1.weight")


def controlnet_arch(state_dict: dict, path: Path) -> str:
    """'sdxl' when the file has SDXL's added (text_time) embedding, else 'sd15'; other files are refused."""
    if "lora_controlnet" in state_dict or not any(k in state_dict for k in (*LDM_MARKERS, DIFFUSERS_MARKER)):
        raise ModelError(f"{path} is not a ControlNet (T2I-Adapters and control-LoRAs are not supported); "
                         "pass a full ControlNet file (control_model.* weights) or a diffusers ControlNet folder")
    return "sdxl" if any(k in state_dict for k in XL_MARKERS) else "sd15"


def _added_embedding(state_dict: dict, config: dict) -> dict:
    """The label_emb weights diffusers' ControlNet converter leaves out, named by diffusers' own table."""
    from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING

    kind = ("addition_embed_type" if config.get("addition_embed_type")
            else "class_embed_type" if config.get("class_embed_type") else None)
    if kind is None:
        return {}
    prefix = _ldm_prefix(state_dict)
    table = DIFFUSERS_TO_LDM_MAPPING["controlnet"][kind]
    return {new: state_dict[prefix + old] for new, old in table.items() if prefix + old in state_dict}


def diffusers_weights(state_dict: dict, config: dict, path: Path) -> dict:
    """The file's weights under diffusers names (diffusers' converter; label_emb added for SDXL)."""
    from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint

    weights = converted(convert_controlnet_checkpoint, state_dict, config, path, "ControlNet")
    if CONVERTED_MARKER in state_dict:
        return weights
    return {**{k: v for k, v in weights.items() if v is not None}, **_added_embedding(state_dict, config)}


def _ldm_prefix(state_dict: dict) -> str:
    """'control_model.' for A1111's layout, '' for the same names unprefixed (e.g. the fp16 repacks)."""
    return LDM_PREFIX if any(k.startswith(LDM_PREFIX) for k in state_dict) else ""


def _unused_weights(state_dict: dict, weights: dict) -> list[str]:
    """A1111-layout ControlNet weights the conversion did not take (a ControlNet of another shape)."""
    if CONVERTED_MARKER in state_dict:
        return []
    prefix = _ldm_prefix(state_dict)
    return unused(state_dict, weights, tuple(prefix + root for root in LDM_ROOTS))


def controlnet_from_file(path: Path, *, allow_pickle: bool, dtype: torch.dtype, config_dir: Path | None = None):
    """Load a single-file ControlNet; config_dir holds its config.json (default: generated SD1.5 / SDXL)."""
    from diffusers import ControlNetModel

    state_dict = read_state_dict(path, allow_pickle=allow_pickle, what="ControlNet")
    arch = controlnet_arch(state_dict, path)
    folder = Path(config_dir) if config_dir else controlnet_config_dir(arch)
    config = ControlNetModel.load_config(str(folder))
    weights = diffusers_weights(state_dict, config, path)
    require_fit(ControlNetModel, config, weights, path, f"{arch} ControlNet", _unused_weights(state_dict, weights))
    try:
        with quiet_cast_warning():
            return ControlNetModel.from_single_file(weights, config=str(folder), local_files_only=True,
                                                    torch_dtype=dtype)
    except Exception as exc:
        reason = one_line(exc, 160)
        raise ModelError(f"could not load the ControlNet file {path} ({reason})") from None
