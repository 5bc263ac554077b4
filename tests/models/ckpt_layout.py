"""Test helper: write diffusers SD components as one original-layout (LDM / A1111) .safetensors file.

This is the inverse of what a single-file loader does, written from the LDM key layout:
UNet under model.diffusion_model.* (input_blocks / middle_block / output_blocks), VAE under
first_stage_model.* (encoder.down / mid.block_1 / decoder.up reversed), CLIP under
cond_stage_model.transformer.text_model.*.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

UNET_FIXED = {
    "time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2",
    "add_embedding.linear_1": "label_emb.0.0", "add_embedding.linear_2": "label_emb.0.2",  # SDXL
}
UNET_RESNET = [("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
               ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection")]
VAE_ATTN = [("group_norm", "norm"), ("to_q", "q"), ("to_k", "k"), ("to_v", "v"), ("to_out.0", "proj_out")]


def _resnet(rest: str) -> str:
    """Rename a diffusers resnet sub-key (norm1.weight ...) to its LDM name (in_layers.0.weight ...)."""
    for new, old in UNET_RESNET:
        if rest.startswith(new + "."):
            return old + rest[len(new):]
    return rest


def _unet_key(key: str, layers: int, up_has_attn: list[bool]) -> str:
    """One diffusers UNet key -> its LDM key (without the model.diffusion_model. prefix)."""
    head, _, rest = key.rpartition(".")  # rest = weight / bias
    for new, old in UNET_FIXED.items():
        if head == new:
            return f"{old}.{rest}"
    if m := re.match(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key):
        block, kind, j, sub = int(m[1]), m[2], int(m[3]), m[4]
        i = 1 + block * (layers + 1) + j
        return f"input_blocks.{i}.0.{_resnet(sub)}" if kind == "resnets" else f"input_blocks.{i}.1.{sub}"
    if m := re.match(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", key):
        i = 1 + int(m[1]) * (layers + 1) + layers
        return f"input_blocks.{i}.0.op.{m[2]}"
    if m := re.match(r"mid_block\.(resnets|attentions)\.(\d+)\.(.*)", key):
        kind, j, sub = m[1], int(m[2]), m[3]
        return f"middle_block.{2 * j}.{_resnet(sub)}" if kind == "resnets" else f"middle_block.1.{sub}"
    if m := re.match(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.*)", key):
        block, kind, j, sub = int(m[1]), m[2], int(m[3]), m[4]
        i = block * (layers + 1) + j
        return f"output_blocks.{i}.0.{_resnet(sub)}" if kind == "resnets" else f"output_blocks.{i}.1.{sub}"
    if m := re.match(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", key):
        block = int(m[1])
        i = block * (layers + 1) + layers
        return f"output_blocks.{i}.{2 if up_has_attn[block] else 1}.conv.{m[2]}"
    raise KeyError(f"no LDM name for UNet key {key}")


def unet_to_ldm(unet) -> dict[str, torch.Tensor]:
    """UNet2DConditionModel weights in the model.diffusion_model.* layout."""
    layers = unet.config.layers_per_block
    up_has_attn = ["CrossAttn" in t for t in unet.config.up_block_types]
    return {f"model.diffusion_model.{_unet_key(k, layers, up_has_attn)}": v.detach().clone()
            for k, v in unet.state_dict().items()}


def _vae_key(key: str, n_blocks: int) -> str:
    """One diffusers AutoencoderKL key -> its LDM key (without the first_stage_model. prefix)."""
    key = key.replace("conv_norm_out", "norm_out")
    if m := re.match(r"encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
        return f"encoder.down.{m[1]}.block.{m[2]}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
    if m := re.match(r"encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.*)", key):
        return f"encoder.down.{m[1]}.downsample.conv.{m[2]}"
    if m := re.match(r"decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.*)", key):
        return f"decoder.up.{n_blocks - 1 - int(m[1])}.block.{m[2]}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
    if m := re.match(r"decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.*)", key):
        return f"decoder.up.{n_blocks - 1 - int(m[1])}.upsample.conv.{m[2]}"
    if m := re.match(r"(encoder|decoder)\.mid_block\.resnets\.(\d+)\.(.*)", key):
        return f"{m[1]}.mid.block_{int(m[2]) + 1}.{m[3].replace('conv_shortcut', 'nin_shortcut')}"
    if m := re.match(r"(encoder|decoder)\.mid_block\.attentions\.0\.(.*)", key):
        sub = m[2]
        for new, old in VAE_ATTN:
            if sub.startswith(new + "."):
                sub = old + sub[len(new):]
        return f"{m[1]}.mid.attn_1.{sub}"
    return key  # conv_in, conv_out, norm_out, quant_conv, post_quant_conv keep their names


def vae_to_ldm(vae) -> dict[str, torch.Tensor]:
    """AutoencoderKL weights in the first_stage_model.* layout (attention projections as 1x1 convs)."""
    n_blocks = len(vae.config.block_out_channels)
    out = {}
    for key, value in vae.state_dict().items():
        new = _vae_key(key, n_blocks)
        if ".mid.attn_1." in new and new.endswith(".weight") and value.ndim == 2:
            value = value[:, :, None, None]  # LDM stores q/k/v/proj_out as 1x1 convolutions
        out[f"first_stage_model.{new}"] = value.detach().clone()
    return out


def clip_to_ldm(text_encoder, prefix: str = "cond_stage_model.transformer.") -> dict[str, torch.Tensor]:
    """CLIPTextModel weights under <prefix>text_model.* (transformers 4.x and v5 key names)."""
    out = {}
    for key, value in text_encoder.state_dict().items():
        key = key if key.startswith("text_model.") else f"text_model.{key}"
        out[f"{prefix}{key}"] = value.detach().clone()
    return out


OPEN_CLIP_LAYER = [("layer_norm1", "ln_1"), ("layer_norm2", "ln_2"), ("mlp.fc1", "mlp.c_fc"),
                   ("mlp.fc2", "mlp.c_proj"), ("self_attn.out_proj", "attn.out_proj")]


def open_clip_to_ldm(text_encoder, prefix: str = "conditioner.embedders.1.model.") -> dict[str, torch.Tensor]:
    """CLIPTextModelWithProjection weights in OpenCLIP's layout (fused in_proj, transposed projection)."""
    state = {k.removeprefix("text_model."): v.detach().clone() for k, v in text_encoder.state_dict().items()}
    out = {
        "token_embedding.weight": state.pop("embeddings.token_embedding.weight"),
        "positional_embedding": state.pop("embeddings.position_embedding.weight"),
        "ln_final.weight": state.pop("final_layer_norm.weight"),
        "ln_final.bias": state.pop("final_layer_norm.bias"),
        "text_projection": state.pop("text_projection.weight").T.contiguous(),
    }
    for n in range(text_encoder.config.num_hidden_layers):
        src, dst = f"encoder.layers.{n}.", f"transformer.resblocks.{n}."
        for kind in ("weight", "bias"):
            qkv = [state.pop(f"{src}self_attn.{p}_proj.{kind}") for p in "qkv"]
            out[f"{dst}attn.in_proj_{kind}"] = torch.cat(qkv)
            for new, old in OPEN_CLIP_LAYER:
                out[f"{dst}{old}.{kind}"] = state.pop(f"{src}{new}.{kind}")
    state = {k: v for k, v in state.items() if not k.endswith("position_ids")}
    assert not state, f"unmapped OpenCLIP keys: {list(state)[:3]}"
    return {prefix + k: v for k, v in out.items()}


def ldm_state_dict(models) -> dict[str, torch.Tensor]:
    """All components of SDModels in one LDM-layout state dict (SD1.x, or SDXL's conditioner layout)."""
    parts = {**unet_to_ldm(models.unet), **vae_to_ldm(models.vae)}
    if getattr(models, "text_encoder_2", None) is None:
        return {**parts, **clip_to_ldm(models.text_encoder)}
    return {**parts, **clip_to_ldm(models.text_encoder, "conditioner.embedders.0.transformer."),
            **open_clip_to_ldm(models.text_encoder_2)}


def save_ldm_checkpoint(models, path: Path) -> Path:
    """Write the components as a single-file .safetensors checkpoint in the A1111 layout."""
    from safetensors.torch import save_file

    tensors = {k: v.contiguous() for k, v in ldm_state_dict(models).items()}
    save_file(tensors, str(path))
    return Path(path)
