"""The flicker metric: warp error (Lai et al. 2018), as a function and a CLI.

For consecutive output frames O_t, O_{t+1} (RGB in [0, 1]) with forward flow f_t (t -> t+1) and
occlusion mask M_t (forward/backward consistency, anim.motion.flow.consistency_mask), both from
the *source* frames when given (the input video of a video-to-video render), else from the output:

    E_t = sum_x M_t(x) * ||O_t(x) - O_{t+1}(x + f_t(x))||^2 / sum_x M_t(x)

(squared error summed over the three channels, as in the paper), and E = mean_t E_t. Lower is
steadier. A pair whose mask is empty scores 0. Without a source, two identical frames score
exactly 0 (their flow is the identity by definition).

Speed: flow is estimated on frames downscaled so the longer side is at most ``flow_max_side``
(256 by default) and scaled back up (bilinear, vectors multiplied by the factor); mask, warp and
error are computed at full resolution. Flow at that size is a little smoother but ~5x cheaper.

CLI: ``python -m anim.metrics warp-error VIDEO [--source SRC] [--csv OUT] [--method dis]`` prints
one line ``warp_error=<float>``; errors print one line and exit with code 2. The CLI runs torch
with one thread (see ``main``); about 3 s for 100 frames of 512x512 on two CPU cores.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from anim.errors import AnimError, InputError
from anim.motion.flow import consistency_mask, estimate_flow, warp_by_flow

FLOW_MAX_SIDE = 256


# ---- pure parts -------------------------------------------------------------------------------


def to_unit_tensor(frame: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, H, W) float32 in [0, 1] on the CPU."""
    return torch.from_numpy(np.array(frame)).permute(2, 0, 1)[None].to(torch.float32) / 255.0  # a copy: writable


def masked_pair_error(current: torch.Tensor, warped_next: torch.Tensor, mask: torch.Tensor) -> float:
    """sum M * ||current - warped_next||^2 (channels summed) / sum M; 0.0 for an empty mask."""
    weight = float(mask.sum())
    if weight == 0.0:
        return 0.0
    squared = ((current - warped_next) ** 2).sum(dim=1, keepdim=True)
    return float((squared * mask).sum()) / weight


def flow_scale(height: int, width: int, max_side: int | None) -> float:
    """Factor (<= 1) by which frames are shrunk for flow estimation."""
    if not max_side or max(height, width) <= max_side:
        return 1.0
    return max_side / max(height, width)


def _resize(frame: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area-resize an image (identity when the size already matches)."""
    import cv2

    if frame.shape[:2] == (height, width):
        return frame
    return cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)


def _upscale_flow(flow: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear upscale of an (h, w, 2) flow to (height, width), vectors scaled to match."""
    import cv2

    h, w = flow.shape[:2]
    if (h, w) == (height, width):
        return flow
    big = cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR)
    big[..., 0] *= width / w
    big[..., 1] *= height / h
    return big


