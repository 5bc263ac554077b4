"""A1111's LoRA short hash for the infotext's "Lora hashes": kohya's recorded hash, else the tensor data's."""
from __future__ import annotations

import hashlib

import torch
from safetensors.torch import save_file

from anim.models.hashing import lora_hash


def test_lora_hash_is_a1111s(tmp_path):
    tensors = {"w": torch.arange(6, dtype=torch.float32)}
    save_file(tensors, tmp_path / "a.safetensors")
    save_file(tensors, tmp_path / "b.safetensors", metadata={"ss_output_name": "b"})  # another header, same data
    data = (tmp_path / "a.safetensors").read_bytes()
    addnet = hashlib.sha256(data[8 + int.from_bytes(data[:8], "little"):]).hexdigest()[:12]
    assert lora_hash(tmp_path / "a.safetensors") == lora_hash(tmp_path / "b.safetensors") == addnet
    save_file(tensors, tmp_path / "c.safetensors", metadata={"sshs_model_hash": "ABCDEF0123456789"})
    assert lora_hash(tmp_path / "c.safetensors") == "abcdef012345"
    save_file(tensors, tmp_path / "d.safetensors", metadata={"sshs_model_hash": "<script>"})  # not hex: computed
    assert lora_hash(tmp_path / "d.safetensors") == addnet
    torch.save(tensors, tmp_path / "e.pt")
    assert lora_hash(tmp_path / "e.pt") == hashlib.sha256((tmp_path / "e.pt").read_bytes()).hexdigest()[:12]
    assert lora_hash(tmp_path / "missing.safetensors") == ""
