"""Deforum's hybrid video settings -> the preset's `hybrid:` section (2D/3D with video_init_path), or notes."""
from __future__ import annotations

import json

import pytest

from anim.importers import import_file
from anim.plan import build_table, load_preset

BASE = {"animation_mode": "2D", "max_frames": 10, "W": 256, "H": 256, "prompts": {"0": "a cat"},
        "diffusion_cadence": "1", "seed": 5}
HYBRID = {"hybrid_motion": "Optical Flow", "hybrid_motion_use_prev_img": True, "hybrid_flow_method": "Farneback",
          "hybrid_flow_factor_schedule": "0:(1), 5:(0.5)", "hybrid_flow_consistency": True,
          "hybrid_consistency_blur": 3, "hybrid_composite": "Before Motion",
          "hybrid_comp_alpha_schedule": "0:(0.25)"}


def write(tmp_path, **changes):
    path = tmp_path / "s_settings.txt"
    path.write_text(json.dumps({**BASE, **changes}, indent=4), encoding="utf-8")
    return path


def video(tmp_path):
    path = tmp_path / "in.mp4"
    path.write_bytes(b"")  # exists: the importer only checks the path
    return str(path)


def test_hybrid_keys_are_carried_in_2d_mode(tmp_path):
    imported = import_file(write(tmp_path, video_init_path=video(tmp_path), **HYBRID))
    data = imported.data
    assert data["init_video"] == str(tmp_path / "in.mp4")
    assert data["hybrid"] == {"motion": "optical_flow", "composite": "before_motion", "use_prev_img": True,
                              "flow_method": "farneback", "flow_factor": "0:(1), 5:(0.5)", "flow_consistency": True,
                              "consistency_blur": 3.0, "comp_alpha": "0:(0.25)"}
    assert not any(note.key.startswith("hybrid_") for note in imported.notes), imported.notes


def test_hybrid_schedules_become_columns(tmp_path):
    loaded = load_preset(write(tmp_path, video_init_path=video(tmp_path), max_frames=10, fps=12, **HYBRID))
    assert loaded.preset.hybrid.motion == "optical_flow"
    table = build_table(loaded)
    assert table.column("hybrid_flow_factor")[5] == pytest.approx(0.5)
    assert table.column("hybrid_comp_alpha")[9] == pytest.approx(0.25)


@pytest.mark.parametrize("label, expected", [("Perspective", "perspective"), ("Affine", "affine"),
                                             ("None", "none")])
def test_motion_labels(tmp_path, label, expected):
    imported = import_file(write(tmp_path, video_init_path=video(tmp_path), hybrid_motion=label,
                                 hybrid_composite="After Generation", hybrid_flow_method="RAFT"))
    assert imported.data["hybrid"]["motion"] == expected
    assert imported.data["hybrid"]["composite"] == "after_generation"
    assert imported.data["hybrid"]["flow_method"] == "dis"  # RAFT is a pickle: DIS, noted
    assert any(note.key == "hybrid_flow_method" for note in imported.notes)


def test_not_carried_where_deforum_would_not_act_or_anim_cannot(tmp_path):
    none_mode = import_file(write(tmp_path, animation_mode="Interpolation", video_init_path=video(tmp_path),
                                  hybrid_motion="Perspective"))
    assert "hybrid" not in none_mode.data
    assert any(n.key == "hybrid_motion" and "2D/3D" in n.reason for n in none_mode.notes)
    use_init = import_file(write(tmp_path, video_init_path=video(tmp_path), hybrid_composite="Normal",
                                 hybrid_use_init_image=True))
    assert any(n.key == "hybrid_use_init_image" for n in use_init.notes)


def test_comp_masks_cadence_range_and_video_colours_are_carried(tmp_path):
    imported = import_file(write(tmp_path, video_init_path=video(tmp_path), diffusion_cadence="3",
                                 optical_flow_cadence="DIS Medium", hybrid_motion="Perspective",
                                 hybrid_composite="Normal", hybrid_comp_mask_type="Difference",
                                 hybrid_comp_mask_inverse=True, hybrid_comp_mask_equalize="Before",
                                 hybrid_comp_mask_auto_contrast=True,
                                 hybrid_comp_mask_auto_contrast_cutoff_low_schedule="0:(5)",
                                 hybrid_comp_mask_contrast_schedule="0:(1.5)", extract_from_frame=4,
                                 extract_to_frame=40, extract_nth_frame=2, color_coherence="Video Input",
                                 color_coherence_video_every_N_frames=6))
    data, notes = imported.data, {n.key: n.reason for n in imported.notes}
    assert data["cadence"] == 3 and "cadence_flow" not in data and "optical_flow_cadence" in notes
    hybrid = data["hybrid"]
    assert (hybrid["comp_mask"], hybrid["comp_mask_inverse"], hybrid["comp_mask_equalize"],
            hybrid["comp_mask_auto_contrast"]) == ("difference", True, "before", True)
    assert hybrid["comp_mask_auto_contrast_low"] == "0:(5)" and hybrid["comp_mask_contrast"] == "0:(1.5)"
    assert hybrid["comp_mask_auto_contrast_high"] == "0:(100)"  # Deforum's default
    assert imported.video_frames == (4, 40) and data["extract_nth_frame"] == 2
    assert data["color_coherence"] == "video_input" and data["color_coherence_every_n"] == 6
    assert not any(k.startswith("hybrid_comp") or k.startswith("extract") for k in notes), notes


def test_depth_mask_in_2d_takes_the_depth_algorithm_and_video_colours_need_hybrid(tmp_path):
    depth = import_file(write(tmp_path, video_init_path=video(tmp_path), hybrid_composite="Normal",
                              hybrid_comp_mask_type="Video Depth", depth_algorithm="Depth-Anything-V2-Small"))
    assert depth.data["hybrid"]["comp_mask"] == "video_depth"
    assert depth.data["motion"]["depth_model"] == "depth-anything/Depth-Anything-V2-Small-hf"
    plain = import_file(write(tmp_path, color_coherence="Video Input"))
    assert plain.data["color_coherence"] == "lab"
    assert any(n.key == "color_coherence" and "hybrid" in n.reason for n in plain.notes)
