"""Frame-loop benchmark: the naive diffusers loop vs anim's engine path, measured in one process.

Standard workload (--size full): 512x512, SD1.5 UNet/VAE/CLIP and an SD1.5 ControlNet built from the
default configs with random weights (no download), 20 steps x denoise 0.6, CFG 7, euler_a, 2D warp +
LAB colour match, 24 timed frames after warm-up. --size small runs the same shape of work on the tiny
models on a CPU (a smoke test for CI). Results: printed, and saved as JSON under bench/results/.

  python bench/frames.py                 # full workload (needs a GPU to finish in reasonable time)
  python bench/frames.py --size small    # tiny models, CPU, seconds
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PROMPT, NEGATIVE = "a lighthouse on a cliff at sunset, oil painting, detailed", "blurry, lowres"
PEAK_BF16_TFLOPS = {"H200": 989.4, "H100 SXM": 989.4, "H100 PCIe": 756.0, "H100": 989.4, "A100": 312.0,
                    "L40S": 362.1, "RTX 4090": 165.2}  # dense, vendor data sheets


def build_models(size: str, device: torch.device, dtype: torch.dtype):
    """(SDModels, ControlNetModel): SD1.5 architecture with random weights, or the tiny models."""
    from diffusers import ControlNetModel

    from anim.models import load_controlnet, load_models

    if size == "small":
        models = load_models("tiny", device=str(device))
        return models, load_controlnet("tiny", device=device, dtype=models.dtype)
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from anim.models import SDModels
    from anim.models.configs import arch_config_dir

    cfg = arch_config_dir("sd15")
    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_config(json.loads((cfg / "unet" / "config.json").read_text()))
    vae = AutoencoderKL.from_config(json.loads((cfg / "vae" / "config.json").read_text()))
    text = CLIPTextModel(CLIPTextConfig.from_pretrained(cfg / "text_encoder"))
    controlnet = ControlNetModel.from_unet(unet)
    for module in (unet, vae, text, controlnet):
        module.to(device, dtype).eval()
    models = SDModels(unet=unet, vae=vae, text_encoder=text, tokenizer=CLIPTokenizer.from_pretrained(cfg / "tokenizer"),
                      scheduler_config=json.loads((cfg / "scheduler" / "scheduler_config.json").read_text()),
                      device=device, dtype=dtype, name="sd15-random", model_hash="random")
    return models, controlnet


def camera(width: int, height: int) -> np.ndarray:
    """The workload's per-frame 2D camera (rotate 0.5 deg, zoom 1.01 about the centre, 2 px right)."""
    from anim.motion.camera2d import camera_matrix_2d

    return camera_matrix_2d(0.5, 1.01, 2.0, 0.0, 0.5, 0.5, width, height)


