"""Deforum's mask settings -> the preset's `mask:` section (use_mask, use_mask_video, use_noise_mask honoured), the
real Deforum files with their masks switched on importing and dry-running, and notes for what is not carried."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anim.cli import main
from anim.importers import import_file
from anim.plan import build_table, load_preset

DATA = Path(__file__).parent / "data"
BASE = {"animation_mode": "2D", "max_frames": 6, "W": 64, "H": 64, "prompts": {"0": "a cat"},
        "diffusion_cadence": "1", "seed": 5}


def write(tmp_path, settings: dict, name="s_settings.txt") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(settings, indent=4), encoding="utf-8")
    return path


def mask_file(tmp_path) -> str:
    path = tmp_path / "m.png"
    Image.fromarray(np.full((64, 64), 255, dtype=np.uint8)).save(path)
    return str(path)


def test_mask_keys_are_carried(tmp_path):
    settings = {**BASE, "use_mask": True, "mask_file": mask_file(tmp_path), "invert_mask": True,
                "mask_contrast_adjust": 1.5, "mask_brightness_adjust": 0.8, "overlay_mask": False,
                "mask_overlay_blur": 6, "fill": 2, "full_res_mask": False,
                "mask_schedule": '0: ("{init_mask}"), 3: ("!{init_mask} | {human_mask}")'}
    imported = import_file(write(tmp_path, settings))
    assert imported.data["mask"] == {
        "file": str(tmp_path / "m.png"), "invert": True, "contrast": 1.5, "brightness": 0.8, "overlay": False,
        "overlay_blur_px": 6.0, "blur_px": 6.0, "fill": "latent_noise",
        "schedule": '0: ("{init_mask}"), 3: ("!{init_mask} | {human_mask}")'}
    assert not any("mask" in note.key for note in imported.notes), imported.notes
    table = build_table(load_preset(write(tmp_path, settings)))
    assert table.texts("mask") == ("{init_mask}",) * 3 + ("!{init_mask} | {human_mask}",) * 3
    assert table.texts("noise_mask") == table.texts("mask")  # Deforum: the mask itself without use_noise_mask


def test_switched_off_masks_import_nothing(tmp_path):
    imported = import_file(write(tmp_path, {**BASE, "use_mask": False, "mask_file": "x.png", "fill": 3,
                                            "mask_schedule": '0: ("{nonsense}")'}))
    assert "mask" not in imported.data
    assert not any("mask" in note.key or note.key == "fill" for note in imported.notes), imported.notes


def test_a_noise_mask_alone(tmp_path):
    imported = import_file(write(tmp_path, {**BASE, "use_noise_mask": True,
                                            "noise_mask_schedule": '0: ("{human_mask}")'}))
    assert imported.data["mask"] == {"schedule": "0: ({everywhere})", "overlay": False,
                                     "noise_schedule": '0: ("{human_mask}")'}


def test_a_mask_video(tmp_path):
    video = tmp_path / "m.mp4"
    video.write_bytes(b"")  # exists: the importer only checks the path
    imported = import_file(write(tmp_path, {**BASE, "use_mask": True, "use_mask_video": True,
                                            "video_mask_path": str(video), "full_res_mask": True}))
    assert imported.data["mask"]["video"] == str(video) and "file" not in imported.data["mask"]
    assert "schedule" in imported.data["mask"]  # Deforum's default '{video_mask}' is carried
    assert any(note.key == "full_res_mask" for note in imported.notes)


def test_video_mask_without_a_video_is_noted(tmp_path):
    imported = import_file(write(tmp_path, {**BASE, "use_mask": True, "mask_file": mask_file(tmp_path)}))
    assert "schedule" not in imported.data["mask"]  # the init mask is used instead of a blank {video_mask}
    assert any(note.key == "mask_schedule" and "video_mask" in note.reason for note in imported.notes)
    assert any(note.key == "full_res_mask" for note in imported.notes)


def test_a_url_mask_file_is_not_carried(tmp_path):
    imported = import_file(write(tmp_path, {**BASE, "use_mask": True, "mask_file": "https://x.org/m.png",
                                            "mask_schedule": '0: ("{everywhere}")'}))
    assert "file" not in imported.data["mask"] and imported.data["mask"]["schedule"] == '0: ("{everywhere}")'
    assert any(note.key == "mask_file" and "URL" in note.reason for note in imported.notes)


@pytest.mark.parametrize("name", sorted(p.name for p in DATA.glob("*.json")
                                        if "parseq" not in p.name and "gpu-container" not in p.name))  # broken file
def test_real_deforum_files_with_masks_on_import_and_dry_run(tmp_path, name):
    settings = json.loads((DATA / name).read_text(encoding="utf-8"))
    settings.update({"use_mask": True, "mask_file": mask_file(tmp_path), "use_noise_mask": True,
                     "max_frames": 4, "W": 64, "H": 64})
    path = write(tmp_path, settings, name="settings.txt")
    loaded = load_preset(path)
    assert loaded.preset.mask is not None and loaded.preset.mask.file == str(tmp_path / "m.png")
    table = build_table(loaded)
    assert len(table.texts("mask")) == 4 and len(table.texts("noise_mask")) == 4
    assert main([str(path), "--dry-run", "--out", str(tmp_path / "run")]) == 0
    assert "mask" in (tmp_path / "run" / "schedule.csv").read_text().splitlines()[0].split(",")


def test_the_anime_files_expression_takes_both_init_and_video_masks(tmp_path):
    """'!({everywhere}^({init_mask}|{video_mask}) )' needs both: mask.file (the init mask image) and mask.video
    (the mask video) are carried side by side; with one of them missing the expression is noted and not carried."""
    settings = json.loads((DATA / "anime-manga-creation-helper__deforum_settings.json").read_text(encoding="utf-8"))
    video = tmp_path / "m.mp4"
    video.write_bytes(b"")
    both = {"use_mask_video": True, "video_mask_path": str(video), "mask_file": mask_file(tmp_path)}
    imported = import_file(write(tmp_path, {**settings, "use_mask": True, "max_frames": 2, **both}))
    mask = imported.data["mask"]
    assert (mask["file"], mask["video"]) == (both["mask_file"], str(video))
    assert "{init_mask}|{video_mask}" in mask["schedule"]
    assert not any(note.key == "mask_schedule" for note in imported.notes)
    for extra in ({"use_mask_video": True, "video_mask_path": str(video)}, {"mask_file": mask_file(tmp_path)}):
        imported = import_file(write(tmp_path, {**settings, "use_mask": True, "max_frames": 2, **extra}))
        assert "schedule" not in imported.data["mask"]
        assert any(note.key == "mask_schedule" and "unknown mask" in note.reason for note in imported.notes)
