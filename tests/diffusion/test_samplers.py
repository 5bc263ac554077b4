"""Sampler table: every name builds a scheduler from SD1.5's config; unknown names list valid ones."""

from __future__ import annotations

import pytest

from anim.diffusion.samplers import (
    SAMPLERS,
    a1111_label,
    make_scheduler,
    sampler_names,
    seed_scheduler,
)
from anim.errors import ModelError
from anim.models.configs import SD15_SCHEDULER


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_every_sampler_constructs_and_schedules(name):
    scheduler = make_scheduler(name, SD15_SCHEDULER)
    assert type(scheduler).__name__ == SAMPLERS[name].scheduler
    scheduler.set_timesteps(4)
    assert len(scheduler.timesteps) >= 4
    assert a1111_label(name)


def test_required_names_and_labels():
    expected = {"euler": "Euler", "euler_a": "Euler a", "dpmpp_2m": "DPM++ 2M",
                "dpmpp_2m_karras": "DPM++ 2M Karras", "dpmpp_sde": "DPM++ SDE", "ddim": "DDIM",
                "lms": "LMS", "heun": "Heun", "unipc": "UniPC", "dpm2": "DPM2", "dpm2_a": "DPM2 a",
                "pndm": "PLMS", "lcm": "LCM", "dpmpp_2m_sde": "DPM++ 2M SDE"}
    for name, label in expected.items():
        assert a1111_label(name) == label


def test_karras_variant_uses_karras_sigmas():
    assert make_scheduler("dpmpp_2m_karras", SD15_SCHEDULER).config.use_karras_sigmas
    assert not make_scheduler("dpmpp_2m", SD15_SCHEDULER).config.use_karras_sigmas


def test_every_call_builds_its_own_scheduler():
    """Schedulers hold per-run state: two calls never share an instance (no hidden process state)."""
    a, b = make_scheduler("euler", SD15_SCHEDULER), make_scheduler("euler", dict(SD15_SCHEDULER))
    assert a is not b and a.config == b.config
    a.set_timesteps(4)
    b.set_timesteps(10)
    assert len(a.timesteps) == 4 and len(b.timesteps) == 10


def test_unknown_sampler_lists_valid_names():
    with pytest.raises(ModelError, match="unknown sampler 'nope'; valid: euler, euler_a") as info:
        make_scheduler("nope", SD15_SCHEDULER)
    assert all(name in str(info.value) for name in sampler_names())
    with pytest.raises(ModelError):
        a1111_label("nope")


def test_sde_sampler_gets_a_seed():
    scheduler = make_scheduler("dpmpp_sde", SD15_SCHEDULER)
    seed_scheduler(scheduler, 42)
    assert scheduler.noise_sampler_seed == 42
