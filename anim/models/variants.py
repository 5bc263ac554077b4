"""Weight-file variants of diffusers folders: `*.fp16.safetensors` instead of `*.safetensors`.

`from_pretrained(..., variant="fp16")` downloads only the fp16 files, so a folder or hub cache can
hold nothing else; loading it needs the same `variant`. We read it off the files present, per component.
"""

from __future__ import annotations

import re
from pathlib import Path

PREFERRED = ("fp16", "bf16")  # when a folder holds several variants and no plain weights


def _weight_file(stem: str, pickles: bool) -> re.Pattern:
    """Weights (single or sharded) or their shard index, with an optional variant between name and suffix."""
    suffix = r"(safetensors|bin)" if pickles else r"safetensors"
    variant = r"(?:\.(?P<v1>[\w-]+?))?"
    return re.compile(rf"^{re.escape(stem)}(?:{variant}(?:-\d+-of-\d+)?\.{suffix}"
                      rf"|\.{suffix}\.index(?:\.(?P<v2>[\w-]+))?\.json)$")


def weights_variant(folder: Path, stem: str, *, pickles: bool = False) -> str | None:
    """The variant to load `folder`'s `stem` weights with: None when plain weights exist, else the one present.

    stem is diffusers' `diffusion_pytorch_model` or transformers' `model`; pickles counts `.bin` files too.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return None
    pattern = _weight_file(stem, pickles)
    found = {m["v1"] or m["v2"] for m in map(pattern.match, (p.name for p in folder.iterdir())) if m}
    if not found or None in found:
        return None
    return next((v for v in PREFERRED if v in found), min(found))


def variant_kwargs(folder: Path, stem: str = "diffusion_pytorch_model", *, pickles: bool = False) -> dict:
    """{'variant': ...} for from_pretrained when `folder` holds only variant weights, else {}."""
    variant = weights_variant(folder, stem, pickles=pickles)
    return {"variant": variant} if variant else {}
