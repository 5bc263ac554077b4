"""MotionAdapter loading: `tiny`, a diffusers folder, and an original AnimateDiff checkpoint file. The file is made
from a random adapter in AnimateDiff's own layout; diffusers' converter (the oracle) must map it back to exactly
the adapter's keys, and anim must load it with identical weights."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from anim.errors import ModelError
from anim.models.motion_adapter import load_motion_adapter, tiny_motion_adapter

ORIGINAL_NAMES = ((".norm1", ".norms.0"), (".norm2", ".norms.1"), (".norm3", ".ff_norm"),
                  (".attn1", ".attention_blocks.0"), (".attn2", ".attention_blocks.1"))


def original_key(key: str) -> str:
    """An adapter key in AnimateDiff's layout (motion_modules.N.temporal_transformer..., norms, attention_blocks)."""
    parts = key.split(".")
    at = parts.index("motion_modules") + 2
    key = ".".join([*parts[:at], "temporal_transformer", *parts[at:]])
    for new, old in ORIGINAL_NAMES:
        key = key.replace(new, old)
    return key


def original_checkpoint(adapter) -> dict[str, torch.Tensor]:
    state = {}
    for key, value in adapter.state_dict().items():
        if key.endswith("pos_embed.pe"):  # AnimateDiff calls the positional table pos_encoder, per attention block
            base = original_key(key.replace(".pos_embed.pe", ".attn1.x"))[:-2]
            state[base + ".pos_encoder.pe"] = value.clone()
        else:
            state[original_key(key)] = value.clone().contiguous()
    return state


def test_an_animatediff_file_loads_with_identical_weights(tmp_path):
    from diffusers.loaders.single_file_utils import convert_animatediff_checkpoint_to_diffusers

    adapter = tiny_motion_adapter()
    original = original_checkpoint(adapter)
    expected = {k: v for k, v in adapter.state_dict().items() if not k.endswith("pos_embed.pe")}
    assert set(convert_animatediff_checkpoint_to_diffusers(original)) == set(expected)  # diffusers' map agrees
    path = tmp_path / "mm_tiny.safetensors"
    save_file(original, str(path))
    loaded = load_motion_adapter(str(path), device=torch.device("cpu"), dtype=torch.float32)
    got = loaded.state_dict()
    assert all(torch.equal(got[k], v) for k, v in expected.items())
    assert loaded.config.block_out_channels == adapter.config.block_out_channels
    assert loaded.config.use_motion_mid_block is False and loaded.config.motion_layers_per_block == 1


def test_folder_and_tiny_load_the_same_adapter(tmp_path):
    adapter = tiny_motion_adapter()
    adapter.save_pretrained(tmp_path / "mm", safe_serialization=True)
    folder = load_motion_adapter(str(tmp_path / "mm"), device=torch.device("cpu"), dtype=torch.float32)
    tiny = load_motion_adapter("tiny", device=torch.device("cpu"), dtype=torch.float32)
    assert all(torch.equal(a, b) for a, b in zip(folder.state_dict().values(), tiny.state_dict().values()))


def test_pickles_and_strangers_are_refused(tmp_path):
    pickled = tmp_path / "mm_sd_v15_v2.ckpt"
    torch.save(original_checkpoint(tiny_motion_adapter()), pickled)
    with pytest.raises(ModelError, match="allow_pickle"):
        load_motion_adapter(str(pickled), device=torch.device("cpu"), dtype=torch.float32)
    assert load_motion_adapter(str(pickled), device=torch.device("cpu"), dtype=torch.float32, allow_pickle=True)
    stranger = tmp_path / "lora.safetensors"
    save_file({"lora_unet_down.alpha": torch.ones(1)}, str(stranger))
    with pytest.raises(ModelError, match="no AnimateDiff motion modules"):
        load_motion_adapter(str(stranger), device=torch.device("cpu"), dtype=torch.float32)
    with pytest.raises(ModelError, match="motion_adapter not found"):
        load_motion_adapter("no-such-folder", device=torch.device("cpu"), dtype=torch.float32)
