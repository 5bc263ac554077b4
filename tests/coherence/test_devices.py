"""Same results on an accelerator as on the CPU (skipped where there is none)."""

import numpy as np
import pytest
import torch

from anim.coherence import add_noise, apply_contrast, match_histograms, unsharp_mask
from anim.media.tensors import quantize_u8
from anim.motion.camera2d import camera_matrix_2d, warp_perspective

DEVICES = [d for d in ("cuda", "mps") if (d == "cuda" and torch.cuda.is_available())
           or (d == "mps" and torch.backends.mps.is_available())]
pytestmark = pytest.mark.skipif(not DEVICES, reason="no accelerator")


@pytest.fixture(params=DEVICES or ["none"])
def device(request):
    return torch.device(request.param)


def test_chain_matches_cpu(device):
    image = torch.rand(1, 3, 64, 48, generator=torch.Generator().manual_seed(0))
    reference = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    matrix = camera_matrix_2d(2.0, 1.03, 1.5, -0.5, 0.5, 0.5, 48, 64)

    def chain(x, ref):
        x = warp_perspective(x, matrix, "wrap")
        x = match_histograms(x, ref, "lab")
        x = unsharp_mask(apply_contrast(x, 1.1), 0.5, threshold=2.0)
        return add_noise(x, 0.05, seed=3)

    on_cpu = chain(image, reference)
    on_device = chain(image.to(device), reference.to(device))
    assert on_device.device.type == device.type
    assert (on_device.cpu() - on_cpu).abs().mean() < 1e-4


@pytest.mark.parametrize("noise_type", ["gaussian", "perlin"])
def test_noise_identical_across_devices(device, noise_type):
    image = torch.full((1, 3, 16, 16), 0.5)
    cpu = add_noise(image, 0.3, seed=9, noise_type=noise_type)
    torch.testing.assert_close(add_noise(image.to(device), 0.3, seed=9, noise_type=noise_type).cpu(), cpu)


def test_quantize_identical_across_devices(device):
    image = torch.rand(1, 3, 8, 8)
    assert torch.equal(quantize_u8(image.to(device)).cpu(), quantize_u8(image))
    assert np.isfinite(quantize_u8(image.to(device)).cpu().numpy()).all()
