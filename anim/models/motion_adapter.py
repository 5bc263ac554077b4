"""AnimateDiff motion modules (diffusers `MotionAdapter`): `tiny`, a diffusers folder, an original AnimateDiff
checkpoint file (mm_sd_v15_v2.safetensors / .ckpt) or a hub id; and the motion UNet built from an SD1.5 UNet."""
from __future__ import annotations

from pathlib import Path

import torch

from anim.errors import ModelError
from anim.models.checkpoints import (
    PICKLE_SUFFIXES,
    SAFE_SUFFIXES,
    one_line,
    pickle_refusal,
    quiet_cast_warning,
    read_state_dict,
)
from anim.models.configs import build_once, cache_root, quiet_progress
from anim.models.load import HUB_ID, _hub_snapshot
from anim.models.tiny import TINY_SEED, TINY_UNET, TINY_VERSION

TINY_ADAPTER = {"block_out_channels": TINY_UNET["block_out_channels"], "motion_layers_per_block": 1,
                "motion_num_attention_heads": 2, "motion_norm_num_groups": 8, "motion_max_seq_length": 32,
                "use_motion_mid_block": False}
SD15_ADAPTER = {"block_out_channels": (320, 640, 1280, 1280), "motion_layers_per_block": 2,
                "motion_num_attention_heads": 8, "motion_norm_num_groups": 32, "motion_max_seq_length": 32,
                "use_motion_mid_block": True}  # AnimateDiff v2 (mm_sd_v15_v2); v1 has no mid block, v3 the same


def tiny_motion_adapter() -> object:
    """A random MotionAdapter that fits the tiny UNet, from a fixed seed, its output layers made non-zero so
    the motion modules have an effect."""
    from diffusers import MotionAdapter

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SEED + 7)
        adapter = MotionAdapter(**TINY_ADAPTER)
        with torch.no_grad():
            for name, param in adapter.named_parameters():
                if name.endswith("proj_out.weight"):
                    param.normal_(0.0, 0.2)
    return adapter


def tiny_motion_adapter_dir(cache_dir: Path | None = None) -> Path:
    """Folder of the tiny MotionAdapter (a diffusers MotionAdapter folder)."""
    def write(dst: Path) -> None:
        quiet_progress()
        tiny_motion_adapter().save_pretrained(dst, safe_serialization=True)

    root = Path(cache_dir) if cache_dir else cache_root()
    return build_once(root / f"{TINY_VERSION}-motion-adapter", write)


def load_motion_adapter(source: str, *, device: torch.device, dtype: torch.dtype, allow_pickle: bool = False,
                        cache_dir: Path | None = None):
    """Load a MotionAdapter: `tiny`, a diffusers folder, an AnimateDiff checkpoint file, or a hub id."""
    from diffusers import MotionAdapter

    path = tiny_motion_adapter_dir(cache_dir) if source == "tiny" else Path(str(source)).expanduser()
    try:
        if path.is_file() or (not path.is_dir() and path.suffix.lower() in (*PICKLE_SUFFIXES, *SAFE_SUFFIXES)):
            adapter = _adapter_from_file(path, allow_pickle=allow_pickle)
        elif path.is_dir():
            adapter = MotionAdapter.from_pretrained(path, local_files_only=True)
        elif HUB_ID.match(str(source)):
            folder = _hub_snapshot(str(source), allow_pickle=allow_pickle,
                                   patterns=["config.json", "diffusion_pytorch_model.safetensors"])
            adapter = MotionAdapter.from_pretrained(folder, local_files_only=True)
        else:
            raise ModelError(f"motion_adapter not found: {source}; pass a diffusers MotionAdapter folder, an "
                             "AnimateDiff .safetensors file, a hub id (e.g. guoyww/animatediff-motion-adapter-v1-5-2) "
                             "or `tiny`")
    except ModelError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise ModelError(f"could not load the motion adapter {source} ({one_line(exc)})") from None
    with quiet_cast_warning():
        return adapter.to(device=device, dtype=dtype).eval()


def _adapter_from_file(path: Path, *, allow_pickle: bool):
    """An original AnimateDiff checkpoint (down_blocks.N.motion_modules.M.temporal_transformer...), converted by
    diffusers' own key map; its shape (mid block or not, sequence length) is read from the keys."""
    from diffusers import MotionAdapter
    from diffusers.loaders.single_file_utils import convert_animatediff_checkpoint_to_diffusers

    if not path.is_file():
        raise ModelError(f"motion_adapter not found: {path}")
    if path.suffix.lower() in PICKLE_SUFFIXES and not allow_pickle:
        raise pickle_refusal(path, "motion adapter")
    state = read_state_dict(path, allow_pickle=allow_pickle, what="motion adapter")
    converted = convert_animatediff_checkpoint_to_diffusers(state)
    if not any(".motion_modules." in key for key in converted):
        raise ModelError(f"{path} holds no AnimateDiff motion modules (no '.motion_modules.' keys)")
    adapter = MotionAdapter(**adapter_config(converted, state))
    missing, unexpected = adapter.load_state_dict(converted, strict=False)
    missing = [k for k in missing if "pos_embed" not in k]  # positional tables: rebuilt from the config
    if missing or unexpected:
        shown = ", ".join((missing + unexpected)[:3])
        raise ModelError(f"{path} does not fit a MotionAdapter ({len(missing)} missing, {len(unexpected)} "
                         f"unexpected weights, e.g. {shown})")
    return adapter


def adapter_config(converted: dict, original: dict) -> dict:
    """A MotionAdapter config read off a checkpoint's weights: channels and modules per level, mid block, sequence
    length; attention heads and norm groups are AnimateDiff's (8, 32), which the weights' shapes do not show."""
    levels = sorted({int(k.split(".")[1]) for k in converted if k.startswith("down_blocks.")})
    channels = tuple(int(converted[f"down_blocks.{i}.motion_modules.0.proj_in.weight"].shape[0]) for i in levels)
    per_block = len({k.split(".")[3] for k in converted if k.startswith("down_blocks.0.motion_modules.")})
    lengths = [int(v.shape[1]) for k, v in original.items() if k.endswith("pos_encoder.pe")]
    return {**SD15_ADAPTER, "block_out_channels": channels, "motion_layers_per_block": per_block,
            "use_motion_mid_block": any(k.startswith("mid_block.") for k in converted),
            "motion_max_seq_length": lengths[0] if lengths else SD15_ADAPTER["motion_max_seq_length"]}


def motion_unet(unet, adapter):
    """The SD UNet with the adapter's motion modules inserted (diffusers' UNetMotionModel, its own copy of the
    UNet's weights), on the UNet's device and dtype."""
    from diffusers import UNetMotionModel

    try:
        with quiet_cast_warning():
            model = UNetMotionModel.from_unet2d(unet, adapter)
    except (ValueError, RuntimeError, KeyError) as exc:
        raise ModelError(f"the motion adapter does not fit the model's UNet ({one_line(exc)}); AnimateDiff "
                         "motion modules are made for SD1.5 models") from None
    with quiet_cast_warning():
        return model.to(device=unet.device, dtype=unet.dtype).eval()
