"""Deforum's cn_N_control_mode, cn_N_pixel_perfect, cn_N_processor_res and cn_N_threshold_a/b -> anim unit keys."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from anim.errors import PresetError
from anim.plan import load_preset

DATA = Path(__file__).parent / "data"
BASE = {"animation_mode": "2D", "max_frames": 10, "W": 256, "H": 256, "prompts": {"0": "a cat"}}


def _unit(n: int, video: Path, **fields) -> dict:
    base = {"enabled": True, "vid_path": str(video), "weight": "0:(1)", "pixel_perfect": False, "processor_res": 64,
            "threshold_a": 64, "threshold_b": 64, "control_mode": "Balanced", **fields}
    return {f"cn_{n}_{key}": value for key, value in base.items()}


def _write(tmp_path, **settings) -> Path:
    path = tmp_path / "s_settings.txt"
    path.write_text(json.dumps({**BASE, **settings}, indent=4), encoding="utf-8")
    return path


@pytest.fixture
def video(tmp_path) -> Path:
    path = tmp_path / "in.mp4"
    path.write_bytes(b"")
    return path


def test_control_modes_resolution_and_thresholds_are_carried(tmp_path, video):
    path = _write(tmp_path, **_unit(1, video, module="canny", model="control_v11p_sd15_canny [d14c016b]",
                                     control_mode="My prompt is more important", processor_res="384",
                                     threshold_a=80, threshold_b="160"),
                  **_unit(2, video, module="mlsd", model="control_v11p_sd15_mlsd [aca30ff0]",
                          control_mode="ControlNet is more important", pixel_perfect=True, threshold_a=0.2,
                          threshold_b=5.5),
                  **_unit(3, video, module="openpose_full", model="control_v11p_sd15_openpose [cab727d4]",
                          processor_res=512),
                  **_unit(4, video, module="tile_resample", model="control_v11f1e_sd15_tile [a371b31b]",
                          control_mode=2))
    loaded = load_preset(path)
    canny, mlsd, pose, tile = loaded.preset.controlnet
    assert (canny.control_mode, canny.processor_res, canny.pixel_perfect) == ("prompt", 384, False)
    assert (canny.threshold_a, canny.threshold_b, canny.annotator_options) == (80, 160, {})
    assert (mlsd.control_mode, mlsd.pixel_perfect, mlsd.processor_res) == ("controlnet", True, None)
    assert (mlsd.threshold_a, mlsd.threshold_b) == (0.2, 5.5)
    assert (pose.control_mode, pose.processor_res, pose.threshold_a, pose.threshold_b) == ("balanced", 512, None, None)
    assert pose.annotator_options == {"include_hand": True, "include_face": True}
    assert (tile.annotator, tile.control_mode, tile.processor_res, tile.threshold_a) == ("none", "controlnet", None,
                                                                                          None)
    assert not [line for line in loaded.notes if "control_mode" in line or "processor_res" in line
                or "threshold" in line or "pixel_perfect" in line]


def test_an_unknown_mode_is_noted_and_a_bad_resolution_names_the_deforum_key(tmp_path, video):
    odd = _write(tmp_path, **_unit(1, video, module="canny", model="control_v11p_sd15_canny", control_mode="Loud"))
    loaded = load_preset(odd)
    assert loaded.preset.controlnet[0].control_mode == "balanced"
    assert any(line.startswith("cn_1_control_mode") and "unknown control mode" in line for line in loaded.notes)
    huge = _write(tmp_path, **_unit(1, video, module="canny", model="control_v11p_sd15_canny", processor_res=9000))
    with pytest.raises(PresetError, match=r"controlnet\.0\.processor_res \(from cn_1_processor_res\)"):
        load_preset(huge)


def test_a_real_file_carries_its_control_modes():
    loaded = load_preset(DATA / "ai-samples__deforum_settings.json")
    assert [u.control_mode for u in loaded.preset.controlnet] == ["controlnet", "balanced", "controlnet"]
    assert all(u.processor_res is None for u in loaded.preset.controlnet)  # module none: frames pass through
    assert not [line for line in loaded.notes if "control_mode" in line]
