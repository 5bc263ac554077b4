"""Skeleton drawing, BlazePose -> OpenPose mapping, OpenPose JSON folders, pose_offline on a real photo."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from anim.control.pose import (
    COLORS_RGB,
    LIMBS,
    NECK,
    blazepose_to_openpose,
    draw_openpose,
    read_pose_json,
)
from anim.control.sources import PoseJsonSource, open_source
from anim.errors import InputError


def _standing(width=128, height=128) -> np.ndarray:
    """A simple upright figure (18, 3) in pixels, all keypoints confident."""
    points = {0: (64, 20), 1: (64, 40), 2: (44, 40), 3: (40, 60), 4: (38, 80), 5: (84, 40), 6: (88, 60),
              7: (90, 80), 8: (54, 80), 9: (52, 100), 10: (52, 120), 11: (74, 80), 12: (76, 100),
              13: (76, 120), 14: (60, 16), 15: (68, 16), 16: (56, 18), 17: (72, 18)}
    return np.array([[*points[i], 1.0] for i in range(18)], dtype=np.float64)


def test_draw_uses_openpose_colours_and_skips_missing_points():
    keypoints = _standing()
    canvas = draw_openpose([keypoints], 128, 128)
    assert canvas.shape == (128, 128, 3) and canvas.dtype == np.uint8
    assert tuple(canvas[20, 64]) == COLORS_RGB[0]  # the nose joint is red
    limb = LIMBS.index((1, 2))  # neck -> right shoulder, halfway along
    assert tuple(canvas[40, 54]) == tuple(int(c * 0.6) for c in COLORS_RGB[limb])
    assert canvas[0:5, 0:5].max() == 0  # background stays black
    keypoints[4, 2] = 0.0  # right wrist unknown: neither joint nor forearm
    keypoints[7, :2] = (500, 80)  # left wrist off the canvas
    partial = draw_openpose([keypoints], 128, 128)
    assert partial[80, 38].max() == 0 and partial[70, 39].max() == 0
    assert partial[70, 89].max() == 0


def test_blazepose_mapping_to_coco18():
    blaze = np.stack([np.arange(33) / 100, np.arange(33) / 50, np.ones(33)], axis=1)
    blaze[11, 2], blaze[12, 2] = 0.9, 0.7
    keypoints = blazepose_to_openpose(blaze, width=100, height=50)
    assert keypoints.shape == (18, 3)
    assert keypoints[0, :2] == pytest.approx((0, 0))  # nose
    assert keypoints[NECK] == pytest.approx((11.5, 11.5, 0.7))  # midpoint of the shoulders, weaker confidence
    assert keypoints[2, :2] == pytest.approx((12, 12)) and keypoints[5, :2] == pytest.approx((11, 11))
    assert keypoints[4, 0] == pytest.approx(16) and keypoints[13, 0] == pytest.approx(27)  # right wrist, left ankle
    assert keypoints[16, 0] == pytest.approx(8) and keypoints[17, 0] == pytest.approx(7)  # right ear, left ear


def _write_json(path, people, canvas=None):
    data = {"version": 1.3, "people": [{"pose_keypoints_2d": list(map(float, p.ravel()))} for p in people]}
    if canvas:
        data["canvas_width"], data["canvas_height"] = canvas
    path.write_text(json.dumps(data))


def test_pose_json_folder_is_drawn_and_placed(tmp_path):
    folder = tmp_path / "poses"
    folder.mkdir()
    person = _standing()
    for k in range(3):
        moved = person.copy()
        moved[:, 0] += 10 * k
        _write_json(folder / f"frame_{k:03d}_keypoints.json", [moved], canvas=(256, 128))
    source = open_source(folder, width=64, height=64, resize="crop")  # 256x128 -> cover 128x64, cut 32 each side
    assert isinstance(source, PoseJsonSource) and source.n_frames == 3
    neck = [source.keypoints(k)[0][NECK, :2] for k in range(3)]
    assert neck[0] == pytest.approx((64 * 0.5 - 32, 40 * 0.5)) and neck[2][0] - neck[0][0] == pytest.approx(10)
    frame = source.frame(1)
    assert frame.shape == (64, 64, 3) and (frame.sum(axis=2) > 0).sum() > 50


def test_pose_json_normalised_coords_and_body25(tmp_path):
    folder = tmp_path / "norm"
    folder.mkdir()
    fractions = _standing()
    fractions[:, :2] /= 128
    _write_json(folder / "a.json", [fractions])
    source = open_source(folder, width=64, height=32)
    assert source.keypoints(0)[0][NECK, :2] == pytest.approx((32, 10))
    body25 = np.zeros((25, 3))
    body25[:19] = np.concatenate([_standing()[:8], [[60, 80, 1]], _standing()[8:]])[:19]
    _write_json(tmp_path / "b25.json", [body25])
    people, canvas = read_pose_json(tmp_path / "b25.json")
    assert canvas is None and np.array_equal(people[0], _standing())


def test_pose_json_bad_file_names_it(tmp_path):
    (tmp_path / "x.json").write_text(json.dumps({"people": [{"pose_keypoints_2d": [1, 2, 3]}]}))
    with pytest.raises(InputError, match="x.json.*54"):
        read_pose_json(tmp_path / "x.json")
    (tmp_path / "y.json").write_text("{not json")
    with pytest.raises(InputError, match="y.json"):
        read_pose_json(tmp_path / "y.json")


def _pan_zoom_frames(photo: np.ndarray, n_frames: int = 8, side_px: int = 256):
    """The photo on a larger black canvas, seen through a window that pans right and zooms in."""
    canvas = np.zeros((800, 1100, 3), np.uint8)
    offset = (300, 100)  # where the photo's top-left corner sits on the canvas (x, y)
    canvas[offset[1]:offset[1] + 512, offset[0]:offset[0] + 512] = photo
    frames, windows = [], []
    for k in range(n_frames):
        size, x0, y0 = 600 - 10 * k, 100 + 30 * k, 60 + 5 * k
        window = canvas[y0:y0 + size, x0:x0 + size]
        frames.append(np.asarray(Image.fromarray(window).resize((side_px, side_px), Image.Resampling.LANCZOS)))
        windows.append((x0, y0, size))
    return frames, windows, offset


def test_pose_offline_follows_a_panning_zooming_person(pose_annotator, astronaut):
    frames, windows, _ = _pan_zoom_frames(astronaut)
    necks = []
    for frame in frames:
        skeleton = pose_annotator(frame)
        assert skeleton.shape == frame.shape and (skeleton.sum(axis=2) > 0).sum() > 200
        neck = pose_annotator.keypoints(frame)[NECK]
        assert neck[2] > 0.5
        necks.append(neck[:2])
    # Where frame 0's neck sits on the canvas, and where each window should therefore show it.
    x0, y0, size = windows[0]
    on_canvas = necks[0] * size / 256 + (x0, y0)
    expected = [(on_canvas - (x0, y0)) * 256 / size for x0, y0, size in windows]
    for neck, there in zip(necks, expected):
        assert neck == pytest.approx(there, abs=10)  # 4% of the frame: BlazePose jitters a little
    steps = np.diff(np.array(necks), axis=0)
    assert (steps[:, 0] < -5).all()  # the window pans right, so the person moves left every frame
    assert necks[0][0] - necks[-1][0] == pytest.approx(expected[0][0] - expected[-1][0], rel=0.1)


def test_pose_offline_is_deterministic_and_blank_without_a_person(pose_annotator, astronaut):
    assert np.array_equal(pose_annotator(astronaut), pose_annotator(astronaut))
    empty = np.full((128, 128, 3), 90, np.uint8)
    assert pose_annotator(empty).max() == 0
    assert not pose_annotator.keypoints(empty)[:, 2].any()
