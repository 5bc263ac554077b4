"""SDXL conditioning and diffusion: two text encoders, pooled embeddings, diffusers' SDXL (ControlNet) pipelines.

SD1.5 goes through anim.diffusion.conditioning / anim.diffusion.diffuse unchanged; the engine picks these classes when the
loaded model is SDXL. Token handling (A1111 weights, 75-token chunks, BREAK, emphasis) is inherited
from PromptEncoder; only the hidden states differ: the penultimate layer of both encoders (no final
layer norm, as SDXL was trained), concatenated along the channels, plus the second encoder's pooled
projection of the first chunk. SDXL's two tokenizers share one vocabulary and differ in padding only
(tokenizer_2 pads with "!" = id 0), so each chunk is tokenized once and the second encoder's copy is
re-padded with tokenizer_2's pad id after its end-of-text, as diffusers' encode_prompt does.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from anim.diffusion.conditioning import PromptEncoder
from anim.diffusion.crossframe import CrossFrame, CrossFrameInput
from anim.diffusion.diffuse import ControlInput, PipelineCaller, check_controlnet_fits
from anim.diffusion.fusion import FusionInput
from anim.diffusion.masked import MaskInput
from anim.diffusion.noise import NoiseSettings
from anim.diffusion.samplers import make_scheduler
from anim.errors import ModelError


@dataclass(frozen=True)
class XLCond:
    """One side (cond or uncond) of SDXL conditioning: token embeddings and the pooled embedding."""

    embeds: torch.Tensor  # (1, 77*k, D1 + D2)
    pooled: torch.Tensor  # (1, projection_dim)


class SDXLPromptEncoder(PromptEncoder):
    """A1111-style prompt encoding for SDXL; `conditioning()` returns (XLCond, XLCond)."""

    def __init__(self, tokenizer, text_encoder, text_encoder_2, device, dtype, *, tokenizer_2=None,
                 **kwargs) -> None:
        super().__init__(tokenizer, text_encoder, device, dtype, **kwargs)
        self.text_encoder_2 = text_encoder_2
        self.pad_2 = self.eos if tokenizer_2 is None else _second_pad_id(tokenizer, tokenizer_2)
        self._pooled: dict = {}

    @classmethod
    def from_models(cls, models, **kwargs) -> SDXLPromptEncoder:
        return cls(models.tokenizer, models.text_encoder, models.text_encoder_2, models.device, models.dtype,
                   tokenizer_2=models.tokenizer_2, **kwargs)

    def second_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """The chunks' ids for the second encoder: every position after a chunk's first EOS holds pad_2."""
        is_eos = (ids == self.eos).int()
        after_end = (is_eos.cumsum(-1) - is_eos) > 0
        return ids.masked_fill(after_end, self.pad_2)

    def _hidden_states(self, ids: torch.Tensor) -> torch.Tensor:
        """Penultimate hidden states of both encoders (each with its own padding), concatenated."""
        self.encoder_calls += 1
        first = self.text_encoder(ids, output_hidden_states=True).hidden_states[-2]
        second = self.text_encoder_2(self.second_ids(ids), output_hidden_states=True).hidden_states[-2]
        return torch.cat([first, second], dim=-1)

    def pooled(self, prompt: str) -> torch.Tensor:
        """The second encoder's pooled projection of the prompt's first chunk (cached per prompt)."""
        hit = self._pooled.get(prompt)
        if hit is None:
            ids = torch.tensor([self.chunks(prompt)[0][0]], dtype=torch.long, device=self.device)
            with torch.no_grad():
                hit = self.text_encoder_2(self.second_ids(ids)).text_embeds.to(self.dtype)
            self._pooled[prompt] = hit
        return hit

    def conditioning(self, frame_prompt: str, frame_negative: str | None, blend_prompt: str | None = None,
                     blend_negative: str | None = None, blend_weight: float = 0.0,
                     mode: str = "lerp", clip_skip: int | None = None) -> tuple[XLCond, XLCond]:
        """Embeddings as PromptEncoder makes them (blends included), with pooled embeddings blended alike.
        `clip_skip` is accepted and has no effect: SDXL always uses its penultimate layers (A1111 likewise)."""
        cond, uncond = super().conditioning(frame_prompt, frame_negative, blend_prompt, blend_negative,
                                            blend_weight, mode)
        pooled, pooled_neg = self.pooled(frame_prompt), self.pooled(frame_negative or "")
        if blend_prompt is not None and blend_weight and blend_weight > 0:
            negative = frame_negative if blend_negative is None else blend_negative
            pooled = torch.lerp(pooled, self.pooled(blend_prompt), float(blend_weight))
            pooled_neg = torch.lerp(pooled_neg, self.pooled(negative or ""), float(blend_weight))
        return XLCond(cond, pooled), XLCond(uncond, pooled_neg)


def _second_pad_id(tokenizer, tokenizer_2) -> int:
    """tokenizer_2's pad id, after checking it shares tokenizer 1's vocabulary (true of every SDXL model)."""
    same = (len(tokenizer_2) == len(tokenizer) and tokenizer_2.bos_token_id == tokenizer.bos_token_id
            and tokenizer_2.eos_token_id == tokenizer.eos_token_id)
    if not same:
        raise ModelError("the SDXL model's two tokenizers have different vocabularies; anim needs them to "
                         "share one (as SDXL's do); check tokenizer/ and tokenizer_2/ of the model")
    pad = tokenizer_2.pad_token_id
    return tokenizer_2.eos_token_id if pad is None else int(pad)


class SDXLDiffuser(PipelineCaller):
    """One SDXL txt2img/img2img call (optionally with ControlNet units, cross-frame attention, latent fusion) on
    shared components; same call signature as anim.diffusion.diffuse.Diffuser."""

    def __init__(self, models) -> None:
        from diffusers import (
            StableDiffusionXLImg2ImgPipeline,
            StableDiffusionXLPipeline,
        )

        if not models.is_sdxl:
            raise ModelError(f"model {models.name} is not SDXL; use anim.diffusion.diffuse.Diffuser")
        self.models = models
        parts = dict(vae=models.vae, text_encoder=models.text_encoder, text_encoder_2=models.text_encoder_2,
                     tokenizer=models.tokenizer, tokenizer_2=models.tokenizer_2, unet=models.unet,
                     scheduler=make_scheduler("euler", models.scheduler_config))
        self.txt2img = StableDiffusionXLPipeline(**parts)
        self.img2img = StableDiffusionXLImg2ImgPipeline(**parts, requires_aesthetics_score=False)
        for pipe in (self.txt2img, self.img2img):
            pipe.set_progress_bar_config(disable=True)
        self._control_pipes: dict[tuple, object] = {}
        self.cross_frame: CrossFrame | None = None  # installed on the UNet the first time a call asks for it
        self.calls = 0

    def __call__(self, *, init: torch.Tensor | None, cond: XLCond, uncond: XLCond, denoise: float,
                 cfg_scale: float, steps: int, sampler: str, seed: int, width: int, height: int,
                 controls: list[ControlInput] | None = None, cross_frame: CrossFrameInput | None = None,
                 fusion: FusionInput | None = None, noise: NoiseSettings | None = None,
                 eta: float = 0.0, ancestral_eta: float = 1.0, mask: MaskInput | None = None) -> torch.Tensor:
        """(1,3,H,W) float32 in [0,1] on the device; init None -> txt2img, else img2img at strength=denoise;
        `controls`, `cross_frame`, `fusion`, `noise`, `eta` and `mask` mean what they mean to Diffuser."""
        embeds = {"prompt_embeds": cond.embeds, "negative_prompt_embeds": uncond.embeds,
                  "pooled_prompt_embeds": cond.pooled, "negative_pooled_prompt_embeds": uncond.pooled}
        return self._call(embeds, init=init, denoise=denoise, cfg_scale=cfg_scale, steps=steps, sampler=sampler,
                          seed=seed, width=width, height=height, controls=controls, cross_frame=cross_frame,
                          fusion=fusion, noise=noise, eta=eta, ancestral_eta=ancestral_eta, mask=mask)

    def _build_control_pipe(self, img2img: bool, nets: list):
        """A StableDiffusionXLControlNet(Img2Img)Pipeline sharing our components (MultiControlNet for several),
        after checking every ControlNet was made for SDXL."""
        from diffusers import (
            StableDiffusionXLControlNetImg2ImgPipeline,
            StableDiffusionXLControlNetPipeline,
        )

        for net in nets:
            check_controlnet_fits(net, self.models)
        net = nets[0] if len(nets) == 1 else nets
        if img2img:
            pipe = StableDiffusionXLControlNetImg2ImgPipeline(**self.txt2img.components, controlnet=net,
                                                              requires_aesthetics_score=False)
        else:
            pipe = StableDiffusionXLControlNetPipeline(**self.txt2img.components, controlnet=net)
        pipe.set_progress_bar_config(disable=True)
        return pipe
