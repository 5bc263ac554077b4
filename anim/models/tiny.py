"""The built-in tiny Stable Diffusion: random weights from a fixed seed, for tests and dry runs.

Same architecture family as SD1.5 (8x VAE downsampling, CLIP text encoder, cross-attention UNet),
only very small, so 256x256 renders run in well under a second per step on a CPU. It is saved as
an ordinary diffusers folder and loaded through the same code path as a real model.
"""

from __future__ import annotations

from pathlib import Path

import torch

from anim.models.configs import (
    SD15_SCHEDULER,
    SDXL_SCHEDULER,
    build_once,
    cache_root,
    model_index,
    quiet_progress,
    write_byte_tokenizer,
    write_json,
)

TINY_VERSION = "tiny-v1"
TINY_SEED = 1234
TEXT_DIM = 32
BYTE_VOCAB = 2 * 256 + 2  # bytes, bytes + '</w>', BOS, EOS
TINY_UNET = {
    "block_out_channels": (32, 64), "layers_per_block": 1, "sample_size": 32, "in_channels": 4,
    "out_channels": 4, "down_block_types": ("CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D"), "cross_attention_dim": TEXT_DIM,
    "attention_head_dim": 4, "norm_num_groups": 8,
}
TINY_VAE = {
    "block_out_channels": (8, 16, 32, 32), "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4, "latent_channels": 4, "layers_per_block": 1,
    "norm_num_groups": 8, "sample_size": 256, "scaling_factor": 0.18215,
}
TINY_TEXT = {
    "vocab_size": BYTE_VOCAB, "hidden_size": TEXT_DIM, "intermediate_size": 64, "num_hidden_layers": 2,
    "num_attention_heads": 4, "max_position_embeddings": 77, "projection_dim": TEXT_DIM,
    "bos_token_id": BYTE_VOCAB - 2, "eos_token_id": BYTE_VOCAB - 1, "pad_token_id": BYTE_VOCAB - 1,
}
CONTROL_EMBED_CHANNELS = (8, 8, 16, 16)  # 3 stride-2 convs: control image -> latent size
TEXT2_DIM = 48  # SDXL's second encoder must differ in width from the first (loaders tell them apart so)
TIME_EMBED_DIM = 8
TINY_XL_UNET = {
    **TINY_UNET, "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"), "cross_attention_dim": TEXT_DIM + TEXT2_DIM,
    "transformer_layers_per_block": (1, 2), "use_linear_projection": True,
    "addition_embed_type": "text_time", "addition_time_embed_dim": TIME_EMBED_DIM,
    "projection_class_embeddings_input_dim": 6 * TIME_EMBED_DIM + TEXT2_DIM,
}
TINY_TEXT2 = {**TINY_TEXT, "hidden_size": TEXT2_DIM, "intermediate_size": 96, "projection_dim": TEXT2_DIM,
              "hidden_act": "gelu"}


def tiny_modules() -> tuple:
    """Build (unet, vae, text_encoder, controlnet) from TINY_SEED without touching global RNG state."""
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SEED)
        unet = UNet2DConditionModel(**TINY_UNET)
        vae = AutoencoderKL(**TINY_VAE)
        text_encoder = CLIPTextModel(CLIPTextConfig(**TINY_TEXT))
        controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=CONTROL_EMBED_CHANNELS)
        _wake_zero_convs(controlnet)
    return unet, vae, text_encoder, controlnet


def _wake_zero_convs(controlnet) -> None:
    """Give the zero-initialised ControlNet output convs small random weights, so control has an effect."""
    convs = [*controlnet.controlnet_down_blocks, controlnet.controlnet_mid_block]
    with torch.no_grad():
        for conv in convs:
            conv.weight.normal_(0.0, 0.05)
            conv.bias.zero_()


