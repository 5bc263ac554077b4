"""Seed behaviours: exact sequences, reproducible randomness, range."""

import numpy as np
import pytest

from anim.errors import ScheduleError
from anim.keyframes import resolve_seeds


@pytest.mark.parametrize("behavior, kwargs, expected", [
    ("iter", {}, [10, 11, 12, 13, 14, 15]),
    ("iter", {"iter_n": 2}, [10, 10, 11, 11, 12, 12]),
    ("iter", {"iter_n": 4}, [10, 10, 10, 10, 11, 11]),
    ("fixed", {}, [10] * 6),
    ("ladder", {}, [10, 12, 11, 13, 12, 14]),
    ("alternate", {}, [10, 11, 10, 11, 10, 11]),
    ("schedule", {"schedule": "0:(5), 3:(t*2)"}, [5, 5, 5, 6, 8, 10]),
    ("schedule", {"schedule": "0:(s), 2:(s+0.9)"}, [10, 10, 10, 10, 10, 10]),   # truncated
    ("schedule", {"schedule": {0: 1, 4: 3}}, [1, 1, 2, 2, 3, 3]),
])
def test_behaviours(behavior, kwargs, expected):
    seeds = resolve_seeds(behavior, 10, 6, **kwargs)
    assert seeds.dtype == np.int64 and seeds.tolist() == expected


def test_random_is_reproducible_and_starts_at_the_seed():
    a, b = resolve_seeds("random", 42, 50), resolve_seeds("random", 42, 50)
    assert a.tolist() == b.tolist() and a[0] == 42
    assert resolve_seeds("random", 43, 50)[1:].tolist() != a[1:].tolist()
    assert len(set(a.tolist())) == 50 and a.min() >= 0 and a.max() <= 2**32 - 1
    rng = np.random.default_rng(42).integers(0, 2**32, size=50, dtype=np.int64)
    assert a[1:].tolist() == rng[1:].tolist()


def test_schedule_minus_one_is_reproducible_random():
    seeds = resolve_seeds("schedule", 7, 4, schedule="0:(-1), 1:(-1), 2:(3)")
    again = resolve_seeds("schedule", 7, 4, schedule="0:(-1), 1:(-1), 2:(3)")
    random = np.random.default_rng(7).integers(0, 2**32, size=4, dtype=np.int64)
    assert seeds.tolist() == again.tolist() == [random[0], random[1], 3, 3]


def test_wraps_into_32_bit_range():
    assert resolve_seeds("iter", 2**32 - 1, 3).tolist() == [2**32 - 1, 0, 1]
    assert resolve_seeds("fixed", -1, 2).tolist() == [2**32 - 1] * 2
    assert resolve_seeds("schedule", 0, 1, schedule="0:(-2)").tolist() == [2**32 - 2]


def test_zero_frames():
    assert resolve_seeds("random", 1, 0).shape == (0,)


@pytest.mark.parametrize("args, kwargs, message", [
    (("bogus", 1, 3), {}, "unknown behaviour 'bogus'; valid: iter, fixed, random, ladder, alternate, schedule"),
    (("schedule", 1, 3), {}, "needs a seed schedule"),
    (("iter", 1, 3), {"iter_n": 0}, "seed_iter_N"),
    (("iter", 1.5, 3), {}, "seed: must be a whole number"),
    (("schedule", 1, 3), {"schedule": "0:(1/0)"}, "seed_schedule: value is inf"),
])
def test_errors(args, kwargs, message):
    with pytest.raises(ScheduleError, match=message.replace("(", r"\(").replace(")", r"\)")):
        resolve_seeds(*args, **kwargs)
