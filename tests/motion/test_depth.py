"""Depth models (flat, the built-in tiny DPT, offline failures), the depth convention, depth PNGs."""

import os
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from anim.errors import ModelError
from anim.models import load_depth_model
from anim.models.depth import is_metric_depth, tiny_depth_dir
from anim.motion.depth import (
    depth_to_png_levels,
    disparity_to_depth,
    normalise_disparity,
    processor_input_size,
    save_depth_png,
)

NEAR, FAR = 200.0, 10000.0


@pytest.fixture(scope="module")
def tiny():
    return load_depth_model("tiny", device="cpu", dtype=torch.float32)


def image(height=80, width=112, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, height, width, generator=generator)


# ---- convention (pure) ------------------------------------------------------------------------


def test_disparity_maps_linearly_in_inverse_depth():
    disparity01 = torch.tensor([0.0, 0.5, 1.0])
    depth = disparity_to_depth(disparity01, NEAR, FAR)
    torch.testing.assert_close(depth, torch.tensor([FAR, 2.0 / (1 / NEAR + 1 / FAR), NEAR]))


def test_normalise_disparity():
    d = torch.tensor([2.0, 4.0, 6.0]).view(1, 1, 1, 3)
    torch.testing.assert_close(normalise_disparity(d), torch.tensor([0.0, 0.5, 1.0]).view(1, 1, 1, 3))
    assert normalise_disparity(torch.full((1, 1, 2, 2), 3.0)) is None


@pytest.mark.parametrize(
    "size, target, keep, multiple, expected",
    [
        ((512, 512), (384, 384), False, 1, (384, 384)),
        ((480, 640), (518, 518), True, 14, (518, 686)),  # scale 518/480 (closer to 1) on both sides
        ((1080, 1920), (384, 384), False, 32, (384, 384)),
        ((100, 50), (64, 64), True, 8, (128, 64)),
    ],
)
def test_processor_input_size(size, target, keep, multiple, expected):
    assert processor_input_size(*size, *target, keep, multiple) == expected


def test_metric_models_are_recognised():
    assert is_metric_depth(SimpleNamespace(model_type="zoedepth"))
    assert is_metric_depth(SimpleNamespace(model_type="depth_anything", depth_estimation_type="metric"))
    assert not is_metric_depth(SimpleNamespace(model_type="dpt"))


# ---- models -----------------------------------------------------------------------------------


def test_flat_is_constant_at_near():
    model = load_depth_model("flat")
    depth = model.predict(image(), near=150.0, far=900.0)
    assert depth.shape == (1, 1, 80, 112) and depth.dtype == torch.float32
    assert torch.equal(depth, torch.full_like(depth, 150.0))


def test_tiny_predicts_depth_in_near_far(tiny):
    depth = tiny.predict(image(), near=NEAR, far=FAR)
    assert tiny.name == "tiny"
    assert depth.shape == (1, 1, 80, 112) and depth.dtype == torch.float32
    assert float(depth.min()) == pytest.approx(NEAR, rel=1e-5)
    assert float(depth.max()) == pytest.approx(FAR, rel=1e-5)
    assert float(depth.std()) > 0  # not flat: the random network still sees the image


def test_tiny_is_deterministic_and_loads_like_a_local_folder(tiny):
    folder = tiny_depth_dir()
    assert (folder / "model.safetensors").is_file() and (folder / "preprocessor_config.json").is_file()
    again = load_depth_model(str(folder))
    x = image(seed=3)
    assert torch.equal(tiny.predict(x), again.predict(x))
    assert not torch.equal(tiny.predict(x), tiny.predict(image(seed=4)))


def test_uncached_hub_id_is_a_model_error():
    with pytest.raises(ModelError, match=r"depth-anything/not-here.*`flat`"):
        load_depth_model("depth-anything/not-here")


def test_missing_folder_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="`flat`"):
        load_depth_model(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match=r"folder .*empty"):
        load_depth_model(str(tmp_path / "empty"))


# ---- PNGs -------------------------------------------------------------------------------------


def test_depth_png_16_bit_near_is_white(tmp_path):
    depth = torch.tensor([[NEAR, 400.0], [1000.0, FAR]]).view(1, 1, 2, 2)
    path = save_depth_png(depth, tmp_path / "d" / "000000.png")
    levels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert levels.dtype == np.uint16 and levels.shape == (2, 2)
    inverse = 1.0 / depth.view(2, 2).double().numpy()
    expected = np.round((inverse - inverse.min()) / (inverse.max() - inverse.min()) * 65535)
    np.testing.assert_array_equal(levels, expected.astype(np.uint16))
    assert levels[0, 0] == 65535 and levels[1, 1] == 0
    assert os.listdir(path.parent) == ["000000.png"]  # atomic: no temp file left behind


def test_depth_png_8_bit_and_flat(tmp_path):
    path = save_depth_png(np.full((4, 6), 300.0), tmp_path / "flat.png", bits=8)
    levels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert levels.dtype == np.uint8 and levels.shape == (4, 6) and levels.max() == 0
    assert depth_to_png_levels(np.array([[1.0, 2.0]]), bits=8).tolist() == [[255, 0]]
