"""A1111 unit settings on the annotators: processor_res, pixel_perfect, threshold_a/b, and the map cache key.

The oracles are written from sd-webui-controlnet: internal_controlnet/external_code.py pixel_perfect_resolution and
scripts/processor.py's sliders (canny: low/high threshold; mlsd: value/distance threshold).
"""
from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from anim.control import annotators
from anim.control.annotators import get_annotator
from anim.control.unit_settings import threshold_options, working_side
from anim.errors import PresetError
from anim.media.frames import resize_transform
from anim.media.images import make_test_card
from tests.control.test_cache import ROW, _frames, _unit, _units


def a1111_pixel_perfect(raw_h: int, raw_w: int, target_h: int, target_w: int, resize: str) -> int:
    """The extension's estimate: the input's short side times the smaller per-axis scale for Resize and Fill
    (anim: fit), the larger one otherwise; rounded."""
    k_h, k_w = target_h / raw_h, target_w / raw_w
    k = min(k_h, k_w) if resize == "fit" else max(k_h, k_w)
    return int(np.round(k * min(raw_h, raw_w)))


@pytest.mark.parametrize("resize", ["crop", "fit"])
@pytest.mark.parametrize("raw", [(1920, 1080), (1080, 1920), (640, 480), (300, 1000), (512, 512)])
@pytest.mark.parametrize("render", [(512, 512), (768, 512), (512, 768)])
def test_pixel_perfect_works_at_the_extensions_scale(raw, render, resize):
    """Pixels of the input per working pixel: the extension annotates the input at its estimate (short side),
    anim annotates the input fitted to the render size at the working side; both scale the input alike."""
    (raw_w, raw_h), (width, height) = raw, render
    extension = a1111_pixel_perfect(raw_h, raw_w, height, width, resize) / min(raw_w, raw_h)
    fitted = resize_transform(raw_w, raw_h, width, height, resize)[0]  # the input's scale in anim's fitted frame
    side = working_side(width, height, processor_res=333, pixel_perfect=True, default=512)
    assert fitted * side / min(width, height) == pytest.approx(extension, rel=0.01)
    assert working_side(width, height, processor_res=333, pixel_perfect=False, default=512) == 333
    assert working_side(width, height, processor_res=None, pixel_perfect=False, default=512) == 512


def test_processor_res_sets_cannys_working_size():
    card = make_test_card(128, 64)
    mapped = get_annotator("canny", processor_res=128)(card)
    # controlnet-aux's canny at detect_resolution 128: the frame scaled so its short side is 128 (Lanczos, as it
    # upscales), edges there, the edge map brought back to the frame's size (bilinear)
    edges = cv2.Canny(cv2.resize(card, (256, 128), interpolation=cv2.INTER_LANCZOS4), 100, 200)
    expected = cv2.resize(edges, (128, 64), interpolation=cv2.INTER_LINEAR)
    assert mapped.shape == (64, 128, 3) and np.array_equal(mapped[:, :, 0], expected)
    native = get_annotator("canny")(card)
    assert not np.array_equal(native, mapped)
    assert np.array_equal(get_annotator("canny", pixel_perfect=True, processor_res=128)(card), native)
    assert get_annotator("canny", processor_res=128).settings()["processor_res"] == 128
    with pytest.raises(PresetError, match="processor_res: annotator none"):
        get_annotator("none", processor_res=256)


class _Recorder:
    """A controlnet-aux detector stand-in that records the detect_resolution it is called with."""

    def __init__(self):
        self.sides = []

    def __call__(self, image, detect_resolution, image_resolution, output_type, **_options):
        self.sides.append(detect_resolution)
        return image


def test_weighted_annotators_take_processor_res_and_pixel_perfect(monkeypatch, tmp_path):
    recorder = _Recorder()
    monkeypatch.setattr(annotators, "local_weights", lambda *a: tmp_path)
    monkeypatch.setattr(annotators, "_load_detector", lambda *a: recorder)
    frame = make_test_card(96, 80)

    def side(**settings):
        annotator = get_annotator("depth", allow_pickle=True, **settings)
        annotator(frame)
        return recorder.sides[-1], annotator.settings()

    assert side()[0] == 512  # A1111's default Preprocessor Resolution
    assert side(processor_res=384) == (384, {"name": "depth", "detect_resolution": 384,
                                             "model": "lllyasviel/Annotators"})
    assert side(pixel_perfect=True)[0] == 80 and side(pixel_perfect=True)[1]["pixel_perfect"] is True
    with pytest.raises(PresetError, match="processor_res and annotator_options.detect_resolution"):
        get_annotator("depth", allow_pickle=True, processor_res=384, options={"detect_resolution": 256})


def test_thresholds_are_the_annotators_own_options():
    assert threshold_options("canny", {}, 50, 150) == {"low_threshold": 50, "high_threshold": 150}
    assert threshold_options("mlsd", {"thr_d": 0.3}, 0.2, None) == {"thr_d": 0.3, "thr_v": 0.2}
    assert threshold_options("openpose", {"include_hand": True}, None, None) == {"include_hand": True}
    with pytest.raises(PresetError, match="threshold_a: annotator openpose has no threshold sliders.*canny"):
        threshold_options("openpose", {}, 64, None)
    with pytest.raises(PresetError, match="threshold_b and annotator_options.high_threshold"):
        threshold_options("canny", {"high_threshold": 90}, None, 120)


def test_a_unit_with_other_settings_never_reuses_cached_maps(tmp_path):
    folder = _frames(tmp_path)
    first = _units(tmp_path, _unit(folder))
    maps = [first.for_frame(i, ROW, None)[0].image.numpy() for i in range(3)]
    again = _units(tmp_path, _unit(folder))
    assert not again.units[0].cache.cleared and again.prepare(range(3)) == 0
    for changed in ({"processor_res": 128}, {"threshold_a": 1500, "threshold_b": 3000}, {"pixel_perfect": True}):
        units = _units(tmp_path, _unit(folder, **changed))
        assert units.units[0].cache.cleared, changed
        remade = [units.for_frame(i, ROW, None)[0].image.numpy() for i in range(3)]
        assert units.annotate_calls == 3 and units.cache_hits == 0, changed
        if "pixel_perfect" not in changed:  # pixel perfect is canny's own default size: same maps, new key
            assert any(not np.array_equal(a, b) for a, b in zip(maps, remade)), changed
    stricter = _units(tmp_path, _unit(folder, threshold_a=300, threshold_b=600))
    annotator = stricter.units[0].annotator
    assert (annotator.options["low_threshold"], annotator.options["high_threshold"]) == (300, 600)


def test_units_carry_their_control_mode(tmp_path):
    folder = _frames(tmp_path)
    spec = SimpleNamespace(**{**vars(_unit(folder)), "control_mode": "controlnet"})
    assert _units(tmp_path, spec).for_frame(0, ROW, None)[0].control_mode == "controlnet"
    assert _units(tmp_path, _unit(folder)).for_frame(0, ROW, None)[0].control_mode == "balanced"
