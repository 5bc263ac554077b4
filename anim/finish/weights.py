"""Reading the finishing models' weights: .safetensors always, pickles only with allow_pickle and then weights-only."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from anim.errors import ModelError
from anim.finish.job import PICKLE_SUFFIXES, check_weights_file


def read_weights(key: str, path: Path, allow_pickle: bool, what: str) -> Any:
    """The tensors of a weights file (a dict, possibly nested as its trainer saved it); ModelError naming `key`."""
    import torch

    path = Path(path)
    check_weights_file(key, path, allow_pickle, what)
    try:
        if path.suffix.lower() in PICKLE_SUFFIXES:
            return torch.load(str(path), map_location="cpu", weights_only=True)
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    except Exception as exc:  # torch/safetensors raise many types for a damaged or foreign file
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:120]
        raise ModelError(f"{key}: {path} is not a readable weights file ({first}); expected {what}") from None


def pick_device(device: str) -> Any:
    """The preset's device ('auto': cuda, then mps, then cpu), as the renders pick it."""
    from anim.models.load import resolve_device

    return resolve_device(device)
