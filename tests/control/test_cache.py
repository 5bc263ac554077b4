"""Control-map cache: atomic PNGs under control/<unit>/, reuse on re-run, invalidation on a new key."""
from __future__ import annotations

import os
from types import SimpleNamespace

import numpy as np

from anim.control.cache import MapCache, cache_key
from anim.control.units import ControlUnits
from tests.control.conftest import write_levels


def _key(**changes):
    base = {"source": {"path": "/x", "bytes": 1}, "annotator": {"name": "canny"}, "width": 8, "height": 4,
            "resize": "crop"}
    return cache_key(**{**base, **changes})


def test_map_cache_round_trip_and_key_change(tmp_path):
    cache = MapCache(tmp_path, 0, _key())
    assert cache.get(3) is None and (tmp_path / "control" / "0" / "key.json").is_file()
    image = np.arange(8 * 4 * 3, dtype=np.uint8).reshape(4, 8, 3)
    path = cache.put(3, image)
    assert path.name == "000003.png" and np.array_equal(cache.get(3), image)
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    again = MapCache(tmp_path, 0, _key())
    assert not again.cleared and np.array_equal(again.get(3), image)
    changed = MapCache(tmp_path, 0, _key(annotator={"name": "canny", "low_threshold": 5}))
    assert changed.cleared and changed.get(3) is None and not path.exists()


def test_wrong_size_or_broken_map_is_not_used(tmp_path):
    cache = MapCache(tmp_path, 1, _key())
    cache.put(0, np.zeros((2, 2, 3), np.uint8))
    cache.path(1).write_bytes(b"half a png")
    assert cache.get(0) is None and cache.get(1) is None


def _unit(folder, **extra):
    return SimpleNamespace(model="fake", input=str(folder), annotator="canny", annotator_model=None, resize="crop",
                           **extra)


def _units(tmp_path, spec):
    return ControlUnits([spec], run_dir=tmp_path / "run", width=32, height=32, device="cpu", dtype=None,
                        load_controlnet=lambda *a, **k: object())


def _frames(tmp_path):
    """Three frames with a bright square, so canny finds edges."""
    folder = write_levels(tmp_path / "in", ["0.png", "1.png", "2.png"], [20, 40, 60])
    for name in ("0.png", "1.png", "2.png"):
        from PIL import Image

        image = np.asarray(Image.open(folder / name)).copy()
        image[10:30, 10:40] = 250
        Image.fromarray(image).save(folder / name)
    return folder


ROW = {"cn0_weight": 1.0, "cn0_guidance_start": 0.0, "cn0_guidance_end": 1.0}


def test_rerun_reuses_maps_and_new_settings_annotate_again(tmp_path):
    folder = _frames(tmp_path)
    first = _units(tmp_path, _unit(folder))
    maps = [first.for_frame(i, ROW, None)[0].image for i in range(3)]
    assert first.annotate_calls == 3 and first.cache_hits == 0
    assert sorted(p.name for p in (tmp_path / "run" / "control" / "0").iterdir()) == [
        "000000.png", "000001.png", "000002.png", "key.json"]
    first.for_frame(5, ROW, None)  # past the end: the last map, from the cache
    assert first.annotate_calls == 3 and first.cache_hits == 1

    resumed = _units(tmp_path, _unit(folder))
    assert resumed.prepare(range(3)) == 0
    again = [resumed.for_frame(i, ROW, None)[0].image for i in range(3)]
    assert resumed.annotate_calls == 0 and resumed.cache_hits == 3
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(maps, again))

    stricter = _units(tmp_path, _unit(folder, annotator_options={"low_threshold": 300, "high_threshold": 600}))
    assert stricter.prepare(range(3)) == 3 and stricter.annotate_calls == 3


def test_edited_input_invalidates(tmp_path):
    folder = _frames(tmp_path)
    _units(tmp_path, _unit(folder)).prepare([0, 1, 2])
    stat = os.stat(folder / "1.png")
    os.utime(folder / "1.png", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    units = _units(tmp_path, _unit(folder))
    assert units.units[0].cache.cleared and units.prepare([0, 1, 2]) == 3
