"""Model configs written from code: SD1.5 / SDXL diffusers config folders and CLIP tokenizers.

Single-file checkpoints carry weights only; diffusers needs an architecture config to build the
modules. We generate those folders locally (no network) into the user cache, atomically.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # torch is imported where models load, not by this table of configs
    import torch

CONFIG_VERSION = "v1"
BOS, EOS = "<|startoftext|>", "<|endoftext|>"
CLIP_MAX_TOKENS = 77
ARCHS = ("sd15", "sdxl")


def cache_root() -> Path:
    """The anim cache folder: $ANIM_CACHE, else ~/.cache/anim."""
    env = os.environ.get("ANIM_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "anim"


def build_once(dst: Path, build: Callable[[Path], None]) -> Path:
    """Create folder `dst` by running build(tmp) then renaming; safe when processes race.

    A folder that exists is complete (it only ever appears through the atomic rename).
    """
    dst = Path(dst)
    if dst.is_dir():
        return dst
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}-", dir=dst.parent))
    try:
        build(tmp)
        os.chmod(tmp, 0o755)
        try:
            os.replace(tmp, dst)
        except OSError:
            if not dst.is_dir():  # lost a race: the winner's folder is as good as ours
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dst


def quiet_progress() -> None:
    """Turn off diffusers/transformers progress bars (load/save chatter in a render log)."""
    import diffusers.utils.logging as diffusers_logging
    import transformers.utils.logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()


def write_json(path: Path, data: dict) -> None:
    """Write JSON with sorted keys so generated folders are byte-identical run to run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


# ---------------------------------------------------------------- tokenizers


def byte_unicode_chars() -> list[str]:
    """The 256 stand-in characters byte-level BPE uses for bytes, in CLIP's vocabulary order.

    Printable bytes stand for themselves and come first; the other bytes follow, in byte order,
    as the characters U+0100, U+0101, ...
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    return [chr(b) for b in printable] + [chr(256 + i) for i in range(len(others))]


def clip_bpe_merges() -> list[tuple[str, str]]:
    """CLIP's 48894 BPE merges, read from the vocabulary file shipped inside open_clip_torch."""
    import open_clip

    gz = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    lines = gzip.open(gz, "rt", encoding="utf-8").read().split("\n")
    merges = lines[1 : 49152 - 256 - 2 + 1]  # the file's header line, then exactly this many merges
    return [tuple(m.split()) for m in merges]


def clip_vocab(merges: list[tuple[str, str]]) -> dict[str, int]:
    """CLIP's token table: bytes, bytes + '</w>', one token per merge, then BOS and EOS."""
    chars = byte_unicode_chars()
    tokens = chars + [c + "</w>" for c in chars] + ["".join(m) for m in merges] + [BOS, EOS]
    return {tok: i for i, tok in enumerate(tokens)}


def write_clip_tokenizer(dst: Path, vocab: dict[str, int], merges: list[tuple[str, str]], pad: str = EOS) -> None:
    """Write a CLIPTokenizer folder (vocab.json, merges.txt, configs) loadable offline by transformers."""
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    body = "".join(f"{a} {b}\n" for a, b in merges)
    (dst / "merges.txt").write_text("#version: 0.2\n" + body, encoding="utf-8")
    specials = {"bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": pad}
    write_json(dst / "special_tokens_map.json", specials)
    write_json(dst / "tokenizer_config.json", {
        **specials, "tokenizer_class": "CLIPTokenizer", "model_max_length": CLIP_MAX_TOKENS,
        "do_lower_case": True, "clean_up_tokenization_spaces": False,
    })


def write_byte_tokenizer(dst: Path, pad: str = EOS) -> None:
    """A tiny byte-level CLIP tokenizer (514 tokens, no merges): tokenises any text offline."""
    chars = byte_unicode_chars()
    tokens = chars + [c + "</w>" for c in chars] + [BOS, EOS]
    write_clip_tokenizer(dst, {t: i for i, t in enumerate(tokens)}, [], pad=pad)


# ---------------------------------------------------------------- SD1.5 / SDXL configs

SD15_UNET = {
    "_class_name": "UNet2DConditionModel", "act_fn": "silu", "attention_head_dim": 8,
    "block_out_channels": [320, 640, 1280, 1280], "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
    "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3,
    "in_channels": 4, "out_channels": 4, "layers_per_block": 2, "norm_num_groups": 32,
    "norm_eps": 1e-5, "sample_size": 64, "flip_sin_to_cos": True, "freq_shift": 0,
    "downsample_padding": 1, "mid_block_scale_factor": 1,
}
SDXL_UNET = {
    **SD15_UNET, "attention_head_dim": [5, 10, 20], "block_out_channels": [320, 640, 1280],
    "cross_attention_dim": 2048, "down_block_types": ["DownBlock2D"] + ["CrossAttnDownBlock2D"] * 2,
    "up_block_types": ["CrossAttnUpBlock2D"] * 2 + ["UpBlock2D"], "sample_size": 128,
    "transformer_layers_per_block": [1, 2, 10], "use_linear_projection": True,
    "addition_embed_type": "text_time", "addition_embed_type_num_heads": 64,
    "addition_time_embed_dim": 256, "projection_class_embeddings_input_dim": 2816,
}
SD15_VAE = {
    "_class_name": "AutoencoderKL", "act_fn": "silu", "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4,
    "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 2,
    "norm_num_groups": 32, "sample_size": 512, "scaling_factor": 0.18215,
}
SDXL_VAE = {**SD15_VAE, "sample_size": 1024, "scaling_factor": 0.13025, "force_upcast": True}
SD_SCHEDULER = {
    "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000, "clip_sample": False, "set_alpha_to_one": False,
    "skip_prk_steps": True, "steps_offset": 1, "prediction_type": "epsilon", "trained_betas": None,
}
SD15_SCHEDULER = {"_class_name": "PNDMScheduler", **SD_SCHEDULER}
SDXL_SCHEDULER = {"_class_name": "EulerDiscreteScheduler", **SD_SCHEDULER, "timestep_spacing": "leading",
                  "interpolation_type": "linear", "use_karras_sigmas": False}
