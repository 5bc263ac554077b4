"""Cross-frame attention: each frame's UNet self-attention also looks at anchor frames (Text2Video-Zero,
Rerender-A-Video), so textures and shapes stay where the anchor had them.

At every denoising step, before the UNet sees the frame's latent, each anchor image's clean latent is noised to
the same timestep (fixed noise from the frame's seed) and run through the UNet once; its self-attention inputs
(per layer) are kept for that step only. In the frame's own pass, every self-attention output becomes
``lerp(own, attention(q_own, k_anchor, v_anchor), weight)``; the anchors' keys/values are those of all anchors
concatenated. The anchors are frames as their PNGs hold them (frame 0, the previous key frame), so a resumed
render recomputes exactly what an uninterrupted one used: nothing lives only in memory across frames.

Cost: one extra UNet pass per anchor per step. Memory: the anchors' self-attention inputs of one step
(``CrossFrame.feature_bytes``). With weight 0 nothing is installed or run: frames are bit-identical.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

RESIDUAL_KWARGS = ("down_block_additional_residuals", "mid_block_additional_residual",
                   "down_intrablock_additional_residuals")  # ControlNet's: the anchors' passes go without


@dataclass
class CrossFrameInput:
    """What one diffusion call needs: the weight, the anchors' clean latents (1, 4, h, w), and the noise seed."""

    weight: float
    anchor_latents: list[torch.Tensor]
    seed: int


@dataclass
class _State:
    """Shared by the hook and the processors of one UNet during one call."""

    mode: str = "off"  # off | record (an anchor's pass) | use (the frame's pass)
    weight: float = 0.0
    anchors: list[torch.Tensor] = field(default_factory=list)
    noise: torch.Tensor | None = None
    scheduler: object = None
    features: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    peak_bytes: int = 0


def attend(attn, hidden_states: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    """The layer's attention of `hidden_states` (queries) over `context` (keys/values), output projected."""
    batch, _, _ = hidden_states.shape
    query, key, value = attn.to_q(hidden_states), attn.to_k(context), attn.to_v(context)
    head_dim = key.shape[-1] // attn.heads
    query, key, value = (x.view(batch, -1, attn.heads, head_dim).transpose(1, 2) for x in (query, key, value))
    out = F.scaled_dot_product_attention(query, key, value, dropout_p=0.0, is_causal=False)
    out = out.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim).to(query.dtype)
    return attn.to_out[1](attn.to_out[0](out))


class CrossFrameProcessor:
    """A self-attention processor: records its input in an anchor's pass, blends in anchor attention in the
    frame's pass, and is exactly the original processor otherwise."""

    def __init__(self, name: str, base, state: _State) -> None:
        self.name, self.base, self.state = name, base, state

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args,
                 **kwargs):
        state = self.state
        if state.mode == "record":
            state.features.setdefault(self.name, []).append(hidden_states)
        out = self.base(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
        anchors = state.features.get(self.name)
        if state.mode != "use" or not anchors or hidden_states.ndim != 3:
            return out
        context = torch.cat(anchors, dim=1)
        return torch.lerp(out, attend(attn, hidden_states, context), state.weight)


class CrossFrame:
    """Cross-frame attention on one UNet: processors on its self-attention layers and a pre-forward hook that
    runs the anchors' passes; inactive outside `CrossFrame.active`."""

    def __init__(self, unet) -> None:
        self.unet, self.state = unet, _State()
        for name, module in unet.named_modules():
            if name.endswith("attn1") and hasattr(module, "set_processor"):
                module.set_processor(CrossFrameProcessor(name, module.processor, self.state))
        unet.register_forward_pre_hook(self._before_unet, with_kwargs=True)

    @contextmanager
    def active(self, inputs: CrossFrameInput, scheduler):
        """Cross-frame attention for the UNet calls inside the block (one diffusion call)."""
        state = self.state
        first = inputs.anchor_latents[0]
        generator = torch.Generator("cpu").manual_seed(int(inputs.seed) + 1)  # not the frame's own noise
        state.noise = torch.randn(first.shape, generator=generator, dtype=torch.float32).to(first.device, first.dtype)
        state.weight, state.anchors, state.scheduler, state.mode = float(inputs.weight), inputs.anchor_latents, \
            scheduler, "use"
        try:
            yield self
        finally:
            state.mode, state.anchors, state.noise, state.scheduler, state.features = "off", [], None, None, {}

    def _before_unet(self, unet, args, kwargs):
        """Before the frame's UNet pass: each anchor's latent noised to this timestep, through the UNet, its
        self-attention inputs recorded (ControlNet residuals left out: they belong to the frame)."""
        state = self.state
        if state.mode != "use":
            return None
        sample = args[0] if args else kwargs["sample"]
        timestep = args[1] if len(args) > 1 else kwargs["timestep"]
        rest = {k: v for k, v in kwargs.items() if k not in RESIDUAL_KWARGS and k not in ("sample", "timestep")}
        state.features = {}
        state.mode = "record"
        try:
            for latent in state.anchors:
                t = torch.as_tensor(timestep, device=latent.device).reshape(-1)[:1]
                noisy = state.scheduler.add_noise(latent, state.noise, t)
                noisy = noisy.repeat(sample.shape[0], 1, 1, 1)
                noisy = state.scheduler.scale_model_input(noisy, timestep).to(sample.dtype)
                unet(noisy, timestep, *args[2:], **rest)
        finally:
            state.mode = "use"
        state.peak_bytes = max(state.peak_bytes, feature_bytes(state.features))
        return None


def feature_bytes(features: dict[str, list[torch.Tensor]]) -> int:
    """Bytes held by recorded anchor features (one step)."""
    return sum(t.numel() * t.element_size() for tensors in features.values() for t in tensors)


def attn1_tokens_channels(unet_config: dict, height: int, width: int) -> list[tuple[int, int]]:
    """(tokens, channels) of each self-attention layer of an SD-style UNet at an image size: the features one
    anchor keeps per step are sum(tokens * channels) per batch row (x2 with CFG)."""
    channels = list(unet_config["block_out_channels"])
    layers = int(unet_config["layers_per_block"])
    down_types = unet_config["down_block_types"]
    up_types = unet_config["up_block_types"]
    h, w = height // 8, width // 8
    out = []
    for level, kind in enumerate(down_types):
        if "CrossAttn" in kind:
            out += [((h >> level) * (w >> level), channels[level])] * layers
    depth = len(channels) - 1
    out.append(((h >> depth) * (w >> depth), channels[-1]))  # the mid block
    for level, kind in enumerate(up_types):
        if "CrossAttn" in kind:
            rank = depth - level
            out += [((h >> rank) * (w >> rank), channels[rank])] * (layers + 1)
    return out


def encode_anchor(vae, image: torch.Tensor) -> torch.Tensor:
    """An anchor image (1, 3, H, W) in [0, 1] as its clean latent (the distribution's mode: deterministic)."""
    with torch.inference_mode():
        pixels = (image.to(device=vae.device, dtype=vae.dtype) * 2.0 - 1.0)
        return vae.encode(pixels).latent_dist.mode() * vae.config.scaling_factor
