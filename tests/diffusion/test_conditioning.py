"""Prompt conditioning: A1111 emphasis, 75-token chunks, BREAK, comma backtrack, cache, pairs, blends."""

from __future__ import annotations

import torch

from anim.diffusion.conditioning import CHUNK_TOKENS, apply_emphasis, blend_embeddings


def test_plain_prompt_shape(encoder, tiny_models):
    cond = encoder.encode("a photo of a cat")
    assert cond.shape == (1, 77, tiny_models.text_encoder.config.hidden_size)
    assert cond.dtype == torch.float32


def test_weight_one_equals_plain(encoder):
    assert torch.equal(encoder.encode("(cat:1.0)"), encoder.encode("cat"))


def test_weights_scale_tokens_and_restore_the_mean(encoder):
    plain, weighted = encoder.encode("a photo of a cat"), encoder.encode("a photo of a (cat:1.5)")
    assert not torch.equal(plain, weighted)
    assert torch.allclose(plain.mean(), weighted.mean(), atol=1e-6)
    ids, weights = encoder.chunks("a photo of a (cat:1.5)")[0]
    assert weights.count(1.5) == len(encoder.token_ids("cat"))  # one weight per token of 'cat'
    expected = plain[0] * torch.tensor(weights)[:, None]
    expected = expected * (plain.mean() / expected.mean())
    assert torch.allclose(weighted[0], expected, atol=1e-6)


def test_emphasis_formula():
    z = torch.arange(1.0, 7.0).reshape(1, 3, 2)
    w = torch.tensor([[1.0, 2.0, 1.0]])
    out = apply_emphasis(z, w)
    scaled = z * w[..., None]
    assert torch.allclose(out, scaled * z.mean() / scaled.mean())


def test_long_prompt_makes_two_chunks(encoder):
    text = " ".join(["cat"] * 60)  # 'cat' is 3 byte tokens in the tiny tokenizer: 180 tokens
    assert encoder.encode(text).shape[1] == 77 * 3
    ids = [i for chunk, _ in encoder.chunks("a" * 100) for i in chunk]
    assert len(ids) == 154


def test_chunks_are_wrapped_and_padded(encoder):
    for ids, weights in encoder.chunks("x " * 100):
        assert len(ids) == len(weights) == CHUNK_TOKENS + 2
        assert ids[0] == encoder.bos and ids[-1] == encoder.eos


def test_break_starts_a_new_chunk(encoder):
    assert encoder.encode("a cat BREAK a dog").shape[1] == 154
    first, second = encoder.chunks("a cat BREAK a dog")
    cat, dog = encoder.token_ids("a cat"), encoder.token_ids("a dog")
    assert first[0][: len(cat) + 2] == [encoder.bos, *cat, encoder.eos]
    assert second[0][: len(dog) + 2] == [encoder.bos, *dog, encoder.eos]


def test_full_chunk_breaks_after_a_recent_comma(encoder):
    head = "x" * 70 + ","  # 70 letter tokens, then the comma as token 71
    chunks = encoder.chunks(head + " " + "y" * 10)
    first_ids = chunks[0][0]
    assert first_ids[71] == encoder.comma and first_ids[72:] == [encoder.eos] * 5  # padded after the comma
    assert chunks[1][0][1:11] == encoder.token_ids("y" * 10)


def test_cache_returns_the_same_tensor(encoder):
    first = encoder.encode("a red fox")
    calls = encoder.encoder_calls
    assert encoder.encode("a red fox") is first
    assert encoder.encoder_calls == calls


def test_pair_pads_to_equal_length_with_the_empty_chunk(encoder):
    cond, uncond = encoder.pair("a " * 100, "blurry")
    assert cond.shape == uncond.shape == (1, 154, 32)
    assert torch.equal(uncond[:, 77:], encoder.encode(""))
    assert torch.equal(uncond[:, :77], encoder.encode("blurry"))


def test_lerp_endpoints_and_midpoint(encoder):
    a, b = encoder.encode("a cat"), encoder.encode("a dog " * 30)
    assert torch.equal(encoder.blend(a, b, 0.0), encoder.pad_to(a, b.shape[1]))
    assert torch.equal(encoder.blend(a, b, 1.0), b)
    mid = encoder.blend(a, b, 0.5)
    assert mid.shape == b.shape
    assert torch.allclose(mid, (encoder.pad_to(a, b.shape[1]) + b) / 2, atol=1e-6)


def test_slerp_keeps_endpoints_and_interpolates_length():
    gen = torch.Generator().manual_seed(3)
    a, b = torch.randn(1, 4, 8, generator=gen), torch.randn(1, 4, 8, generator=gen) * 3
    assert torch.equal(blend_embeddings(a, b, 0.0, "slerp"), a)
    assert torch.equal(blend_embeddings(a, b, 1.0, "slerp"), b)
    near_a = blend_embeddings(a, b, 1e-4, "slerp")
    assert torch.allclose(near_a, a, atol=1e-2)
    mid = blend_embeddings(a, b, 0.5, "slerp")
    assert torch.allclose(mid.norm(dim=-1), (a.norm(dim=-1) + b.norm(dim=-1)) / 2, atol=1e-5)


def test_conditioning_blends_toward_the_next_prompt(encoder):
    base = encoder.conditioning("a cat", "blurry", None, None, 0.0)
    assert torch.equal(base[0], encoder.encode("a cat"))
    cond, uncond = encoder.conditioning("a cat", "blurry", "a dog", "dark", 0.25, mode="lerp")
    assert cond.shape == uncond.shape
    expected = torch.lerp(encoder.encode("a cat"), encoder.encode("a dog"), 0.25)
    assert torch.allclose(cond, expected)
    slerped, _ = encoder.conditioning("a cat", "blurry", "a dog", None, 0.25, mode="slerp")
    assert not torch.equal(slerped, cond)


def test_clip_skip_two_differs(tiny_models):
    from anim.diffusion.conditioning import PromptEncoder

    skip1 = PromptEncoder.from_models(tiny_models).encode("a cat")
    skip2 = PromptEncoder.from_models(tiny_models, clip_skip=2).encode("a cat")
    assert skip2.shape == skip1.shape and not torch.equal(skip1, skip2)
