"""Preset schema: defaults, YAML line numbers in errors, did-you-mean, overrides, resolved round trip."""
from __future__ import annotations

import textwrap

import pytest

from anim.errors import PresetError, ScheduleError
from anim.plan import build_table, parse_frame_range
from anim.preset import (
    changed_keys,
    frames_hash,
    load_preset,
    resolved_yaml,
    validate_preset,
)
from anim.preset.yamlio import load_with_lines, parse_yaml

BASE = """\
model: tiny
width: 256
height: 256
max_frames: 10
seed: 5
prompts:
  0: "a red fox"
  5: "a blue bird --neg blurry"
motion:
  zoom: "0:(1.02)"
  angle: 0
"""


def write(tmp_path, text, name="p.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_minimal_preset_fills_defaults(tmp_path):
    loaded = load_preset(write(tmp_path, "prompts: {0: hello}\n"))
    p = loaded.preset
    assert (p.model, p.width, p.height, p.sampler, p.motion.mode, p.color_coherence) == (
        "tiny", 512, 512, "euler_a", "2d", "lab")
    assert 0 <= p.seed < 2**32 and loaded.seed_was_random


def test_unknown_key_names_line_and_suggests(tmp_path):
    path = write(tmp_path, BASE.replace("  angle: 0", "  zoon: 1.0"))
    with pytest.raises(PresetError) as err:
        load_preset(path)
    message = str(err.value)
    assert f"{path}:11" in message and "motion.zoon" in message and "did you mean 'zoom'" in message


def test_unknown_top_level_key(tmp_path):
    path = write(tmp_path, BASE + "cfg_scael: 7\n")
    with pytest.raises(PresetError, match=r"p.yaml:12: cfg_scael: unknown key; did you mean 'cfg_scale'"):
        load_preset(path)


def test_width_multiple_of_8_names_key_and_line(tmp_path):
    path = write(tmp_path, BASE.replace("width: 256", "width: 250"))
    with pytest.raises(PresetError, match=r"p.yaml:2: width: must be a multiple of 8 \(got 250; try 248\)"):
        load_preset(path)


def test_wrong_type_and_literal(tmp_path):
    with pytest.raises(PresetError, match=r"p.yaml:4: max_frames: "):
        load_preset(write(tmp_path, BASE.replace("max_frames: 10", "max_frames: lots")))
    with pytest.raises(PresetError, match=r"motion.border: got 'mirror'"):
        load_preset(write(tmp_path, BASE + "  border: mirror\n", "q.yaml"))


def test_bad_schedule_names_key_line_and_column(tmp_path):
    path = write(tmp_path, BASE.replace('"0:(1.02)"', '"0:(1.02), 5:(__import__(1))"'))
    with pytest.raises(PresetError) as err:
        load_preset(path)
    message = str(err.value)
    assert f"{path}:10: motion.zoom:" in message and "__import__" in message and "column" in message


def test_missing_prompts_and_file(tmp_path):
    with pytest.raises(PresetError, match="prompts: is required"):
        load_preset(write(tmp_path, "model: tiny\n"))
    with pytest.raises(PresetError, match="preset file not found"):
        load_preset(tmp_path / "nope.yaml")


def test_duplicate_key_and_bad_yaml(tmp_path):
    with pytest.raises(PresetError, match=r"p.yaml:2: duplicate key 'seed' \(first at line 1\)"):
        load_preset(write(tmp_path, "seed: 1\nseed: 2\nprompts: {0: a}\n"))
    with pytest.raises(PresetError, match=r"q.yaml:\d+: invalid YAML"):
        load_preset(write(tmp_path, "prompts: {0: a\n", "q.yaml"))


def test_deforum_strings_are_not_base_60_numbers():
    data = parse_yaml("a: 0:5\nb: 1:30\nc: 0:1.5\nd: 12\ne: 1.5\nf: 1e3\n")
    assert data == {"a": "0:5", "b": "1:30", "c": "0:1.5", "d": 12, "e": 1.5, "f": 1000.0}


def test_lines_recorded_per_path():
    _, lines = load_with_lines(BASE, "x")
    assert lines[("motion", "zoom")] == 10 and lines[("prompts", "5")] == 8


def test_overrides_dotted_paths_parsed_as_yaml(tmp_path):
    loaded = load_preset(write(tmp_path, BASE), ["max_frames=4", 'motion.zoom="0:(1.05)"', "prompts.0=a cat"])
    p = loaded.preset
    assert p.max_frames == 4 and p.motion.zoom == "0:(1.05)" and p.prompts[0] == "a cat"
    assert build_table(loaded).column("zoom").tolist() == [1.05] * 4


def test_override_errors_name_the_override(tmp_path):
    with pytest.raises(PresetError, match=r"override 'motion.zom=1': motion.zom: unknown key; did you mean 'zoom'"):
        load_preset(write(tmp_path, BASE), ["motion.zom=1"])
    with pytest.raises(PresetError, match="expected key=value"):
        load_preset(write(tmp_path, BASE), ["max_frames"])
    with pytest.raises(PresetError, match=r"override 'width=7'"):
        load_preset(write(tmp_path, BASE), ["width=7"])


def test_schedule_forms_string_mapping_number(tmp_path):
    text = BASE.replace('  zoom: "0:(1.02)"', "  zoom: {0: 1.0, 9: {value: 1.9, ease: linear}}")
    text += "cfg_scale: 6\ndenoise: \"0:(0.2), 9:(0.65)\"\nsteps: {0: 10, 5: 20.9}\n"
    table = build_table(load_preset(write(tmp_path, text)))
    assert table.column("zoom")[[0, 9]].tolist() == [1.0, 1.9]
    assert table.column("cfg_scale").tolist() == [6.0] * 10
    assert table.column("denoise")[[0, 9]].tolist() == pytest.approx([0.2, 0.65])
    assert table.column("steps").dtype.kind == "i" and table.column("steps")[5] == 20  # truncated


def test_table_rows_have_prompts_and_seeds(tmp_path):
    table = build_table(load_preset(write(tmp_path, BASE)))
    row = table.row(6)
    assert row["prompt"] == "a blue bird" and "blurry" in row["negative_prompt"]
    assert row["seed"] == 5 + 6  # iter
    assert table.row(0)["prompt"] == "a red fox"


def test_resolved_yaml_round_trips_and_hash(tmp_path):
    loaded = load_preset(write(tmp_path, BASE))
    text = resolved_yaml(loaded.preset)
    again = validate_preset(parse_yaml(text), "resolved", {})
    assert again.preset == loaded.preset
    assert frames_hash(again.preset) == frames_hash(loaded.preset)
    changed = loaded.preset.model_copy(update={"cfg_scale": 9.0})
    assert changed_keys(loaded.preset.model_dump(), changed.model_dump()) == ["cfg_scale"]


def test_output_keys_do_not_change_frames_hash(tmp_path):
    a = load_preset(write(tmp_path, BASE)).preset
    b = load_preset(write(tmp_path, BASE), ["output.crf=30"]).preset
    c = load_preset(write(tmp_path, BASE), ["cfg_scale=3"]).preset
    assert frames_hash(a) == frames_hash(b) != frames_hash(c)


def test_frame_range():
    assert parse_frame_range(None, 10) == range(10)
    assert parse_frame_range("2:5", 10) == range(2, 5)
    assert parse_frame_range(":3", 10) == range(0, 3) and parse_frame_range("7:", 10) == range(7, 10)
    for bad in ("5:2", "0:11", "a:b", "-1:3"):
        with pytest.raises(ScheduleError, match="--frames"):
            parse_frame_range(bad, 10)


def test_every_example_preset_validates():
    from pathlib import Path

    presets = sorted(Path(__file__).resolve().parents[2].joinpath("presets").glob("*.yaml"))
    assert len(presets) >= 4
    for path in presets:
        table = build_table(load_preset(path))
        assert len(table) == load_preset(path).preset.max_frames
