"""Model short hashes (A1111 style: first 10 hex chars of the file's sha256), cached on disk.

Hashing a multi-GB checkpoint takes seconds, so results are remembered per (path, size, mtime)
in <cache>/hashes.json; a changed file gets a new entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from anim.models.configs import cache_root

CHUNK_BYTES = 1 << 20
CACHE_MIN_BYTES = 64 << 20  # below this, hashing is faster than bookkeeping
UNET_WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors",
                     "diffusion_pytorch_model.safetensors.index.json", "diffusion_pytorch_model.bin")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def _cache_file() -> Path:
    return cache_root() / "hashes.json"


def _read_cache() -> dict:
    try:
        return json.loads(_cache_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _write_cache(entries: dict) -> None:
    """Replace the cache file atomically; a lost concurrent update only costs a re-hash later."""
    target = _cache_file()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".hashes-", dir=target.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(entries, handle, indent=1, sort_keys=True)
        os.replace(tmp, target)
    except OSError:
        pass  # a read-only cache only makes hashing slower


def short_hash(path: Path) -> str:
    """A1111's short model hash: first 10 hex chars of sha256 of the whole file."""
    path = Path(path).resolve()
    stat = path.stat()
    if stat.st_size < CACHE_MIN_BYTES:
        return sha256_file(path)[:10]
    key = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    entries = _read_cache()
    if key not in entries:
        entries[key] = sha256_file(path)
        _write_cache(entries)
    return entries[key][:10]


def folder_hash(folder: Path) -> str:
    """Stable hash of a diffusers folder: the short hash of its UNet weights file."""
    unet = Path(folder) / "unet"
    for name in UNET_WEIGHT_NAMES:
        if (unet / name).is_file():
            return short_hash(unet / name)
    return short_hash(unet / "config.json") if (unet / "config.json").is_file() else "0000000000"


def _stored_lora_hash(header: bytes) -> str:
    """The sshs_model_hash a safetensors header's metadata records (kohya's trainer writes it), if it is hex."""
    try:
        metadata = json.loads(header).get("__metadata__") or {}
    except (ValueError, AttributeError):
        return ""
    value = str(metadata.get("sshs_model_hash", "")) if isinstance(metadata, dict) else ""
    return value.lower() if value and all(ch in "0123456789abcdefABCDEF" for ch in value) else ""


def lora_hash(path: Path) -> str:
    """A1111's LoRA short hash (the infotext's "Lora hashes"): 12 hex chars of the file's recorded sshs_model_hash,
    else of the sha256 of a .safetensors' tensor data after its header (kohya's addnet hash), else of the whole
    file. "" when the file cannot be read."""
    path = Path(path)
    try:
        if path.suffix.lower() != ".safetensors":
            return sha256_file(path)[:12]
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            length = int.from_bytes(handle.read(8), "little")
            if length > path.stat().st_size - 8:  # not a safetensors header: hash the whole file
                return sha256_file(path)[:12]
            header = handle.read(length)
            stored = _stored_lora_hash(header)
            if stored:
                return stored[:12]
            for block in iter(lambda: handle.read(CHUNK_BYTES), b""):
                digest.update(block)
        return digest.hexdigest()[:12]
    except (OSError, ValueError, OverflowError):
        return ""
