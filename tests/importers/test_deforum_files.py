"""Real Deforum settings files (tests/importers/data, from ../shared/deforum) carried over with Deforum's meaning:
anim's per-frame values against an independent oracle of Deforum's rules (deforum_semantics_oracle)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from anim.cli import main
from anim.plan import build_table, load_preset
from tests.importers import deforum_semantics_oracle as oracle

DATA = Path(__file__).parent / "data"
SETTINGS = sorted(p for p in DATA.glob("*.json") if "parseq" not in p.name)
GOOD = [p for p in SETTINGS if "gpu-container" not in p.name]
BROKEN = DATA / "gpu-container-deforum__test-settings.json"  # rotation_3d_x: "0: 0: ((0.11 * cos(..."
SEED = 12345
MOTION_2D = {"angle": "angle", "zoom": "zoom", "translation_x": "translation_x", "translation_y": "translation_y",
             "transform_center_x": "transform_center_x", "transform_center_y": "transform_center_y"}
MOTION_3D = {"translation_x": "translation_x", "translation_y": "translation_y", "translation_z": "translation_z",
             "rotation_3d_x": "rotation_3d_x", "rotation_3d_y": "rotation_3d_y", "rotation_3d_z": "rotation_3d_z",
             "fov": "fov_schedule", "near": "near_schedule", "far": "far_schedule"}
OTHER = {"cfg_scale": "cfg_scale_schedule", "noise": "noise_schedule", "contrast": "contrast_schedule"}


def settings_of(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def table_of(path: Path, *overrides: str):
    loaded = load_preset(path, [f"seed={SEED}", *overrides])
    return loaded, build_table(loaded)


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.stem)
def test_schedules_match_deforum(path):
    settings = settings_of(path)
    loaded, table = table_of(path)
    mode = loaded.preset.motion.mode
    columns = {**(MOTION_3D if mode == "3d" else MOTION_2D), **OTHER}
    for column, key in columns.items():
        expected = oracle.series(settings, key, seed=SEED)
        np.testing.assert_allclose(table.column(column), expected, rtol=1e-9, atol=1e-9, err_msg=f"{path.name}: {key}")
    # Deforum's first frame is txt2img without an init image; after it, denoise = 1 - strength
    np.testing.assert_allclose(table.column("denoise")[1:], oracle.denoise(settings)[1:], atol=1e-9)
    assert loaded.preset.init_image is None and oracle.denoise(settings)[0] == 1.0


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.stem)
def test_seeds_of_the_diffused_frames_match_deforum(path):
    settings = settings_of(path)
    loaded, table = table_of(path)
    expected = oracle.seeds(settings, seed=SEED)
    assert loaded.preset.cadence == oracle.cadence(settings)
    seeds = table.column("seed")
    assert {frame: int(seeds[frame]) for frame in expected} == expected


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.stem)
def test_prompts_match_deforum(path):
    settings = settings_of(path)
    _, table = table_of(path)
    expected = oracle.prompts(settings)
    ours = [(row.prompt, row.negative_prompt) for row in table.prompts]
    assert len(ours) == len(expected)
    for frame, (mine, theirs) in enumerate(zip(ours, expected)):
        assert mine == theirs, f"{path.name} frame {frame}"


def test_backtick_weights_follow_the_frame():
    """ryuhat's prompt: (cherry:`where(cos(6.28*t/10)>0, 1.8*cos(6.28*t/10), 0.001)`) changes every frame."""
    _, table = table_of(DATA / "ryuhat-sd-webui__deforum_settings.json")
    assert "(cherry:1.8)" in table.prompts[0].prompt and "(cherry:0.001)" in table.prompts[3].prompt
    assert "`" not in "".join(row.prompt + row.negative_prompt for row in table.prompts)


def test_sampler_labels_and_2022_index():
    assert load_preset(DATA / "ryuhat-sd-webui__deforum_settings.json").preset.sampler == "euler_a"  # sampler: 0
    assert load_preset(DATA / "Deforum-Studio-Presets__Classic-3D-Motion.json").preset.sampler == "dpmpp_2m_sde_karras"
    assert load_preset(DATA / "anime-manga-creation-helper__deforum_settings.json").preset.sampler == "dpm2_karras"


def test_what_each_file_carries():
    default = load_preset(DATA / "sd-webui-deforum__default_settings.json").preset
    assert (default.motion.mode, default.cadence, default.noise_type, default.color_coherence) == ("3d", 2, "perlin",
                                                                                                    "lab")
    assert default.motion.depth_model == "Intel/dpt-hybrid-midas" and default.motion.fov == "0: (70)"
    classic = load_preset(DATA / "Deforum-Studio-Presets__Classic-3D-Motion.json").preset
    assert (classic.width, classic.height, classic.max_frames, classic.motion.border) == (1024, 576, 181, "replicate")
    manga = load_preset(DATA / "anime-manga-creation-helper__deforum_settings.json")
    assert manga.preset.cadence == 2 and manga.preset.color_coherence == "lab"  # "2" and "Match Frame 0 LAB"
    assert manga.preset.controlnet == []  # its early-2023 unit's input video is not in the file
    assert any(line.startswith("controlnet_enabled") and "not carried" in line for line in manga.notes)
    samples = load_preset(DATA / "ai-samples__deforum_settings.json").preset
    assert [u.model for u in samples.controlnet] == ["lllyasviel/control_v11f1e_sd15_tile",
                                                     "lllyasviel/control_v11e_sd15_ip2p",
                                                     "lllyasviel/control_v11p_sd15_openpose"]
    assert samples.controlnet[0].input == "C:\\Users\\astin\\Downloads\\kannama.mp4"
    assert (samples.fps, samples.output.audio) == (60.0, "C:\\Users\\astin\\Downloads\\kannama.mp4")


def test_a_malformed_schedule_fails_with_one_line_naming_key_and_text(capsys):
    assert main([str(BROKEN), "--dry-run", "--out", "/nonexistent/never"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert BROKEN.name in err and "rotation_3d_x" in err and '"0: 0: ((0.11 * cos(' in err


@pytest.mark.parametrize("path", GOOD + [DATA / "parseq__sd-webui-deforum_testdata_parseq.json"],
                         ids=lambda p: p.stem)
def test_import_deforum_writes_a_preset_that_dry_runs_to_the_same_schedule(path, tmp_path, capsys):
    preset = tmp_path / "preset.yaml"
    assert main(["import-deforum", str(path), "-o", str(preset)]) == 0
    text = preset.read_text()
    assert text.startswith(f"# Imported by anim from {path}")
    notes = load_preset(path).notes
    assert all(f"#   {line}" in text for line in notes)
    assert main([str(preset), "seed=7", "--dry-run", "--out", str(tmp_path / "a")]) == 0
    assert main([str(path), "seed=7", "--dry-run", "--out", str(tmp_path / "b")]) == 0
    assert (tmp_path / "a" / "schedule.csv").read_bytes() == (tmp_path / "b" / "schedule.csv").read_bytes()
