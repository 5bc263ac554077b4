"""Cross-frame attention on the tiny model: off is bit-identical, on changes a frame toward its anchor's
attention, anchors' features are what the size formula says, ControlNet residuals stay with the frame."""
from __future__ import annotations

import torch

from anim.diffusion.crossframe import CrossFrameInput, attn1_tokens_channels, encode_anchor


def call(diffuser, encoder, **extra):
    cond, uncond = encoder.pair("a cabin in the woods", "")
    torch.manual_seed(0)
    init = torch.rand(1, 3, 64, 64)
    return diffuser(init=init, cond=cond, uncond=uncond, denoise=0.6, cfg_scale=7.0, steps=4, sampler="euler_a",
                    seed=3, width=64, height=64, **extra)


def test_weight_zero_is_identical_and_weight_one_differs(diffuser, encoder):
    plain = call(diffuser, encoder)
    anchor = encode_anchor(diffuser.models.vae, torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1)))
    assert torch.equal(call(diffuser, encoder, cross_frame=CrossFrameInput(0.0, [anchor], 3)), plain)
    on = call(diffuser, encoder, cross_frame=CrossFrameInput(1.0, [anchor], 3))
    assert float((on - plain).abs().max()) > 1e-3
    assert torch.equal(call(diffuser, encoder, cross_frame=CrossFrameInput(1.0, [anchor], 3)), on)  # repeatable
    assert torch.equal(call(diffuser, encoder), plain)  # and off again afterwards


def test_recorded_features_match_the_size_formula(diffuser, encoder):
    anchor = encode_anchor(diffuser.models.vae, torch.rand(1, 3, 64, 64))
    call(diffuser, encoder, cross_frame=CrossFrameInput(0.5, [anchor, anchor], 3))
    per_row = sum(t * c for t, c in attn1_tokens_channels(dict(diffuser.models.unet.config), 64, 64))
    element = torch.empty((), dtype=diffuser.models.unet.dtype).element_size()
    assert diffuser.cross_frame.state.peak_bytes == 2 * 2 * per_row * element  # 2 anchors x (cond, uncond)


def test_sd15_feature_memory_per_anchor_and_step():
    """The note's numbers: SD1.5's self-attention inputs of one anchor for one step, fp16, with CFG."""
    sd15 = {"block_out_channels": [320, 640, 1280, 1280], "layers_per_block": 2,
            "down_block_types": ["CrossAttnDownBlock2D"] * 3 + ["DownBlock2D"],
            "up_block_types": ["UpBlock2D"] + ["CrossAttnUpBlock2D"] * 3}
    mib = {size: 2 * 2 * sum(t * c for t, c in attn1_tokens_channels(sd15, size, size)) / 2**20 for size in (512, 768)}
    print(f"cross-frame features per anchor per step (SD1.5, fp16, CFG): {mib[512]:.1f} MiB at 512², "
          f"{mib[768]:.1f} MiB at 768²")
    # by hand: 2 down + 3 up self-attentions at each of the three attention levels, one in the mid block
    by_hand = {512: 5 * (64 * 64 * 320 + 32 * 32 * 640 + 16 * 16 * 1280) + 8 * 8 * 1280,
               768: 5 * (96 * 96 * 320 + 48 * 48 * 640 + 24 * 24 * 1280) + 12 * 12 * 1280}
    assert mib == {size: 2 * 2 * n / 2**20 for size, n in by_hand.items()}


def test_controlnet_residuals_are_not_given_to_the_anchor_passes(diffuser, encoder, tiny_models, anim_cache):
    from anim.diffusion.diffuse import ControlInput
    from anim.models import load_controlnet

    net = load_controlnet("tiny", device=tiny_models.device, dtype=tiny_models.dtype, cache_dir=anim_cache)
    control = [ControlInput(net, torch.rand(1, 3, 64, 64), weight=1.0)]
    anchor = encode_anchor(diffuser.models.vae, torch.rand(1, 3, 64, 64))
    plain = call(diffuser, encoder, controls=control)
    on = call(diffuser, encoder, controls=control, cross_frame=CrossFrameInput(1.0, [anchor], 3))
    assert torch.isfinite(on).all() and not torch.equal(on, plain)


def test_the_processor_blends_the_anchor_attention_by_the_weight(tiny_models):
    """Anchor == own input: attention over it is the layer's own self-attention (the output is unchanged); another
    anchor: lerp(own, attention over the anchor, weight), computed here by hand."""
    from anim.diffusion.crossframe import CrossFrameProcessor, _State

    attn = next(m for n, m in tiny_models.unet.named_modules() if n.endswith("attn1"))
    base = attn.processor.base if isinstance(attn.processor, CrossFrameProcessor) else attn.processor
    hidden = torch.randn(2, 16, attn.to_q.in_features, generator=torch.Generator().manual_seed(0))
    anchor = torch.randn(2, 16, attn.to_q.in_features, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        own = base(attn, hidden)
        state = _State(mode="use", weight=1.0, features={"x": [hidden]})
        assert torch.allclose(CrossFrameProcessor("x", base, state)(attn, hidden), own, atol=1e-5)
        state = _State(mode="use", weight=0.3, features={"x": [anchor]})
        q, k, v = attn.to_q(hidden), attn.to_k(anchor), attn.to_v(anchor)
        heads = attn.heads
        split = lambda x: x.view(2, -1, heads, x.shape[-1] // heads).transpose(1, 2)  # noqa: E731
        scores = torch.softmax(split(q) @ split(k).transpose(-1, -2) / (q.shape[-1] // heads) ** 0.5, dim=-1)
        by_hand = attn.to_out[0]((scores @ split(v)).transpose(1, 2).reshape(2, -1, q.shape[-1]))
        expected = own + 0.3 * (by_hand - own)
        assert torch.allclose(CrossFrameProcessor("x", base, state)(attn, hidden), expected, atol=1e-5)
