"""CPU weights in memory of their own, so the same weights always give the same bits."""
from __future__ import annotations

import torch


def own_memory(module: torch.nn.Module) -> None:
    """Copy CPU weights into fresh tensors.

    Memory-mapped safetensors leave weights at arbitrary byte offsets, and CPU kernels pick SIMD paths
    by alignment, so the same weights could give different bits depending on how they were loaded.
    """
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            tensor.data = tensor.data.clone()
