"""Diffusers schedulers for the sampler names of anim.preset.samplers (A1111 vocabulary).

Every call builds a new scheduler: schedulers hold per-run state (timesteps, step index, noise sampler),
so no instance is ever shared between frames, runs or the items of a lockstep batch.
"""

from __future__ import annotations

import functools
import inspect
from contextlib import contextmanager

from anim.errors import ModelError
from anim.preset.samplers import SAMPLERS, Sampler, sampler_names

__all__ = ["SAMPLERS", "Sampler", "a1111_label", "make_scheduler", "patched", "sampler_names", "seed_scheduler"]


def _row(name: str) -> Sampler:
    """The table row for `name`, or a ModelError listing the valid names."""
    row = SAMPLERS.get(str(name).lower())
    if row is None:
        raise ModelError(f"unknown sampler {name!r}; valid: {', '.join(SAMPLERS)}")
    return row


def a1111_label(name: str) -> str:
    """The sampler's name as A1111 writes it in PNG `parameters` (e.g. 'Euler a')."""
    return _row(name).label


def make_scheduler(name: str, scheduler_config: dict):
    """A new diffusers scheduler for `name`, built from the model's scheduler config."""
    import diffusers

    row = _row(name)
    cls = getattr(diffusers, row.scheduler)
    accepted = inspect.signature(cls.__init__).parameters
    config = {k: v for k, v in scheduler_config.items() if k in accepted}  # no 'unexpected key' warnings
    return cls.from_config({**config, **row.kwargs})


def seed_scheduler(scheduler, seed: int) -> None:
    """Seed schedulers that draw their own noise (DPM++ SDE's Brownian tree) so runs repeat exactly."""
    if hasattr(scheduler, "noise_sampler_seed"):
        scheduler.noise_sampler_seed = int(seed)
        scheduler.noise_sampler = None


@contextmanager
def patched(scheduler, name: str, make):
    """For the block, one call's scheduler method `name` is `make(original)`, with the original's signature
    (pipelines read step's signature to decide whether to pass `generator` and `eta`); put back after."""
    original = getattr(scheduler, name)
    setattr(scheduler, name, functools.wraps(original)(make(original)))
    try:
        yield scheduler
    finally:
        setattr(scheduler, name, original)