def pair_flow_and_mask(a: np.ndarray, b: np.ndarray, height: int, width: int, method: str,
                       max_side: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Forward flow a->b at (height, width) and its consistency mask, estimated at reduced size."""
    scale = flow_scale(height, width, max_side)
    small_h, small_w = max(1, round(height * scale)), max(1, round(width * scale))
    a_small, b_small = _resize(a, small_h, small_w), _resize(b, small_h, small_w)
    fwd = _upscale_flow(estimate_flow(a_small, b_small, method), height, width)
    bwd = _upscale_flow(estimate_flow(b_small, a_small, method), height, width)
    return fwd, consistency_mask(fwd, bwd)


def warp_error(frames: Sequence[np.ndarray], source: Sequence[np.ndarray] | None = None, *, method: str = "dis",
               flow_max_side: int | None = FLOW_MAX_SIDE) -> tuple[float, list[float]]:
    """(mean warp error, per-pair errors E_0 .. E_{T-2}) of uint8 (H, W, 3) RGB ``frames``; flow and
    mask come from ``source`` (same length or longer, resized to the frames' size) when given."""
    frames = list(frames)
    if len(frames) < 2:
        raise InputError(f"warp error needs at least 2 frames, got {len(frames)}")
    height, width = frames[0].shape[:2]
    for index, frame in enumerate(frames):
        if frame.dtype != np.uint8 or frame.shape != (height, width, 3):
            raise InputError(f"frame {index}: expected ({height}, {width}, 3) uint8, got {frame.dtype} {frame.shape}")
    if source is not None:
        source = list(source)
        if len(source) < len(frames):
            raise InputError(f"source has {len(source)} frames, fewer than the video's {len(frames)}")
    per_frame = []
    for t in range(len(frames) - 1):
        current, following = frames[t], frames[t + 1]
        if source is None and np.array_equal(current, following):
            per_frame.append(0.0)
            continue
        ref_a, ref_b = (current, following) if source is None else (
            _resize(source[t], height, width), _resize(source[t + 1], height, width))
        fwd, mask = pair_flow_and_mask(ref_a, ref_b, height, width, method, flow_max_side)
        warped = warp_by_flow(to_unit_tensor(following), fwd)
        per_frame.append(masked_pair_error(to_unit_tensor(current), warped, torch.from_numpy(mask)[None, None]))
    return float(np.mean(per_frame)), per_frame


# ---- CLI --------------------------------------------------------------------------------------


def write_csv(path: Path, per_frame: Sequence[float]) -> None:
    """Per-pair errors as CSV ``frame,warp_error`` (frame t = the pair t -> t+1), atomically."""
    from anim.media.files import atomic_write_text

    lines = ["frame,warp_error"] + [f"{t},{value:.10g}" for t, value in enumerate(per_frame)]
    atomic_write_text(Path(path), "\n".join(lines) + "\n")


def _read_video(path: str) -> list[np.ndarray]:
    from anim.media.video import read_frames

    return list(read_frames(Path(path)))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m anim.metrics", description="Temporal metrics of a video.")
    sub = parser.add_subparsers(dest="command", required=True)
    warp = sub.add_parser("warp-error", help="flicker: flow-warped, occlusion-masked frame difference")
    warp.add_argument("video", help="video file to score")
    warp.add_argument("--source", help="source video (flow and occlusion are computed on it)")
    warp.add_argument("--csv", help="write per-frame errors to this CSV (frame,warp_error)")
    warp.add_argument("--allow-pickle", action="store_true",
                      help="let --method raft read torchvision's RAFT checkpoint (a .pth pickle, weights_only)")
    warp.add_argument("--method", default="dis", help="flow method: dis (default), farneback, raft")
    warp.add_argument("--flow-max-side", type=int, default=FLOW_MAX_SIDE,
                      help=f"longer side of the frames used for flow (default {FLOW_MAX_SIDE}; 0 = full size)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (0, or 2 for an error the user can fix)."""
    args = build_parser().parse_args(argv)
    if args.method.startswith("raft") and not args.allow_pickle:
        print(f"error: --method {args.method} reads torchvision's RAFT checkpoint, a .pth pickle; add --allow-pickle "
              "to load it (with torch's weights_only loader) or use dis", file=sys.stderr)
        return 2
    # The per-pair tensor ops are small: one intra-op thread costs ~1 ms a pair and avoids the
    # OpenMP stalls (10x and worse) that two threads suffer when the CPU is shared.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        frames = _read_video(args.video)
        source = _read_video(args.source) if args.source else None
        mean, per_frame = warp_error(frames, source, method=args.method, flow_max_side=args.flow_max_side or None)
        if args.csv:
            write_csv(Path(args.csv), per_frame)
    except AnimError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    finally:
        torch.set_num_threads(threads)
    print(f"warp_error={mean:.10g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