UNET_ONLY = ("_class_name", "up_block_types", "out_channels", "sample_size")  # keys a ControlNet lacks
CONTROLNET = {"_class_name": "ControlNetModel", "conditioning_channels": 3,
              "conditioning_embedding_out_channels": [16, 32, 96, 256], "controlnet_conditioning_channel_order": "rgb"}
SD15_CONTROLNET = {**{k: v for k, v in SD15_UNET.items() if k not in UNET_ONLY}, **CONTROLNET}
SDXL_CONTROLNET = {**{k: v for k, v in SDXL_UNET.items() if k not in UNET_ONLY}, **CONTROLNET}
CLIP_L = {"vocab_size": 49408, "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
          "num_attention_heads": 12, "max_position_embeddings": 77, "hidden_act": "quick_gelu",
          "projection_dim": 768, "bos_token_id": 49406, "eos_token_id": 49407, "pad_token_id": 49407}
CLIP_BIGG = {**CLIP_L, "hidden_size": 1280, "intermediate_size": 5120, "num_hidden_layers": 32,
             "num_attention_heads": 20, "hidden_act": "gelu", "projection_dim": 1280}


def write_text_encoder_config(dst: Path, params: dict, architecture: str) -> None:
    """Write a transformers CLIPTextConfig folder (config.json only, no weights)."""
    from transformers import CLIPTextConfig

    config = CLIPTextConfig(**params)
    config.architectures = [architecture]
    config.save_pretrained(str(dst))


def model_index(arch: str) -> dict:
    """The model_index.json a diffusers pipeline folder of this architecture carries."""
    index = {
        "_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"], "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"], "scheduler": ["diffusers", "PNDMScheduler"],
        "safety_checker": [None, None], "feature_extractor": [None, None], "requires_safety_checker": False,
    }
    if arch == "sdxl":
        for key in ("safety_checker", "feature_extractor", "requires_safety_checker"):
            index.pop(key)
        index.update({
            "_class_name": "StableDiffusionXLPipeline", "scheduler": ["diffusers", "EulerDiscreteScheduler"],
            "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
            "tokenizer_2": ["transformers", "CLIPTokenizer"], "force_zeros_for_empty_prompt": True,
        })
    return index


def _write_arch_configs(dst: Path, arch: str) -> None:
    """Fill `dst` with the config-only diffusers folder for `arch` ('sd15' or 'sdxl')."""
    xl = arch == "sdxl"
    write_json(dst / "model_index.json", model_index(arch))
    write_json(dst / "unet" / "config.json", SDXL_UNET if xl else SD15_UNET)
    write_json(dst / "vae" / "config.json", SDXL_VAE if xl else SD15_VAE)
    write_json(dst / "scheduler" / "scheduler_config.json", SDXL_SCHEDULER if xl else SD15_SCHEDULER)
    write_text_encoder_config(dst / "text_encoder", CLIP_L, "CLIPTextModel")
    merges = clip_bpe_merges()
    vocab = clip_vocab(merges)
    write_clip_tokenizer(dst / "tokenizer", vocab, merges)
    if xl:
        write_text_encoder_config(dst / "text_encoder_2", CLIP_BIGG, "CLIPTextModelWithProjection")
        write_clip_tokenizer(dst / "tokenizer_2", vocab, merges, pad="!")


def arch_config_dir(arch: str, cache_dir: Path | None = None) -> Path:
    """The generated config folder for 'sd15' or 'sdxl', built on first use (offline)."""
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; valid: {', '.join(ARCHS)}")
    root = Path(cache_dir) if cache_dir else cache_root()
    dst = root / "configs" / f"{arch}-{CONFIG_VERSION}"
    return build_once(dst, lambda tmp: _write_arch_configs(tmp, arch))


def controlnet_config_dir(arch: str, cache_dir: Path | None = None) -> Path:
    """A generated ControlNet config folder (config.json) for 'sd15' or 'sdxl' single files, built offline."""
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; valid: {', '.join(ARCHS)}")
    root = Path(cache_dir) if cache_dir else cache_root()
    config = SDXL_CONTROLNET if arch == "sdxl" else SD15_CONTROLNET
    return build_once(root / "configs" / f"controlnet-{arch}-{CONFIG_VERSION}",
                      lambda tmp: write_json(tmp / "config.json", config))


def transformers_dtype(dtype: torch.dtype) -> dict:
    """The load-dtype keyword of transformers' from_pretrained: `dtype` since 4.56 (which prints a deprecation
    line for `torch_dtype`, a second stderr line under our one-line errors), `torch_dtype` before."""
    import transformers

    version = tuple(int(part) for part in transformers.__version__.split(".")[:2] if part.isdigit())
    return {"dtype": dtype} if version >= (4, 56) else {"torch_dtype": dtype}
