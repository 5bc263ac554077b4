"""Cadence: which frames are diffused, and the in-betweens made from their two neighbouring keys."""
from __future__ import annotations

import torch

from anim.motion.camera import Camera
from anim.motion.flow import estimate_flow, warp_by_flow


def key_frames(max_frames: int, cadence: int) -> list[int]:
    """Frames the model renders with cadence N: every Nth frame and the last one."""
    return sorted(set(range(0, max_frames, max(1, cadence))) | {max_frames - 1})


def tween(camera: Camera, before: torch.Tensor, after: torch.Tensor, rows_between: list[dict], position: int,
          use_flow: bool = False, flow_method: str = "dis", follow=None) -> torch.Tensor:
    """An in-between frame: the key before moved forward, the key after moved back, crossfaded.

    `rows_between` are the rows of the frames after the first key up to the second key (inclusive);
    `position` (1..len-1) is the in-between's place. With `use_flow` the two keys follow the optical
    flow between them instead of the camera motion. `follow` (hybrid video): a pair of functions that move the
    camera-moved key before / key after further, by the input video's motion to this frame.
    """
    weight = position / len(rows_between)
    if use_flow:
        forward = estimate_flow(before, after, flow_method)  # before(x) ~ after(x + forward(x))
        backward = estimate_flow(after, before, flow_method)
        moved_before = warp_by_flow(before, -weight * forward)
        moved_after = warp_by_flow(after, -(1.0 - weight) * backward)
    else:
        moved_before = camera.move_many(before, rows_between[:position])
        moved_after = camera.move_many(after, rows_between[position:], inverse=True)
        if follow is not None:
            moved_before, moved_after = follow[0](moved_before), follow[1](moved_after)
    return torch.lerp(moved_before, moved_after, weight)
