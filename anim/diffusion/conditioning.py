"""Prompt conditioning the A1111 way: weighted tokens, 75-token chunks, BREAK, emphasis with mean restore.

A prompt becomes (1, 77*k, D): k chunks of BOS + 75 tokens + EOS, each encoded by CLIP on its own and
concatenated along the sequence. Token weights scale their embeddings; the chunk's mean is then
restored (A1111's "Original" emphasis). Embeddings are cached per prompt string.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable

import torch

CHUNK_TOKENS = 75  # tokens per chunk, without BOS/EOS
COMMA_BACKTRACK = 20  # a full chunk breaks after its last comma if that is within this many tokens
CACHE_SIZE = 256
BREAK = ("BREAK", -1.0)
LORA_KEY_ATTR = "anim_lora_key"  # anim.models.loras tags the text encoder with its adapter weights

Chunk = tuple[list[int], list[float]]


def _default_parser() -> Callable[[str], list[tuple[str, float]]]:
    """anim.keyframes.parse_weighted, imported late (the keyframes package must not depend on us)."""
    from anim.keyframes import parse_weighted

    return parse_weighted


class PromptEncoder:
    """Turns prompt text into CLIP conditioning tensors; one instance per text encoder."""

    def __init__(self, tokenizer, text_encoder, device, dtype, *, clip_skip: int = 1,
                 parser: Callable[[str], list[tuple[str, float]]] | None = None, cache_size: int = CACHE_SIZE):
        self.tokenizer, self.text_encoder = tokenizer, text_encoder
        self.device, self.dtype = torch.device(device), dtype
        self.clip_skip = max(1, int(clip_skip))
        self._parser = parser
        self._cache: OrderedDict = OrderedDict()
        self.cache_size = cache_size
        self.bos, self.eos = tokenizer.bos_token_id, tokenizer.eos_token_id
        self.comma = tokenizer.convert_tokens_to_ids(",</w>")
        self.encoder_calls = 0  # text encoder forward passes, for tests and timing

    @classmethod
    def from_models(cls, models, **kwargs) -> PromptEncoder:
        """An encoder for the (first) text encoder of loaded SDModels."""
        return cls(models.tokenizer, models.text_encoder, models.device, models.dtype, **kwargs)

    # ------------------------------------------------------------ tokens

    def parse(self, prompt: str) -> list[tuple[str, float]]:
        """A1111 attention syntax -> [(text, weight)], BREAK as ('BREAK', -1.0)."""
        if self._parser is None:
            self._parser = _default_parser()
        return self._parser(prompt)

    def token_ids(self, text: str) -> list[int]:
        """Token ids of plain text, without BOS/EOS and without truncation."""
        return list(self.tokenizer(text, add_special_tokens=False, truncation=False, verbose=False)["input_ids"])

    def chunks(self, prompt: str) -> list[Chunk]:
        """Split a weighted prompt into padded 77-token chunks of (ids, weights), A1111 style."""
        chunks: list[Chunk] = []
        tokens: list[int] = []
        weights: list[float] = []
        last_comma = -1
        for text, weight in self.parse(prompt):
            if (text, weight) == BREAK:
                chunks.append(self._close(tokens, weights))
                tokens, weights, last_comma = [], [], -1
                continue
            for tok in self.token_ids(text):
                if tok == self.comma:
                    last_comma = len(tokens)
                elif len(tokens) == CHUNK_TOKENS and last_comma != -1 and CHUNK_TOKENS - last_comma <= COMMA_BACKTRACK:
                    cut = last_comma + 1  # move the words after the last comma to the next chunk
                    chunks.append(self._close(tokens[:cut], weights[:cut]))
                    tokens, weights, last_comma = tokens[cut:], weights[cut:], -1
                if len(tokens) == CHUNK_TOKENS:
                    chunks.append(self._close(tokens, weights))
                    tokens, weights, last_comma = [], [], -1
                tokens.append(tok)
                weights.append(float(weight))
        if tokens or not chunks:
            chunks.append(self._close(tokens, weights))
        return chunks

    def _close(self, tokens: list[int], weights: list[float]) -> Chunk:
        """Wrap a chunk in BOS/EOS and pad it with EOS (weight 1) to 77 tokens."""
        pad = CHUNK_TOKENS - len(tokens)
        ids = [self.bos, *tokens] + [self.eos] * (pad + 1)
        return ids, [1.0, *weights] + [1.0] * (pad + 1)

    # ------------------------------------------------------------ encoding

    def encode(self, prompt: str) -> torch.Tensor:
        """(1, 77*k, D) conditioning for a prompt; the cached tensor is returned on repeats (do not modify it)."""
        key = (prompt, getattr(self.text_encoder, LORA_KEY_ATTR, None), self.clip_skip)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        value = self._encode_uncached(prompt)
        self._cache[key] = value
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return value

    def _encode_uncached(self, prompt: str) -> torch.Tensor:
        """Encode every chunk in one batch, apply emphasis per chunk, concatenate along the sequence."""
        chunks = self.chunks(prompt)
        ids = torch.tensor([c[0] for c in chunks], dtype=torch.long, device=self.device)
        weights = torch.tensor([c[1] for c in chunks], dtype=torch.float32, device=self.device)
        with torch.no_grad():
            z = self._hidden_states(ids).float()
        z = apply_emphasis(z, weights)
        return z.reshape(1, -1, z.shape[-1]).to(self.dtype)

    def _hidden_states(self, ids: torch.Tensor) -> torch.Tensor:
        """CLIP token embeddings: last layer, or the clip_skip-th from last with the final layer norm."""
        self.encoder_calls += 1
        if self.clip_skip == 1:
            return self.text_encoder(ids)[0]
        out = self.text_encoder(ids, output_hidden_states=True)
        body = getattr(self.text_encoder, "text_model", self.text_encoder)  # transformers 4.x wraps, v5 not
        return body.final_layer_norm(out.hidden_states[-self.clip_skip])

    def empty(self) -> torch.Tensor:
        """The empty prompt's single chunk, used to pad shorter conditionings."""
        return self.encode("")

    # ------------------------------------------------------------ pairs and blends

    def pad_to(self, cond: torch.Tensor, length: int) -> torch.Tensor:
        """Append empty-prompt chunks until cond has `length` tokens."""
        missing = (length - cond.shape[1]) // self.empty().shape[1]
        if missing <= 0:
            return cond
        return torch.cat([cond, *[self.empty()] * missing], dim=1)

    def pad_pair(self, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pad two conditionings to the same number of chunks."""
        length = max(a.shape[1], b.shape[1])
        return self.pad_to(a, length), self.pad_to(b, length)

    def pair(self, prompt: str, negative: str | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(cond, uncond) for a prompt and its negative, padded to equal length."""
        return self.pad_pair(self.encode(prompt), self.encode(negative or ""))

    def blend(self, a_cond: torch.Tensor, b_cond: torch.Tensor, weight: float, mode: str = "lerp") -> torch.Tensor:
        """Mix two conditionings (weight 0 -> a, 1 -> b), 'lerp' or per-token 'slerp'."""
        a, b = self.pad_pair(a_cond, b_cond)
        return blend_embeddings(a, b, weight, mode)

    def conditioning(self, frame_prompt: str, frame_negative: str | None, blend_prompt: str | None = None,
                     blend_negative: str | None = None, blend_weight: float = 0.0,
                     mode: str = "lerp", clip_skip: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """A frame's (cond, uncond): its own prompts, blended toward blend_prompt by blend_weight; `clip_skip`
        (A1111's, the frame's) is used from this call on."""
        if clip_skip is not None:
            self.clip_skip = max(1, int(clip_skip))
        cond, uncond = self.pair(frame_prompt, frame_negative)
        if blend_prompt is None or not blend_weight or blend_weight <= 0:
            return cond, uncond
        negative = frame_negative if blend_negative is None else blend_negative
        b_cond, b_uncond = self.pair(blend_prompt, negative)
        cond = self.blend(cond, b_cond, blend_weight, mode)
        uncond = self.blend(uncond, b_uncond, blend_weight, mode)
        return self.pad_pair(cond, uncond)


def apply_emphasis(z: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """A1111 emphasis per chunk: z *= w per token, then rescale so the chunk's mean is unchanged."""
    out = []
    for chunk, w in zip(z, weights):
        if bool(torch.all(w == 1.0)):
            out.append(chunk)  # bit-exact: (x:1.0) and plain x give the same tensor
            continue
        original_mean = chunk.mean()
        scaled = chunk * w[:, None]
        out.append(scaled * (original_mean / scaled.mean()))
    return torch.stack(out)


def blend_embeddings(a: torch.Tensor, b: torch.Tensor, weight: float, mode: str = "lerp") -> torch.Tensor:
    """Blend equal-shape embeddings: linear, or spherical per token vector (magnitudes interpolated)."""
    w = float(weight)
    if w <= 0.0:
        return a
    if w >= 1.0:
        return b
    if mode == "lerp":
        return torch.lerp(a, b, w)
    if mode != "slerp":
        raise ValueError(f"unknown blend mode {mode!r}; valid: lerp, slerp")
    return _slerp(a.float(), b.float(), w).to(a.dtype)


def _slerp(a: torch.Tensor, b: torch.Tensor, w: float, eps: float = 1e-6) -> torch.Tensor:
    """Spherical interpolation of each token vector's direction, linear in its length."""
    na, nb = a.norm(dim=-1, keepdim=True), b.norm(dim=-1, keepdim=True)
    ua, ub = a / na.clamp_min(eps), b / nb.clamp_min(eps)
    cos = (ua * ub).sum(-1, keepdim=True).clamp(-1.0, 1.0)
    omega = torch.acos(cos)
    sin = torch.sin(omega)
    near = sin.abs() < eps  # (anti)parallel vectors: fall back to lerp of the directions
    safe_sin = torch.where(near, torch.ones_like(sin), sin)
    wa = torch.where(near, torch.full_like(sin, 1 - w), torch.sin((1 - w) * omega) / safe_sin)
    wb = torch.where(near, torch.full_like(sin, w), torch.sin(w * omega) / safe_sin)
    direction = wa * ua + wb * ub
    return direction * torch.lerp(na, nb, w)
