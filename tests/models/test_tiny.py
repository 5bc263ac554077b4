"""The built-in tiny model: deterministic build, atomic cache folder, loads like a real folder."""

from __future__ import annotations

import hashlib
import time

import torch

from anim.models import SDModels, load_models, resolve_device, resolve_dtype
from anim.models.configs import build_once
from anim.models.tiny import tiny_controlnet_dir, tiny_model_dir, tiny_modules


def _file_hashes(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_tiny_dir_is_bit_identical_across_builds(tmp_path, tiny_dir):
    started = time.perf_counter()
    again = tiny_model_dir(tmp_path)
    assert time.perf_counter() - started < 5.0
    assert again != tiny_dir
    assert _file_hashes(again) == _file_hashes(tiny_dir)
    assert (again / "model_index.json").is_file()
    assert (again / "unet" / "diffusion_pytorch_model.safetensors").is_file()


def test_tiny_build_leaves_global_rng_alone():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    tiny_modules()
    assert torch.equal(torch.rand(3), expected)


def test_build_once_tolerates_a_racing_winner(tmp_path):
    dst = tmp_path / "thing"

    def build(tmp):  # another process finishes first, while we are still building
        (tmp / "mine.txt").write_text("loser")
        dst.mkdir()
        (dst / "theirs.txt").write_text("winner")

    assert build_once(dst, build) == dst
    assert (dst / "theirs.txt").read_text() == "winner"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # temp folder cleaned up


def test_load_tiny_round_trip(tiny_models, tiny_dir):
    m = tiny_models
    assert isinstance(m, SDModels)
    assert (m.name, m.arch, m.dtype, m.device.type) == ("tiny", "sd15", torch.float32, "cpu")
    assert len(m.model_hash) == 10 and int(m.model_hash, 16) >= 0
    assert m.scheduler_config["beta_schedule"] == "scaled_linear"
    assert m.scheduler_config["beta_end"] == 0.012
    assert m.vae.config.scaling_factor == 0.18215
    assert 2 ** (len(m.vae.config.block_out_channels) - 1) == 8  # SD's 8x latent downsampling
    built = tiny_modules()[0].state_dict()
    for key, value in m.unet.state_dict().items():
        assert torch.equal(value, built[key]), key


def test_tiny_tokenizer_handles_any_text(tiny_models):
    tok = tiny_models.tokenizer
    for text in ["a photo of a cat", "Ünïcödé — 日本語 🐱 !?", ""]:
        ids = tok(text).input_ids
        assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id
        assert tok.decode(ids, skip_special_tokens=True).replace(" ", "") == text.lower().replace(" ", "")


def test_tiny_controlnet_matches_unet(anim_cache, tiny_models):
    from diffusers import ControlNetModel

    net = ControlNetModel.from_pretrained(tiny_controlnet_dir(anim_cache))
    assert net.config.block_out_channels == tiny_models.unet.config.block_out_channels
    assert net.config.cross_attention_dim == tiny_models.unet.config.cross_attention_dim


def test_device_and_dtype_resolution():
    cpu = resolve_device("cpu")
    assert cpu.type == "cpu"
    assert resolve_dtype(cpu, None) == torch.float32
    assert resolve_dtype(cpu, "bf16") == torch.bfloat16
    assert resolve_dtype(torch.device("cuda"), None) == torch.float16
    assert resolve_dtype(torch.device("cuda"), "fp32") == torch.float32


def test_tiny_load_is_fast(anim_cache):
    started = time.perf_counter()
    load_models("tiny", device="cpu", cache_dir=anim_cache)
    assert time.perf_counter() - started < 5.0
