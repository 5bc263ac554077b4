"""The perspective flip wired into the camera (2D: Deforum's flip @ rotation; 3D: the flip before the depth move;
cadence composes and undoes it) and into Deforum imports (only when enable_perspective_flip is on)."""
from __future__ import annotations

import numpy as np
import torch

from anim.importers import import_file
from anim.models import load_depth_model
from anim.motion.camera import Camera, camera_matrix, flip_matrix
from anim.motion.camera2d import warp_perspective
from anim.plan import build_table, load_preset
from anim.preset import Preset
from tests.importers.test_import_rules import write

FLIP = {"enable_perspective_flip": True, "perspective_flip_theta": 3.0, "perspective_flip_phi": 8.0,
        "perspective_flip_gamma": -5.0, "perspective_flip_fv": 53.0}


def preset(mode="2d", **motion):
    return Preset.model_validate({"prompts": {0: "x"}, "width": 96, "height": 64, "max_frames": 3,
                                  "motion": {"mode": mode, "angle": 2.0, "zoom": 1.02, "translation_x": 3.0, **motion}})


def row_of(p, frame=1):
    return build_table_from(p).row(frame)


def build_table_from(p):
    from anim.preset.schema import LoadedPreset

    return build_table(LoadedPreset(preset=p, source="test"))


def test_2d_flip_is_flip_times_rotation_with_deforums_border():
    p = preset(**FLIP, border="reflect")
    row = row_of(p)
    image = torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    moved = Camera(p).move(image, row)
    expected = warp_perspective(image, flip_matrix(row, 96, 64) @ camera_matrix({**row, "translation_x": 0.0}, 96, 64),
                                border="replicate")  # Deforum's flip drops translation and replicates
    torch.testing.assert_close(moved, expected)
    plain = Camera(preset(border="reflect")).move(image, row_of(preset()))
    assert not torch.allclose(moved, plain)


def test_cadence_composes_and_undoes_the_flip():
    p = preset(**FLIP)
    rows = [row_of(p, f) for f in (1, 2)]
    image = torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    camera = Camera(p)
    m = np.eye(3)
    for row in rows:
        m = camera_matrix(row, 96, 64, flip=True) @ m
    torch.testing.assert_close(camera.move_many(image, rows), warp_perspective(image, m, border="replicate"))
    torch.testing.assert_close(camera.move_many(image, rows, inverse=True),
                               warp_perspective(image, np.linalg.inv(m), border="replicate"))


def test_3d_flip_warps_before_the_depth_move():
    p = preset("3d", **FLIP, depth_model="flat")
    row = row_of(p)
    image = torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(2))
    depth_model = load_depth_model("flat")
    flipped = Camera(p, depth_model).move(image, row)
    plain = Camera(preset("3d", depth_model="flat"), depth_model)
    expected = plain.move_3d(warp_perspective(image, flip_matrix(row, 96, 64), "replicate"), row, None)
    torch.testing.assert_close(flipped, expected)


def test_deforum_perspective_flip_imports_only_when_enabled(tmp_path):
    on = load_preset(write(tmp_path, enable_perspective_flip=True, perspective_flip_theta="0: (0), 9: (9)",
                           perspective_flip_fv="0: (60)")).preset
    assert on.motion.enable_perspective_flip and on.motion.perspective_flip_fv == "0: (60)"
    table = build_table(load_preset(write(tmp_path, enable_perspective_flip=True, perspective_flip_theta="0: (0), 9: (9)")))
    assert table.row(5)["perspective_flip_theta"] == 5.0
    off = import_file(write(tmp_path, enable_perspective_flip=False, perspective_flip_theta="0: (4)"))
    assert "enable_perspective_flip" not in off.data.get("motion", {}) and not [
        n for n in off.notes if "perspective" in n.key]
