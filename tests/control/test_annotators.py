"""The annotator registry: canny, passthrough, offline-only weighted annotators, mediapipe errors."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from anim.control.annotators import get_annotator
from anim.errors import ModelError
from anim.media.images import make_test_card


def test_canny_keeps_the_size_and_its_thresholds_matter():
    card = make_test_card(72, 40)
    canny = get_annotator("canny")
    edges = canny(card)
    assert edges.shape == (40, 72, 3) and edges.dtype == np.uint8 and edges.max() > 200
    strict = get_annotator("canny", options={"low_threshold": 400, "high_threshold": 800})
    assert (strict(card) > 0).sum() < (edges > 0).sum()
    assert strict.settings() == {"name": "canny", "low_threshold": 400, "high_threshold": 800}
    assert canny.calls == 1


def test_none_passes_the_map_through():
    card = make_test_card(32, 16)
    assert np.array_equal(get_annotator("none")(card), card)
    assert get_annotator("none").settings() == {"name": "none"}


def test_openpose_without_local_weights_points_to_pose_offline(tmp_path, monkeypatch):
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    with pytest.raises(ModelError, match=r"openpose.*body_pose_model.pth.*pose_offline"):
        get_annotator("openpose")
    with pytest.raises(ModelError, match=r"openpose.*pose_offline"):
        get_annotator("openpose", model=str(tmp_path))
    with pytest.raises(ModelError, match=r"depth.*not on this machine.*canny"):
        get_annotator("depth")


def test_local_pickled_weights_need_allow_pickle(tmp_path):
    for name in ("body_pose_model.pth", "hand_pose_model.pth", "facenet.pth"):
        (tmp_path / name).write_bytes(b"not read")  # never unpickled: the refusal comes first
    with pytest.raises(ModelError, match=r"openpose.*pickle.*allow_pickle.*pose_offline"):
        get_annotator("openpose", model=str(tmp_path))


def test_weights_in_the_hub_cache_are_found(tmp_path, monkeypatch):
    import huggingface_hub.constants as hub_constants

    repo = tmp_path / "hub" / "models--lllyasviel--Annotators"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    (snapshot / "ControlNetHED.pth").write_bytes(b"not read")
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ModelError, match=r"softedge.*snapshots.*ControlNetHED.pth.*pickle.*allow_pickle"):
        get_annotator("softedge")


def test_unknown_annotator_and_option():
    with pytest.raises(ModelError, match=r"'cany'.*canny.*pose_offline"):
        get_annotator("cany")
    with pytest.raises(ModelError, match=r"canny.*unknown option low.*low_threshold"):
        get_annotator("canny", options={"low": 3})


def test_pose_offline_without_mediapipe_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # import mediapipe -> ImportError
    with pytest.raises(ModelError, match=r"pose_offline.*pip install --no-deps mediapipe==0.10.14"):
        get_annotator("pose_offline")


def test_annotators_reject_wrong_images():
    with pytest.raises(ModelError, match="canny.*uint8"):
        get_annotator("canny")(np.zeros((8, 8), np.float32))
