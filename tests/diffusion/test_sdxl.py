"""SDXL: two-encoder conditioning with pooled embeddings, and a render through the engine (tiny SDXL)."""
from __future__ import annotations

import torch

from anim.cli import main
from anim.media.png import read_png_u8


def test_sdxl_conditioning_shapes_and_blend(anim_cache):
    from anim.diffusion.sdxl import SDXLPromptEncoder
    from anim.models import load_models
    from anim.models.tiny import TEXT2_DIM, TEXT_DIM, tiny_sdxl_dir

    models = load_models(str(tiny_sdxl_dir(anim_cache)), device="cpu")
    assert models.is_sdxl
    encoder = SDXLPromptEncoder.from_models(models)
    cond, uncond = encoder.conditioning("a red fox", "blurry")
    assert cond.embeds.shape == uncond.embeds.shape == (1, 77, TEXT_DIM + TEXT2_DIM)
    assert cond.pooled.shape == (1, TEXT2_DIM) and not torch.equal(cond.pooled, uncond.pooled)
    half, _ = encoder.conditioning("a red fox", "blurry", "a blue bird", "blurry", 0.5)
    other, _ = encoder.conditioning("a blue bird", "blurry")
    assert torch.allclose(half.pooled, (cond.pooled + other.pooled) / 2, atol=1e-6)
    assert torch.allclose(half.embeds, (cond.embeds + other.embeds) / 2, atol=1e-5)


def test_sdxl_renders_through_the_engine_deterministically(anim_cache, tmp_path, monkeypatch):
    from pathlib import Path

    from anim.models.tiny import tiny_sdxl_dir

    smoke = Path(__file__).resolve().parents[2] / "presets" / "smoke.yaml"
    args = [str(smoke), f"model={tiny_sdxl_dir(anim_cache)}", "max_frames=2", "width=64", "height=64", "steps=2",
            "--quiet"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    for name in ("000000.png", "000001.png"):
        a, b = (read_png_u8(tmp_path / run / "frames" / name) for run in ("a", "b"))
        assert a.shape == (64, 64, 3) and (a == b).all() and a.std() > 0
