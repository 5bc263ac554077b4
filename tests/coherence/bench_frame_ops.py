"""Time one frame's coherence chain at 512x512 (not a test): python tests/coherence/bench_frame_ops.py [device]"""

import sys
import time

import torch

from anim.coherence import (
    add_noise,
    apply_contrast,
    match_histograms,
    prepare_reference,
    unsharp_mask,
)
from anim.motion.camera2d import camera_matrix_2d, warp_perspective


def frame_step(prev, reference, seed, space="lab", noise_type="gaussian"):
    matrix = camera_matrix_2d(0.5, 1.02, 1.5, -0.5, 0.5, 0.5, 512, 512)
    x = warp_perspective(prev, matrix, "replicate")
    x = match_histograms(x, reference, space)
    x = apply_contrast(x, 1.02)
    x = unsharp_mask(x, 0.3, 5, 1.0, 0.0)
    return add_noise(x, 0.02, seed, noise_type)


def time_ms(fn, device, repeats=10):
    """Best of ``repeats`` single runs (robust to other load on a shared machine)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best * 1000


def main():
    device = torch.device(sys.argv[1] if len(sys.argv) > 1 else "cpu")
    gen = torch.Generator().manual_seed(0)
    prev = torch.rand(1, 3, 512, 512, generator=gen).to(device)
    reference = torch.rand(1, 3, 512, 512, generator=gen).to(device)
    matrix = camera_matrix_2d(0.5, 1.02, 1.5, -0.5, 0.5, 0.5, 512, 512)
    prepared = prepare_reference(reference, "lab")
    parts = {
        "warp": lambda: warp_perspective(prev, matrix),
        "match lab": lambda: match_histograms(prev, reference, "lab"),
        "match lab, prepared ref": lambda: match_histograms(prev, prepared, "lab"),
        "match hsv": lambda: match_histograms(prev, reference, "hsv"),
        "match rgb": lambda: match_histograms(prev, reference, "rgb"),
        "contrast": lambda: apply_contrast(prev, 1.02),
        "unsharp": lambda: unsharp_mask(prev, 0.3),
        "noise gaussian": lambda: add_noise(prev, 0.02, 1),
        "noise perlin": lambda: add_noise(prev, 0.02, 1, "perlin"),
        "chain (lab, gaussian)": lambda: frame_step(prev, reference, 1),
        "chain (lab, perlin)": lambda: frame_step(prev, reference, 1, noise_type="perlin"),
        "chain (lab prepared)": lambda: frame_step(prev, prepared, 1),
    }
    print(f"device {device}, torch threads {torch.get_num_threads()}")
    for name, fn in parts.items():
        print(f"{name:24s} {time_ms(fn, device):8.1f} ms")


if __name__ == "__main__":
    main()
