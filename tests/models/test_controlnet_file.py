"""Single-file ControlNets (A1111's models/ControlNet/*.safetensors): A1111 and diffusers key layouts,
relative paths, pickles, generated SD1.5 / SDXL configs, and a clear error for a file of another shape."""

from __future__ import annotations

import pytest
import torch

from anim.errors import ModelError
from anim.models import load_controlnet
from anim.models.tiny import CONTROL_EMBED_CHANNELS, TINY_XL_UNET, tiny_controlnet_dir
from tests.models.controlnet_layout import a1111_names, same_weights, save_a1111_controlnet

CPU = torch.device("cpu")


def _load(source, **kwargs):
    return load_controlnet(str(source), device=CPU, dtype=torch.float32, **kwargs)


@pytest.fixture(scope="module")
def sd15_net(anim_cache):
    """The tiny SD1.5-shaped ControlNet and its config folder."""
    from diffusers import ControlNetModel

    folder = tiny_controlnet_dir(anim_cache)
    return ControlNetModel.from_pretrained(folder), folder


@pytest.fixture(scope="module")
def xl_net(tmp_path_factory):
    """A tiny SDXL-shaped ControlNet (text_time added embedding, random weights everywhere) and its config."""
    from diffusers import ControlNetModel, UNet2DConditionModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        unet = UNet2DConditionModel(**TINY_XL_UNET)
        net = ControlNetModel.from_unet(unet, conditioning_embedding_out_channels=CONTROL_EMBED_CHANNELS)
        with torch.no_grad():
            for param in net.parameters():
                param.normal_(0.0, 0.05)
    folder = tmp_path_factory.mktemp("xl-controlnet")
    net.save_config(folder)
    return net, folder


def test_a1111_names_come_out_in_a1111_layout(sd15_net):
    names = set(a1111_names(sd15_net[0]).values())
    for key in ("input_hint_block.0.weight", "input_hint_block.14.weight", "zero_convs.0.0.weight",
                "middle_block_out.0.weight", "input_blocks.1.0.in_layers.0.weight", "input_blocks.1.1.proj_in.weight",
                "input_blocks.2.0.op.weight", "middle_block.2.out_layers.3.weight", "time_embed.0.weight"):
        assert key in names, key


def test_sd15_a1111_file_by_relative_path(sd15_net, tmp_path, monkeypatch):
    net, config = sd15_net
    (tmp_path / "ControlNet").mkdir()
    save_a1111_controlnet(net, tmp_path / "ControlNet" / "control_tiny.safetensors")
    monkeypatch.chdir(tmp_path)  # "ControlNet/control_tiny.safetensors" also looks like a hub id
    loaded = _load("ControlNet/control_tiny.safetensors", config_dir=config)
    assert same_weights(loaded, net)


def test_sdxl_a1111_and_diffusers_files(xl_net, tmp_path):
    from safetensors.torch import save_file

    net, config = xl_net
    a1111 = save_a1111_controlnet(net, tmp_path / "control_xl.safetensors")
    assert same_weights(_load(a1111, config_dir=config), net)
    flat = tmp_path / "controlnet-xl-diffusers.safetensors"  # a diffusers repo's weights file, renamed
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(flat))
    assert same_weights(_load(flat, config_dir=config), net)


def test_unprefixed_half_precision_file(sd15_net, tmp_path):
    from safetensors.torch import save_file

    net, config = sd15_net  # like the popular *_fp16.safetensors repacks: A1111 names without control_model.
    path = tmp_path / "control_tiny_fp16.safetensors"
    state = net.state_dict()
    save_file({a: state[d].half().contiguous() for d, a in a1111_names(net).items()}, str(path))
    loaded = _load(path, config_dir=config)
    assert all(torch.equal(v, state[k].half().float()) for k, v in loaded.state_dict().items())


def test_pickled_controlnet_needs_allow_pickle(sd15_net, tmp_path):
    net, config = sd15_net
    path = tmp_path / "control_tiny.pth"
    torch.save({f"control_model.{a}": net.state_dict()[d] for d, a in a1111_names(net).items()}, path)
    with pytest.raises(ModelError, match="pickle") as info:
        _load(path, config_dir=config)
    assert str(path) in str(info.value)
    assert same_weights(_load(path, config_dir=config, allow_pickle=True), net)


def test_missing_file_is_not_taken_for_a_hub_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError, match="not found") as info:
        _load("ControlNet/nothing.safetensors")
    assert "ControlNet/nothing.safetensors" in str(info.value)


def test_file_of_another_shape_names_the_keys(sd15_net, tmp_path, anim_cache, monkeypatch):
    monkeypatch.setenv("ANIM_CACHE", str(anim_cache))
    path = save_a1111_controlnet(sd15_net[0], tmp_path / "control_tiny.safetensors")
    with pytest.raises(ModelError) as info:
        _load(path)  # the generated (full-size) SD1.5 config
    message = str(info.value)
    assert str(path) in message and "\n" not in message and "sd15 ControlNet does not match" in message
    assert "conv_in.weight is [32, 4, 3, 3], expected [320, 4, 3, 3]" in message


def test_leftover_a1111_weight_is_named(sd15_net, tmp_path):
    from safetensors.torch import load_file, save_file

    net, config = sd15_net
    path = save_a1111_controlnet(net, tmp_path / "control_tiny.safetensors")
    extra = "control_model.input_blocks.9.0.in_layers.2.weight"  # a block the tiny ControlNet does not have
    save_file({**load_file(str(path)), extra: torch.zeros(2, 2)}, str(path))
    with pytest.raises(ModelError, match=f"1 key differs: {extra} unused"):
        _load(path, config_dir=config)


def test_not_a_controlnet_is_refused(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "lora.safetensors"
    save_file({"lora_unet_x.lora_down.weight": torch.zeros(2, 2)}, str(path))
    with pytest.raises(ModelError, match="not a ControlNet"):
        _load(path)


@pytest.mark.parametrize(("arch", "params", "shapes"), [
    ("sd15", (360e6, 362e6), {"input_hint_block.14.weight": [320, 256, 3, 3], "zero_convs.11.0.weight":
                              [1280, 1280, 1, 1], "input_blocks.1.1.proj_in.weight": [320, 320, 1, 1],
                              "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": [320, 768]}),
    ("sdxl", (1.24e9, 1.26e9), {"label_emb.0.0.weight": [1280, 2816], "zero_convs.8.0.weight": [1280, 1280, 1, 1],
                                "input_blocks.4.1.proj_in.weight": [640, 640],
                                "input_blocks.7.1.transformer_blocks.9.attn2.to_k.weight": [1280, 2048]}),
])
def test_generated_controlnet_configs_are_the_real_architectures(tmp_path, arch, params, shapes):
    from accelerate import init_empty_weights
    from diffusers import ControlNetModel

    from anim.models.configs import controlnet_config_dir

    with init_empty_weights():  # shapes only
        net = ControlNetModel.from_config(ControlNetModel.load_config(controlnet_config_dir(arch, tmp_path)))
    assert params[0] < sum(p.numel() for p in net.parameters()) < params[1]
    state = net.state_dict()
    by_a1111 = {a: list(state[d].shape) for d, a in a1111_names(net).items()}
    for key, shape in shapes.items():
        assert by_a1111[key] == shape, key
