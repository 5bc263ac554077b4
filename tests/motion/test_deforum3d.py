"""motion.projection: deforum moves a frame exactly as Deforum's 3D warp does (against an independent oracle)."""

import cv2
import numpy as np
import pytest
import torch

from anim.motion.camera3d import flow_3d, warp_3d, world_depth
from tests.motion.deforum_warp_oracle import deforum_warp_3d

MOTIONS = [
    {"tx": 3.0}, {"ty": 3.0}, {"tz": 5.0}, {"rx_deg": 2.0}, {"ry_deg": 2.0}, {"rz_deg": 2.0},
]
MARGIN = 16  # interior compared (edges differ only by how far the border is replicated)


def textured(height: int, width: int, seed: int = 0) -> np.ndarray:
    """(H, W, 3) float 0..255 smooth texture with structure at several scales."""
    rng = np.random.default_rng(seed)
    image = cv2.GaussianBlur(rng.random((height, width, 3)), (0, 0), 2.0)
    image = (image - image.min()) / (image.max() - image.min())
    return np.round(image * 255.0)


def anim_frames(image: np.ndarray, motion: dict, frames: int, **extra) -> np.ndarray:
    """anim's deforum projection applied `frames` times, each result rounded to 8 bits (a saved frame)."""
    current = torch.from_numpy(image / 255.0).permute(2, 0, 1)[None].float()
    for _ in range(frames):
        current = warp_3d(current, None, projection="deforum", sampling="bilinear", fov_deg=70.0, **motion, **extra)
        current = torch.round(current.clamp(0, 1) * 255.0) / 255.0
    return np.round(current[0].permute(1, 2, 0).double().numpy() * 255.0)


def oracle_frames(image: np.ndarray, motion: dict, frames: int, **extra) -> np.ndarray:
    """The oracle applied `frames` times, each result rounded to 8 bits."""
    current = image
    for _ in range(frames):
        current = np.round(np.clip(deforum_warp_3d(current, fov_deg=70.0, **motion, **extra), 0, 255))
    return current


@pytest.mark.parametrize("height, width", [(256, 256), (144, 256)])
@pytest.mark.parametrize("motion", MOTIONS, ids=lambda m: next(iter(m)))
def test_each_motion_matches_deforum_within_one_level(motion, height, width):
    image = textured(height, width)
    ours, theirs = anim_frames(image, motion, 4), oracle_frames(image, motion, 4)
    inner = (slice(MARGIN, -MARGIN), slice(MARGIN, -MARGIN))
    assert np.abs(ours - image)[inner].max() > 8  # the motion moved something
    assert np.abs(ours - theirs)[inner].max() <= 1.0


def test_aspect_ratio_scales_the_horizontal_projection():
    image = textured(144, 256)
    motion = {"rz_deg": 2.0, "tz": 4.0}
    ours = anim_frames(image, motion, 2, aspect_ratio=256 / 144)
    theirs = oracle_frames(image, motion, 2, aspect_ratio=256 / 144)
    inner = (slice(MARGIN, -MARGIN), slice(MARGIN, -MARGIN))
    assert np.abs(ours - theirs)[inner].max() <= 1.0
    assert np.abs(ours - anim_frames(image, motion, 2))[inner].max() > 4  # aspect 1 differs


def test_signs_as_deforum_measures_them():
    """+translation_x moves content left, +translation_z zooms in (x1.038 per frame for 5 at fov 70)."""
    image = np.zeros((129, 129, 3))
    image[64, 80] = 255.0
    moved = anim_frames(image, {"tx": 3.0}, 1)
    assert moved[64, :80].sum() > moved[64, 81:].sum()
    flow = flow_3d(torch.zeros(1, 1, 256, 256), None, tz=5.0, fov_deg=70.0, projection="deforum")
    source_x = 200 + float(flow[0, 0, 128, 200])  # where the pixel right of the centre reads from
    assert (200 - 127.5) / (source_x - 127.5) == pytest.approx(1.0381, abs=5e-4)


def test_flat_depth_is_one_and_depth_maps_span_one_to_two():
    assert torch.equal(world_depth(None, 1, 2, 3, 50.0, 1000.0, torch.device("cpu")), torch.ones(1, 2, 3,
                                                                                                  dtype=torch.float64))
    depth = torch.tensor([[[[200.0, 10000.0]]]])
    z = world_depth(depth, 1, 1, 2, 200.0, 10000.0, torch.device("cpu"))
    assert z[0, 0].tolist() == pytest.approx([1.0, 2.0])
