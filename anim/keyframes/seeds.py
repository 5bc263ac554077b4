"""Per-frame seeds following Deforum's seed behaviours, reproducible from the preset seed."""

from __future__ import annotations

import numbers

import numpy as np

from anim.errors import ScheduleError
from anim.keyframes.schedule import parse_schedule

SEED_SPACE = 2**32  # seeds live in [0, 2**32 - 1]
BEHAVIORS = ("iter", "fixed", "random", "ladder", "alternate", "schedule")


def _random_seeds(seed: int, count: int) -> np.ndarray:
    """``count`` seeds drawn from np.random.default_rng(seed): same preset seed, same draws."""
    return np.random.default_rng(seed % SEED_SPACE).integers(0, SEED_SPACE, size=count, dtype=np.int64)


def _offsets(behavior: str, frames: np.ndarray, iter_n: int) -> np.ndarray:
    """Offset from the preset seed per frame for the arithmetic behaviours."""
    if behavior == "iter":
        return frames // iter_n                       # +1 every iter_n frames
    if behavior == "fixed":
        return np.zeros_like(frames)
    if behavior == "ladder":
        return frames // 2 + 2 * (frames % 2)         # +2, -1, +2, -1 ...: 0, 2, 1, 3, 2, 4 ...
    return frames % 2                                  # alternate: 0, 1, 0, 1 ...


def _scheduled(schedule, seed: int, max_frames: int) -> np.ndarray:
    """Seeds from a schedule (truncated to int); -1 draws a reproducible random seed for that frame."""
    if schedule is None:
        raise ScheduleError("seed_schedule: seed behaviour 'schedule' needs a seed schedule")
    values = parse_schedule(schedule, "seed_schedule").evaluate(max_frames, seed)
    if np.any(np.abs(values) >= 2**62):
        frame = int(np.flatnonzero(np.abs(values) >= 2**62)[0])
        raise ScheduleError(f"seed_schedule: seed {values[frame]!r} at frame {frame} is out of range")
    seeds = np.trunc(values).astype(np.int64)
    return np.where(seeds == -1, _random_seeds(seed, max_frames), seeds)


def resolve_seeds(behavior: str, seed: int, max_frames: int, *, schedule=None, iter_n: int = 1) -> np.ndarray:
    """int64 seed per frame in [0, 2**32-1] for a Deforum seed behaviour.

    iter: seed + frame // iter_n; fixed: seed; random: frame 0 is the seed, later frames are drawn
    from np.random.default_rng(seed); ladder: seed, +2, +1, +3, +2, ...; alternate: seed, +1, seed,
    +1, ...; schedule: a schedule of seeds, where -1 means a reproducible random seed."""
    if behavior not in BEHAVIORS:
        raise ScheduleError(f"seed_behavior: unknown behaviour {behavior!r}; valid: {', '.join(BEHAVIORS)}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ScheduleError(f"seed: must be a whole number, got {seed!r}")
    if isinstance(max_frames, bool) or not isinstance(max_frames, numbers.Integral) or max_frames < 0:
        raise ScheduleError(f"seed: max_frames must be a whole number >= 0, got {max_frames!r}")
    if isinstance(iter_n, bool) or not isinstance(iter_n, numbers.Integral) or iter_n < 1:
        raise ScheduleError(f"seed_iter_N: must be a whole number >= 1, got {iter_n!r}")
    seed = int(seed) % SEED_SPACE
    frames = np.arange(int(max_frames), dtype=np.int64)
    if behavior == "random":
        seeds = _random_seeds(seed, int(max_frames))
        seeds[:1] = seed
    elif behavior == "schedule":
        seeds = _scheduled(schedule, seed, int(max_frames))
    else:
        seeds = seed + _offsets(behavior, frames, int(iter_n))
    return np.mod(seeds, SEED_SPACE).astype(np.int64)