def _write_tiny(dst: Path) -> None:
    """Save the tiny pipeline folder (weights as safetensors, configs, tokenizer) into `dst`."""
    quiet_progress()
    unet, vae, text_encoder, _ = tiny_modules()
    unet.save_pretrained(dst / "unet", safe_serialization=True)
    vae.save_pretrained(dst / "vae", safe_serialization=True)
    text_encoder.save_pretrained(dst / "text_encoder", safe_serialization=True)
    write_byte_tokenizer(dst / "tokenizer")
    write_json(dst / "scheduler" / "scheduler_config.json", SD15_SCHEDULER)
    write_json(dst / "model_index.json", model_index("sd15"))


def _write_tiny_controlnet(dst: Path) -> None:
    """Save the tiny ControlNet (matching the tiny UNet) into `dst`."""
    quiet_progress()
    *_, controlnet = tiny_modules()
    controlnet.save_pretrained(dst, safe_serialization=True)


def _write_tiny_sdxl(dst: Path) -> None:
    """Save a tiny SDXL-shaped pipeline folder (two text encoders, text_time conditioning) into `dst`."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    quiet_progress()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SEED + 1)
        UNet2DConditionModel(**TINY_XL_UNET).save_pretrained(dst / "unet", safe_serialization=True)
        AutoencoderKL(**TINY_VAE).save_pretrained(dst / "vae", safe_serialization=True)
        CLIPTextModel(CLIPTextConfig(**TINY_TEXT)).save_pretrained(dst / "text_encoder", safe_serialization=True)
        CLIPTextModelWithProjection(CLIPTextConfig(**TINY_TEXT2)).save_pretrained(
            dst / "text_encoder_2", safe_serialization=True)
    write_byte_tokenizer(dst / "tokenizer")
    write_byte_tokenizer(dst / "tokenizer_2", pad="!")
    write_json(dst / "scheduler" / "scheduler_config.json", SDXL_SCHEDULER)
    write_json(dst / "model_index.json", model_index("sdxl"))


def _write_tiny_sdxl_controlnet(dst: Path) -> None:
    """Save the tiny SDXL ControlNet into `dst`: made from the tiny SDXL UNet (same seed, so the same
    weights as the saved one), zero convs woken like the SD1.5 one."""
    from diffusers import ControlNetModel, UNet2DConditionModel

    quiet_progress()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SEED + 1)  # the UNet is the first module _write_tiny_sdxl builds from this seed
        unet = UNet2DConditionModel(**TINY_XL_UNET)
        controlnet = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=CONTROL_EMBED_CHANNELS)
        _wake_zero_convs(controlnet)
    controlnet.save_pretrained(dst, safe_serialization=True)


def tiny_model_dir(cache_dir: Path | None = None) -> Path:
    """Folder of the built-in tiny SD (a diffusers pipeline folder); built once, bit-identical every time."""
    root = Path(cache_dir) if cache_dir else cache_root()
    return build_once(root / TINY_VERSION, _write_tiny)


def tiny_controlnet_dir(cache_dir: Path | None = None) -> Path:
    """Folder of the tiny ControlNet that fits the tiny UNet (diffusers ControlNetModel folder)."""
    root = Path(cache_dir) if cache_dir else cache_root()
    return build_once(root / f"{TINY_VERSION}-controlnet", _write_tiny_controlnet)


def tiny_sdxl_dir(cache_dir: Path | None = None) -> Path:
    """Folder of a tiny SDXL-shaped model, for SDXL loading and rendering tests."""
    root = Path(cache_dir) if cache_dir else cache_root()
    return build_once(root / f"{TINY_VERSION}-sdxl", _write_tiny_sdxl)


def tiny_sdxl_controlnet_dir(cache_dir: Path | None = None) -> Path:
    """Folder of the tiny SDXL ControlNet that fits the tiny SDXL UNet (`controlnet: [{model: tiny-sdxl}]`)."""
    root = Path(cache_dir) if cache_dir else cache_root()
    return build_once(root / f"{TINY_VERSION}-sdxl-controlnet", _write_tiny_sdxl_controlnet)
