"""low_vram: VAE tiling/slicing, attention slicing and model offload hooks; a render with them matches one without."""
from __future__ import annotations

import pytest
import torch

from anim.diffusion.diffuse import Diffuser
from anim.models.performance import enable_low_memory, offload_models

ARGS = {"denoise": 0.6, "cfg_scale": 7.0, "steps": 2, "sampler": "euler_a", "seed": 5, "width": 64, "height": 64}


def _models(tmp_path):
    from anim.models import load_models

    return load_models("tiny", device="cpu", cache_dir=tmp_path)


def _render(models):
    from anim.diffusion.conditioning import PromptEncoder

    cond, uncond = PromptEncoder.from_models(models).pair("a cabin", "blurry")
    init = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)).to(models.device)
    return Diffuser(models)(init=init, cond=cond, uncond=uncond, **ARGS)


def test_offload_hooks_chain_the_models_and_keep_results(tmp_path):
    plain = _render(_models(tmp_path))
    models = _models(tmp_path)
    hooks = offload_models(models, device="cpu")  # the hook mechanics, with the host as the "device"
    assert len(hooks) == 3 and all(hasattr(m, "_hf_hook") for m in (models.text_encoder, models.unet, models.vae))
    assert torch.equal(_render(models), plain)


def test_low_memory_on_cpu_slices_without_offload(tmp_path):
    models = _models(tmp_path)
    assert enable_low_memory(models) == []  # offload is for CUDA only
    assert models.vae.use_tiling and models.vae.use_slicing
    out = _render(models)
    assert out.shape == (1, 3, 64, 64) and torch.isfinite(out).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="GPU only: peak VRAM with and without offload")
def test_offload_lowers_peak_vram_on_cuda(tmp_path):
    from anim.models import load_models

    def peak(offload: bool) -> int:
        models = load_models("tiny", device="cuda", cache_dir=tmp_path)
        if offload:
            offload_models(models)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        _render(models)
        return torch.cuda.max_memory_allocated()

    assert peak(True) < peak(False)
