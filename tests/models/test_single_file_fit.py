"""A single file whose UNet does not fit the architecture config: one ModelError naming file and keys."""
from __future__ import annotations

import pytest
import torch

from anim.errors import ModelError
from anim.models import load_models
from tests.models.ckpt_layout import ldm_state_dict

CONV = "model.diffusion_model.input_blocks.1.0.in_layers.2.weight"  # down_blocks.0.resnets.0.conv1
PROJ = "model.diffusion_model.middle_block.1.proj_in.weight"  # mid_block.attentions.0.proj_in


@pytest.fixture(scope="module")
def xl_parts(anim_cache):
    from anim.models.tiny import tiny_sdxl_dir

    folder = tiny_sdxl_dir(anim_cache)
    models = load_models(str(folder), device="cpu")
    return folder, {k: v.contiguous() for k, v in ldm_state_dict(models).items()}


def _save(state: dict, path):
    from safetensors.torch import save_file

    save_file(state, str(path))
    return path


def _error(path, folder) -> str:
    with pytest.raises(ModelError) as info:
        load_models(str(path), config_dir=folder, device="cpu")
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    assert "meta tensor" not in message
    return message


def test_missing_unet_weight_is_named(xl_parts, tmp_path):
    folder, state = xl_parts
    path = _save({k: v for k, v in state.items() if k != PROJ}, tmp_path / "no-proj.safetensors")
    message = _error(path, folder)
    assert "UNet" in message and "mid_block.attentions.0.proj_in.weight" in message and "missing" in message


def test_wrong_shaped_unet_weight_is_named(xl_parts, tmp_path):
    folder, state = xl_parts
    path = _save({**state, CONV: torch.zeros(3, 3, 3, 3)}, tmp_path / "bad-shape.safetensors")
    message = _error(path, folder)
    assert "down_blocks.0.resnets.0.conv1.weight" in message and "[3, 3, 3, 3]" in message
    assert "[32, 32, 3, 3]" in message


def test_extra_unet_block_is_named(xl_parts, tmp_path):
    folder, state = xl_parts
    extra = "model.diffusion_model.input_blocks.9.0.in_layers.2.weight"
    path = _save({**state, extra: torch.zeros(3, 3, 3, 3)}, tmp_path / "extra.safetensors")
    message = _error(path, folder)
    assert f"{extra} unused" in message


def test_missing_added_embedding_is_named(xl_parts, tmp_path):
    folder, state = xl_parts
    label = "model.diffusion_model.label_emb.0.0.weight"
    path = _save({k: v for k, v in state.items() if k != label}, tmp_path / "no-label.safetensors")
    message = _error(path, folder)
    assert "label_emb.0.0.weight" in message
