"""Parseq exports drive the schedules as Deforum's Parseq adapter does (the real export from Deforum's tests)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from anim.errors import PresetError
from anim.plan import build_table, load_preset

EXPORT = Path(__file__).parent / "data" / "parseq__sd-webui-deforum_testdata_parseq.json"


def frames() -> list[dict]:
    return sorted(json.loads(EXPORT.read_text())["rendered_frames"], key=lambda f: f["frame"])


def test_the_export_alone_renders_its_frames():
    loaded = load_preset(EXPORT)
    preset, table = loaded.preset, build_table(loaded)
    options = json.loads(EXPORT.read_text())["options"]
    assert (preset.max_frames, preset.fps, preset.cadence) == (len(frames()), options["output_fps"],
                                                                options["cadence"])
    np.testing.assert_allclose(table.column("angle"), [f["angle_delta"] for f in frames()])  # motion: deltas
    assert [int(s) for s in table.column("seed")] == [int(f["seed"]) for f in frames()]  # int(seed) every frame
    assert {(row.prompt, row.negative_prompt) for row in table.prompts} == {("Parseq prompt!", "neg parseq prompt!")}


def test_a_preset_with_parseq_keeps_what_the_export_does_not_have(tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text(f"parseq: {EXPORT}\nprompts: {{0: overwritten}}\npositive_prompt: oil\n"
                      "motion: {zoom: '0:(1.01)', angle: '0:(45)'}\ncfg_scale: 5\n")
    loaded = load_preset(preset)
    table = build_table(loaded)
    np.testing.assert_allclose(table.column("zoom"), 1.01)  # not in the export: the preset's schedule
    np.testing.assert_allclose(table.column("cfg_scale"), 5.0)
    np.testing.assert_allclose(table.column("angle"), [f["angle_delta"] for f in frames()])  # the export wins
    assert table.prompts[0].prompt == "Parseq prompt!"  # Deforum adds no global prompt to Parseq's


def test_zoom_and_strength_fields_map_like_deforum(tmp_path):
    data = json.loads(EXPORT.read_text())
    zoom = [1.0, 1.02, 1.05, 1.05]
    data["rendered_frames"] = [{"frame": i, "zoom": z, "zoom_delta": z if i == 0 else 1 + (z - zoom[i - 1]),
                                "strength": 0.6, "scale": 7 + i, "deforum_prompt": "a"} for i, z in enumerate(zoom)]
    export = tmp_path / "e.json"
    export.write_text(json.dumps(data))
    table = build_table(load_preset(export))
    np.testing.assert_allclose(table.column("zoom"), [1.0, 1.02, 1.03, 1.0])
    np.testing.assert_allclose(table.column("denoise"), 0.4)
    np.testing.assert_allclose(table.column("cfg_scale"), [7, 8, 9, 10])


def test_a_broken_export_is_one_error_naming_it(tmp_path):
    export = tmp_path / "e.json"
    export.write_text(json.dumps({"rendered_frames": [{"frame": 0, "angle_delta": "x", "deforum_prompt": "a"}]}))
    with pytest.raises(PresetError, match=r"e\.json: frame 0: angle_delta is 'x', not a number"):
        load_preset(export)
    preset = tmp_path / "p.yaml"
    preset.write_text("parseq: missing.json\nprompts: {0: a}\n")
    with pytest.raises(PresetError, match="p.yaml.*parseq.*missing.json"):
        load_preset(preset)
