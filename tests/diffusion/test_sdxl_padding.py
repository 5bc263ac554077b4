"""SDXL conditioning equals diffusers' own encode_prompt: each encoder gets its own tokenizer's padding."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module")
def xl(anim_cache):
    from anim.models import load_models
    from anim.models.tiny import tiny_sdxl_dir

    return load_models(str(tiny_sdxl_dir(anim_cache)), device="cpu")


def _diffusers_embeds(models, prompt: str, negative: str):
    """(embeds, negative embeds, pooled, negative pooled) from StableDiffusionXLPipeline.encode_prompt."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline

    pipe = StableDiffusionXLPipeline(
        vae=models.vae, text_encoder=models.text_encoder, text_encoder_2=models.text_encoder_2,
        tokenizer=models.tokenizer, tokenizer_2=models.tokenizer_2, unet=models.unet,
        scheduler=EulerDiscreteScheduler.from_config(models.scheduler_config))
    with torch.no_grad():
        return pipe.encode_prompt(prompt, device=torch.device("cpu"), negative_prompt=negative)


def test_tiny_sdxl_pads_its_second_tokenizer_like_real_sdxl(xl):
    tok2 = xl.tokenizer_2
    assert tok2.pad_token == "!" and tok2.pad_token_id == 0 != tok2.eos_token_id
    assert xl.tokenizer.pad_token_id == xl.tokenizer.eos_token_id


@pytest.mark.parametrize(("prompt", "negative"), [("a red fox in the snow", "blurry"), ("a cabin", "")])
def test_sdxl_conditioning_equals_diffusers_encode_prompt(xl, prompt, negative):
    from anim.diffusion.sdxl import SDXLPromptEncoder

    embeds, neg_embeds, pooled, neg_pooled = _diffusers_embeds(xl, prompt, negative)
    cond, uncond = SDXLPromptEncoder.from_models(xl).conditioning(prompt, negative)
    assert cond.embeds.shape == embeds.shape
    assert torch.allclose(cond.embeds, embeds, atol=1e-6, rtol=0)
    assert torch.allclose(cond.pooled, pooled, atol=1e-6, rtol=0)
    if negative:  # diffusers zeroes an empty negative (force_zeros_for_empty_prompt); anim encodes ""
        assert torch.allclose(uncond.embeds, neg_embeds, atol=1e-6, rtol=0)
        assert torch.allclose(uncond.pooled, neg_pooled, atol=1e-6, rtol=0)


def test_second_encoder_ids_are_padded_per_chunk(xl):
    from anim.diffusion.sdxl import SDXLPromptEncoder

    encoder = SDXLPromptEncoder.from_models(xl)
    ids = torch.tensor([ids for ids, _ in encoder.chunks("a cat BREAK a dog, " + "x " * 80)])
    second = encoder.second_ids(ids)
    for row, row2 in zip(ids.tolist(), second.tolist(), strict=True):
        end = row.index(encoder.eos)
        assert row2[: end + 1] == row[: end + 1]
        assert row2[end + 1:] == [xl.tokenizer_2.pad_token_id] * (len(row) - end - 1)