def control_image(width: int, height: int) -> np.ndarray:
    """A synthetic edge map (what canny would give) as the ControlNet input."""
    img = np.zeros((height, width, 3), np.uint8)
    for k in range(0, min(width, height) // 2, max(4, width // 32)):
        img[k:height - k:max(1, height - 2 * k - 1), k:width - k] = 255
        img[k:height - k, k:width - k:max(1, width - 2 * k - 1)] = 255
    return img


def run_naive(models, controlnet, frames: int, warmup: int, args, out_dir: Path):
    """What people write: the diffusers ControlNet img2img pipeline per frame, PIL in and out, OpenCV on the CPU."""
    import cv2
    from diffusers import (
        EulerAncestralDiscreteScheduler,
        StableDiffusionControlNetImg2ImgPipeline,
    )
    from PIL import Image
    from skimage.exposure import match_histograms

    pipe = StableDiffusionControlNetImg2ImgPipeline(
        vae=models.vae, text_encoder=models.text_encoder, tokenizer=models.tokenizer, unet=models.unet,
        controlnet=controlnet, scheduler=EulerAncestralDiscreteScheduler.from_config(models.scheduler_config),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    w, h = args.width, args.height
    ctrl = Image.fromarray(control_image(w, h))
    matrix = camera(w, h)
    frame = np.full((h, w, 3), 128, np.uint8)
    reference_lab = None
    started = None
    for i in range(warmup + frames):
        if i == warmup:
            sync(models.device)
            started = time.perf_counter()
        init = cv2.warpPerspective(frame, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if reference_lab is not None:
            lab = match_histograms(cv2.cvtColor(init, cv2.COLOR_RGB2LAB), reference_lab, channel_axis=-1)
            init = cv2.cvtColor(lab.clip(0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)
        result = pipe(prompt=PROMPT, negative_prompt=NEGATIVE, image=Image.fromarray(init), control_image=ctrl,
                      strength=args.denoise, num_inference_steps=args.steps, guidance_scale=args.cfg,
                      generator=torch.Generator("cpu").manual_seed(i), output_type="pil").images[0]
        frame = np.asarray(result)
        if reference_lab is None:
            reference_lab = cv2.cvtColor(frame, cv2.COLOR_RGB2LAB)
        Image.fromarray(frame).save(out_dir / f"naive_{i:06d}.png")
    sync(models.device)
    return frames / (time.perf_counter() - started), frame


class Timers:
    """Device-side timing of modules: CUDA events (no sync in the loop) or wall clock on the CPU."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.events: dict[str, list] = defaultdict(list)
        self.cpu: dict[str, float] = defaultdict(float)

    def wrap_module(self, module, name: str) -> None:
        starts: list = []
        module.register_forward_pre_hook(lambda *_: starts.append(self._mark()))
        module.register_forward_hook(lambda *_: self._close(name, starts.pop()))

    def wrap_method(self, owner, attr: str, name: str) -> None:
        original = getattr(owner, attr)

        def timed(*a, **k):
            start = self._mark()
            result = original(*a, **k)
            self._close(name, start)
            return result
        setattr(owner, attr, timed)

    def _mark(self):
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def _close(self, name: str, start) -> None:
        if self.cuda:
            self.events[name].append((start, self._mark()))
        else:
            self.cpu[name] += time.perf_counter() - start

    def totals_ms(self) -> dict[str, float]:
        if self.cuda:
            torch.cuda.synchronize()
            return {k: sum(a.elapsed_time(b) for a, b in v) for k, v in self.events.items()}
        return {k: v * 1000 for k, v in self.cpu.items()}

    def reset(self) -> None:
        self.events.clear()
        self.cpu.clear()


def run_anim(models, controlnet, frames: int, warmup: int, args, out_dir: Path, timers: Timers | None = None):
    """anim's path: cached embeddings, tensors on the device, warp/colour on the device, background writer."""
    from anim.coherence import match_histograms, prepare_reference
    from anim.diffusion.conditioning import PromptEncoder
    from anim.diffusion.diffuse import ControlInput, Diffuser
    from anim.media.png import FrameWriter
    from anim.media.tensors import from_uint8_hwc, to_uint8_hwc
    from anim.motion.camera2d import warp_perspective

    encoder = PromptEncoder(models.tokenizer, models.text_encoder, models.device, models.dtype)
    diffuser = Diffuser(models)
    w, h, dev = args.width, args.height, models.device
    ctrl = from_uint8_hwc(control_image(w, h), dev)
    matrix = camera(w, h)
    frame = torch.full((1, 3, h, w), 128 / 255, device=dev)
    reference = None
    writer = FrameWriter()
    phase: dict[str, float] = defaultdict(float)
    started = None
    for i in range(warmup + frames):
        if i == warmup:
            sync(dev)
            started = time.perf_counter()
            phase.clear()
            if timers:
                timers.reset()
        t0 = time.perf_counter()
        init = warp_perspective(frame, matrix, border="replicate")
        if reference is not None:
            init = match_histograms(init, reference, "lab")
        t1 = time.perf_counter()
        cond, uncond = encoder.pair(PROMPT, NEGATIVE)
        frame = diffuser(init=init, cond=cond, uncond=uncond, denoise=args.denoise, cfg_scale=args.cfg,
                         steps=args.steps, sampler="euler_a", seed=i, width=w, height=h,
                         controls=[ControlInput(controlnet, ctrl, 1.0, 0.0, 1.0)])
        t2 = time.perf_counter()
        if reference is None:
            reference = prepare_reference(frame, "lab")
        image_u8 = to_uint8_hwc(frame)  # the one device->host copy per frame
        t3 = time.perf_counter()
        writer.submit(i, out_dir / f"anim_{i:06d}.png", image_u8, "bench", {"frame": i})
        phase["warp/coherence (host view)"] += t1 - t0
        phase["device->host copy"] += t3 - t2
        phase["write hand-off"] += time.perf_counter() - t3
    sync(dev)
    elapsed = time.perf_counter() - started
    writer.close()
    return frames / elapsed, frame, {k: v * 1000 / frames for k, v in phase.items()}


def apply_settings(models, controlnet, args) -> dict:
    """The preset's `performance:` switches for the anim path (anim.models.performance), with what they cost."""
    from anim.models.performance import apply_performance
    from anim.preset import Performance

    perf = Performance(channels_last=args.channels_last, fuse_qkv=args.fuse_qkv, compile=args.compile,
                       compile_mode=args.compile_mode, low_vram=args.low_vram)
    spent = apply_performance(models, perf, controlnets=[controlnet])
    return {**perf.model_dump(), "apply_s": spent}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def count_flops(models, controlnet, args, out_dir: Path) -> float:
    """FLOPs of one anim frame (torch.utils.flop_counter), for TFLOP/s and MFU."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        run_anim(models, controlnet, 1, 0, args, out_dir)
    return float(counter.get_total_flops())


def device_label(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu-{torch.get_num_threads()}threads"


def peak_tflops(label: str) -> float | None:
    for key, value in PEAK_BF16_TFLOPS.items():
        if key.lower() in label.lower():
            return value
    return None


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=("full", "small"), default="full")
    parser.add_argument("--frames", type=int, default=None, help="timed frames (default 24 full, 3 small)")
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    flag = argparse.BooleanOptionalAction
    parser.add_argument("--channels-last", action=flag, default=True, help="anim path: channels_last (CUDA)")
    parser.add_argument("--fuse-qkv", action=flag, default=True, help="anim path: fused QKV projections (CUDA)")
    parser.add_argument("--compile", action=flag, default=False, help="anim path: torch.compile the UNet")
    parser.add_argument("--compile-mode", default="default",
                        help="torch.compile mode; reduce-overhead captures CUDA graphs")
    parser.add_argument("--low-vram", action=flag, default=False,
                        help="anim path: VAE tiling/slicing, attention slicing, model CPU offload (CUDA)")
    args = parser.parse_args(argv)
    small = args.size == "small"
    args.width = args.height = 64 if small else 512
    args.steps, args.denoise, args.cfg = (4 if small else 20), 0.6, 7.0
    frames = args.frames or (3 if small else 24)
    warmup = args.warmup if args.warmup is not None else (1 if small else 3)
    device = torch.device("cuda" if torch.cuda.is_available() and not small else "cpu")
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    models, controlnet = build_models(args.size, device, dtype)
    work = Path(tempfile.mkdtemp(prefix="anim-bench-"))
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    naive_fps, naive_last = run_naive(models, controlnet, frames, warmup, args, work)
    naive_peak_gib = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    flops = count_flops(models, controlnet, args, work)  # on the stock modules (compiled ones hide their ops)
    settings = apply_settings(models, controlnet, args)  # after the naive loop: it runs the stock modules
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    timers = Timers(device)
    timers.wrap_module(models.unet, "unet")
    timers.wrap_module(controlnet, "controlnet")
    timers.wrap_method(models.vae, "encode", "vae encode")
    timers.wrap_method(models.vae, "decode", "vae decode")
    started = time.perf_counter()
    run_anim(models, controlnet, 1, 0, args, work)  # the first frame: torch.compile compiles here
    settings["first_frame_s"] = time.perf_counter() - started
    anim_fps, anim_last, phases = run_anim(models, controlnet, frames, warmup, args, work, timers)
    split = {k: v / frames for k, v in timers.totals_ms().items()}
    label = device_label(device)
    peak = peak_tflops(label)
    achieved = flops * anim_fps / 1e12
    result = {
        "device": label, "size": args.size, "frames": frames, "naive_fps": naive_fps, "anim_fps": anim_fps,
        "ratio": anim_fps / naive_fps, "ms_per_frame": {**split, **phases},
        "flops_per_frame": flops, "tflops": achieved, "mfu": (achieved / peak) if peak else None,
        "peak_vram_gib": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None,
        "naive_peak_vram_gib": naive_peak_gib, "settings": settings,
        "output_shapes": [list(naive_last.shape), list(to_hwc_shape(anim_last))],
    }
    print(f"device {label}: naive {naive_fps:.3f} frames/s, anim {anim_fps:.3f} frames/s, ratio {result['ratio']:.2f}x")
    print(f"  settings {settings}")
    for key, value in result["ms_per_frame"].items():
        print(f"  {key:<28} {value:9.2f} ms/frame")
    mfu = f", MFU {result['mfu'] * 100:.1f}% of {peak} TFLOP/s" if peak else ""
    print(f"  FLOPs/frame {flops / 1e12:.3f} T, achieved {achieved:.2f} TFLOP/s{mfu}")
    save_result(args.out, f"{label}-{args.size}", result)
    return result


def save_result(out_dir: Path, stem: str, result: dict) -> Path:
    """Write `result` as out_dir/<stem>.json (stem made file-name safe) and say where."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / (re.sub(r"[^A-Za-z0-9._-]+", "_", stem) + ".json")
    path.write_text(json.dumps(result, indent=1))
    print(f"wrote {path}")
    return path


def to_hwc_shape(frame: torch.Tensor) -> tuple:
    return tuple(frame.shape[-2:]) + (frame.shape[1],)


if __name__ == "__main__":
    main()
