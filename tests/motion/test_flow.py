"""Optical flow: known translations, exact backward warps, occlusion masks, RAFT offline."""

import cv2
import numpy as np
import pytest
import torch

from anim.errors import InputError, ModelError
from anim.motion.flow import (
    consistency_mask,
    estimate_flow,
    flow_to_tensor,
    raft_weights_path,
    warp_by_flow,
)

SIZE = 96
DX, DY = 3, -2
INNER = slice(16, -16)


def texture(height, width, seed=0, sigma=2.0):
    """uint8 RGB texture with detail at several scales (good for flow)."""
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.random((height, width, 3)).astype(np.float32), (0, 0), sigma)
    base = (base - base.min()) / (base.max() - base.min())
    return np.round(base * 255).astype(np.uint8)


def shifted_pair(dx=DX, dy=DY, size=SIZE):
    """Frames a, b where content moves by (dx, dy) from a to b, so a(x) = b(x + (dx, dy))."""
    big = texture(size + 20, size + 20)
    y0, x0 = 10, 10
    a = big[y0 : y0 + size, x0 : x0 + size]
    b = big[y0 - dy : y0 - dy + size, x0 - dx : x0 - dx + size]
    return np.ascontiguousarray(a), np.ascontiguousarray(b)


def to_tensor(hwc):
    return torch.from_numpy(hwc).permute(2, 0, 1)[None].float() / 255.0


@pytest.mark.parametrize("method, tol_px", [("dis", 0.15), ("farneback", 0.3)])
def test_known_translation(method, tol_px):
    a, b = shifted_pair()
    flow = estimate_flow(a, b, method)
    assert flow.shape == (SIZE, SIZE, 2) and flow.dtype == np.float32
    inner = flow[INNER, INNER]
    assert abs(float(np.median(inner[..., 0])) - DX) < tol_px
    assert abs(float(np.median(inner[..., 1])) - DY) < tol_px
    assert float(np.mean(np.abs(inner - [DX, DY]))) < 2 * tol_px


def test_tensor_frames_give_a_tensor_flow():
    a, b = shifted_pair()
    flow = estimate_flow(to_tensor(a), to_tensor(b))
    assert isinstance(flow, torch.Tensor) and flow.shape == (1, 2, SIZE, SIZE)
    np.testing.assert_allclose(flow[0].permute(1, 2, 0).numpy(), estimate_flow(a, b), atol=1e-6)


def test_warp_by_the_estimated_flow_reconstructs_the_frame():
    a, b = shifted_pair()
    warped = warp_by_flow(to_tensor(b), estimate_flow(a, b))
    err = (warped - to_tensor(a))[..., INNER, INNER].abs().mean()
    assert float(err) < 0.01


def test_warp_by_an_integer_flow_is_an_exact_shift():
    a, b = shifted_pair()
    flow = np.zeros((SIZE, SIZE, 2), np.float32)
    flow[..., 0], flow[..., 1] = DX, DY
    warped = warp_by_flow(to_tensor(b), flow)
    torch.testing.assert_close(warped[..., INNER, INNER], to_tensor(a)[..., INNER, INNER], atol=1e-6, rtol=0)


def test_zero_flow_is_an_exact_copy_and_batches_broadcast():
    images = torch.rand(2, 3, 8, 8)
    out = warp_by_flow(images, torch.zeros(1, 2, 8, 8))
    assert torch.equal(out, images) and out is not images
    moved = warp_by_flow(images, torch.ones(1, 2, 8, 8), border="zeros")
    torch.testing.assert_close(moved[:, :, :-1, :-1], images[:, :, 1:, 1:])
    assert float(moved[:, :, -1].abs().max()) == 0.0


def square_scene(dx):
    """Background still, a textured 24-px square moving right by dx: analytic fwd/bwd flows."""
    size, top, left, side = 64, 20, 16, 24
    fwd = np.zeros((size, size, 2), np.float32)
    bwd = np.zeros((size, size, 2), np.float32)
    fwd[top : top + side, left : left + side, 0] = dx
    bwd[top : top + side, left + dx : left + dx + side, 0] = -dx
    return fwd, bwd, (top, left, side)


def test_consistency_mask_marks_occluded_and_disoccluded_regions():
    dx = 6
    fwd, bwd, (top, left, side) = square_scene(dx)
    mask_a = consistency_mask(fwd, bwd)  # in frame a: background about to be covered is inconsistent
    assert mask_a.shape == (64, 64) and mask_a.dtype == np.float32
    assert mask_a[top : top + side, left + side : left + side + dx].max() == 0.0
    assert mask_a[top : top + side, left : left + side].min() == 1.0  # the square itself is tracked
    assert mask_a[:top].min() == 1.0 and mask_a[top + side :].min() == 1.0
    mask_b = consistency_mask(bwd, fwd)  # in frame b: the strip uncovered behind the square
    assert mask_b[top : top + side, left : left + dx].max() == 0.0
    assert mask_b[top : top + side, left + dx : left + dx + side].min() == 1.0


def test_consistency_mask_on_estimated_flow_of_a_moving_square():
    dx, size, side, top, left = 6, 128, 48, 42, 32
    background, square = texture(size, size, seed=1), texture(side, side, seed=2, sigma=1.0)
    a, b = background.copy(), background.copy()
    a[top : top + side, left : left + side] = square
    b[top : top + side, left + dx : left + dx + side] = square
    fwd, bwd = estimate_flow(a, b), estimate_flow(b, a)
    mask = consistency_mask(flow_to_tensor(fwd), flow_to_tensor(bwd))[0, 0]
    assert mask.shape == (size, size)
    covered = mask[top + 2 : top + side - 2, left + side + 1 : left + side + dx]  # hidden in b
    assert float(covered.mean()) < 0.35
    assert float(mask[top + 2 : top + side - 2, left + 2 : left + side - 2].mean()) > 0.95  # tracked
    assert float(mask[top + side + 8 :].mean()) > 0.99  # far from the square


def test_consistency_mask_rejects_flow_leaving_the_frame():
    fwd = np.full((16, 16, 2), [5.0, 0.0], np.float32)
    bwd = np.full((16, 16, 2), [-5.0, 0.0], np.float32)
    mask = consistency_mask(fwd, bwd)
    assert mask[:, -4:].max() == 0.0 and mask[:, :10].min() == 1.0


def test_raft_without_local_weights_is_a_model_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    a, b = shifted_pair()
    for method in ("raft", "raft_small"):
        with pytest.raises(ModelError, match=rf"'{method}'.*`dis`"):
            estimate_flow(a, b, method)


def test_raft_with_local_weights_runs_offline(tmp_path, monkeypatch):
    from torchvision.models.optical_flow import raft_small

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path = raft_weights_path("raft_small")
    path.parent.mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(raft_small(weights=None).state_dict(), path)  # random weights stand in for the real file
    a, b = shifted_pair(size=60)  # not a multiple of 8: padded and cropped back
    flow = estimate_flow(a, b, "raft_small")
    assert flow.shape == (60, 60, 2) and np.isfinite(flow).all()


def test_unknown_method_and_mismatched_frames():
    a, b = shifted_pair()
    with pytest.raises(InputError, match="unknown flow method"):
        estimate_flow(a, b, "lucas")
    with pytest.raises(InputError, match="differ in size"):
        estimate_flow(a, b[:-2])
