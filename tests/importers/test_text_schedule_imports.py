"""Deforum's sampler_schedule and checkpoint_schedule, honouring enable_sampler_scheduling /
enable_checkpoint_scheduling: each frame's sampler and model against Deforum's own rule (the keyframe's text with
quotes and parentheses deleted, held until the next keyframe; samplers matched casefolded to A1111's labels)."""
from __future__ import annotations

import json

import pytest

from anim.errors import PresetError
from anim.importers import import_file
from anim.plan import build_table, load_preset
from anim.preset.samplers import SAMPLERS

BASE = {"animation_mode": "2D", "max_frames": 8, "W": 256, "H": 256, "prompts": {"0": "a cat"},
        "strength_schedule": "0: (0.65)", "diffusion_cadence": "1", "seed": 5, "sampler": "Euler a"}
LABELS = {row.label.casefold(): name for name, row in SAMPLERS.items() if name != "pndm"}


def write(tmp_path, **changes):
    path = tmp_path / "s_settings.txt"
    path.write_text(json.dumps({**BASE, **changes}, indent=4), encoding="utf-8")
    return path


def deforum_per_frame(schedule: str, max_frames: int) -> list[str]:
    """Deforum's string schedule for keys written as numbers: split at commas and colons, delete quotes and
    parentheses, hold each value from its frame on (Deforum needs a key at 0)."""
    frames = {}
    for part in schedule.split(","):
        key, value = part.split(":")[:2]
        frames[int(key.strip())] = "".join(ch for ch in value if ch not in "'\"()").strip()
    out, current = [], None
    for i in range(max_frames):
        out.append(current := frames.get(i, current))
    return out


def notes_of(loaded, key):
    return [line for line in loaded.notes if line.startswith(key + " =")]


def test_sampler_schedule_per_frame_as_deforum_hands_it_to_a1111(tmp_path):
    schedule = '0: ("Euler a"), 3: ("dpm++ 2m karras"), 5: (DDIM)'
    loaded = load_preset(write(tmp_path, enable_sampler_scheduling=True, sampler_schedule=schedule))
    expected = [LABELS[label.casefold()] for label in deforum_per_frame(schedule, 8)]
    assert list(build_table(loaded).texts("sampler")) == expected
    assert loaded.preset.sampler_schedule == "0: (euler_a), 3: (dpmpp_2m_karras), 5: (ddim)"
    assert notes_of(loaded, "sampler_schedule") == notes_of(loaded, "enable_sampler_scheduling") == []


def test_sampler_schedule_is_ignored_when_switched_off(tmp_path):
    loaded = load_preset(write(tmp_path, enable_sampler_scheduling=False, sampler_schedule='0: ("DDIM")'))
    assert loaded.preset.sampler_schedule is None and set(build_table(loaded).texts("sampler")) == {"euler_a"}
    assert not notes_of(loaded, "sampler_schedule")


def test_sampler_schedule_with_a1111_1_9_scheduler_and_labels_anim_lacks(tmp_path):
    loaded = load_preset(write(tmp_path, sampler="DPM++ 2M", scheduler="Karras", enable_sampler_scheduling=True,
                               sampler_schedule='0: ("DPM++ 2M"), 2: ("DPM fast"), 4: ("Euler a"), 12: ("DDIM")'))
    assert loaded.preset.sampler_schedule == "0: (dpmpp_2m_karras), 4: (euler_a)"  # Karras from `scheduler`
    notes = " | ".join(notes_of(loaded, "sampler_schedule"))
    assert "'DPM fast' not in anim: their keyframes are left out" in notes  # DPM fast holds DPM++ 2M on
    assert "'Euler a Karras' not in anim" in notes and "keyframe(s) at 12 lie past the last frame" in notes
    assert list(build_table(loaded).texts("sampler")) == ["dpmpp_2m_karras"] * 4 + ["euler_a"] * 4


def test_checkpoint_schedule_carried_with_a_note(tmp_path):
    schedule = '0: ("model1.ckpt"), 4: ("sdxl_base.safetensors [31e35c80fc]")'
    imported = import_file(write(tmp_path, enable_checkpoint_scheduling=True, checkpoint_schedule=schedule))
    assert imported.data["checkpoint_schedule"] == '0: ("model1.ckpt"), 4: ("sdxl_base.safetensors")'
    assert imported.origins[("checkpoint_schedule",)] == "checkpoint_schedule"
    assert [n.key for n in imported.notes if "checkpoint" in n.key] == ["checkpoint_schedule"]
    assert "set each to its path" in next(n.reason for n in imported.notes if n.key == "checkpoint_schedule")
    loaded = load_preset(write(tmp_path, enable_checkpoint_scheduling=True, checkpoint_schedule=schedule))
    expected = [name.split(" [")[0] for name in deforum_per_frame(schedule, 8)]
    assert list(build_table(loaded).texts("checkpoint")) == expected


def test_checkpoint_schedule_is_ignored_when_switched_off(tmp_path):
    imported = import_file(write(tmp_path, checkpoint_schedule='0: ("a.safetensors"), 2: ("b.safetensors")'))
    assert "checkpoint_schedule" not in imported.data
    assert not [n for n in imported.notes if "checkpoint" in n.key]


def test_a_malformed_string_schedule_names_its_deforum_key(tmp_path):
    with pytest.raises(PresetError, match=r"s_settings\.txt:\d+: checkpoint_schedule: unclosed '\(' at column 4"):
        import_file(write(tmp_path, enable_checkpoint_scheduling=True, checkpoint_schedule='0: ("a.ckpt"'))
