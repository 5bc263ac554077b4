"""Optical flow between two frames, a forward/backward occlusion test, and warping by a flow.

One convention everywhere (OpenCV's): ``flow = estimate_flow(a, b)`` is the *forward* flow from
``a`` to ``b`` in pixels, so ``a(x) ~ b(x + flow(x))``. Read as a warp field it maps each
destination pixel to an offset into the source: ``warp_by_flow(b, flow) ~ a``.

Two flow layouts are accepted: a numpy (H, W, 2) float32 array (cv2 layout, channel 0 = dx) or a
torch (N, 2, H, W) float tensor (channel 0 = dx). Functions return the layout they were given.
Pixel (x, y) is the centre of column x, row y, y pointing down (as in anim.motion.camera2d).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from anim.errors import InputError, ModelError
from anim.motion.camera2d import BORDER_MODES, pixel_to_normalized

SAMPLING_MODES = ("bilinear", "bicubic", "nearest")  # grid_sample interpolations
FLOW_METHODS = ("dis", "farneback", "raft", "raft_small", "raft_large")
# Sundaram et al. 2010 / Ruder et al. 2016 constants for the forward/backward consistency test.
CONSISTENCY_ALPHA = 0.01
CONSISTENCY_BETA_PX2 = 0.5
_PADDING_MODE = {"replicate": "border", "reflect": "reflection", "reflection": "reflection",
                 "zeros": "zeros", "wrap": "border"}
_RAFT_MULTIPLE_PX = 8  # RAFT needs sides that are multiples of 8 ...
_RAFT_MIN_SIDE_PX = 128  # ... and at least 128 px (its correlation pyramid)


# ---- sampling ---------------------------------------------------------------------------------


def border_mode(border: str) -> str:
    """Canonical border name (``reflection`` is accepted as grid_sample's spelling of ``reflect``)."""
    name = "reflect" if border == "reflection" else border
    if name not in BORDER_MODES:
        raise ValueError(f"border must be one of {BORDER_MODES}, got {border!r}")
    return name


def sample_px(image: torch.Tensor, coords_px: torch.Tensor, border: str = "replicate",
              mode: str = "bilinear") -> torch.Tensor:
    """``out[n, :, y, x] = image[n, :, coords[n, y, x, 1], coords[n, y, x, 0]]`` with pixel coordinates
    (N, H', W', 2) in any float dtype, interpolated by ``mode`` (bilinear | bicubic | nearest); ``border`` as
    in anim.motion.camera2d (``wrap`` wraps the coordinates and pads the image circularly so taps across the
    seam read the far edge)."""
    border = border_mode(border)
    if mode not in SAMPLING_MODES:
        raise ValueError(f"sampling mode must be one of {SAMPLING_MODES}, got {mode!r}")
    height, width = image.shape[-2:]
    source = image
    if border == "wrap":
        sizes = torch.tensor([width, height], dtype=coords_px.dtype, device=coords_px.device)
        before = 1 if mode == "bicubic" else 0  # bicubic reads one tap before and two after
        coords_px = torch.remainder(coords_px, sizes) + before
        source = F.pad(image, (before, before + 1, before, before + 1), mode="circular")
        height, width = height + 2 * before + 1, width + 2 * before + 1
    grid = pixel_to_normalized(coords_px, height, width).to(device=image.device, dtype=image.dtype)
    return F.grid_sample(source, grid, mode=mode, padding_mode=_PADDING_MODE[border], align_corners=False)


def pixel_grid(height: int, width: int, *, dtype=torch.float64, device="cpu") -> torch.Tensor:
    """(1, H, W, 2) pixel-centre coordinates (x, y) of every pixel."""
    ys = torch.arange(height, dtype=dtype, device=device)
    xs = torch.arange(width, dtype=dtype, device=device)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([grid_x, grid_y], dim=-1)[None]


def flow_to_tensor(flow, device=None) -> torch.Tensor:
    """(N, 2, H, W) float32 tensor from a numpy (H, W, 2) flow or a tensor (returned as is)."""
    if isinstance(flow, torch.Tensor):
        if flow.dim() != 4 or flow.shape[1] != 2:
            raise ValueError(f"flow tensor must be (N, 2, H, W), got {tuple(flow.shape)}")
        return flow if device is None else flow.to(device)
    array = np.asarray(flow, dtype=np.float32)
    if array.ndim != 3 or array.shape[2] != 2:
        raise ValueError(f"flow array must be (H, W, 2), got {array.shape}")
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))[None].to(device or "cpu")


def flow_to_numpy(flow: torch.Tensor) -> np.ndarray:
    """(H, W, 2) float32 array from a (1, 2, H, W) flow tensor."""
    return np.ascontiguousarray(flow[0].detach().permute(1, 2, 0).to("cpu", torch.float32).numpy())


def warp_by_flow(image: torch.Tensor, flow, border: str = "replicate") -> torch.Tensor:
    """Backward warp on the image's device: ``out(x) = image(x + flow(x))`` (bilinear).

    ``image`` is (N, C, H, W); ``flow`` is (N or 1, 2, H, W) or numpy (H, W, 2), in pixels. An
    all-zero flow returns an exact copy (so identical frames compare exactly equal)."""
    if image.dim() != 4:
        raise ValueError(f"image must be (N, C, H, W), got {tuple(image.shape)}")
    flow_t = flow_to_tensor(flow, image.device)
    if flow_t.shape[-2:] != image.shape[-2:]:
        raise ValueError(f"flow size {tuple(flow_t.shape[-2:])} differs from image size {tuple(image.shape[-2:])}")
    if not bool(flow_t.any()):
        return image.clone()
    height, width = image.shape[-2:]
    coords = pixel_grid(height, width, dtype=torch.float32, device=image.device)
    coords = coords + flow_t.to(torch.float32).permute(0, 2, 3, 1)
    if coords.shape[0] != image.shape[0]:
        coords = coords.expand(image.shape[0], -1, -1, -1)
    return sample_px(image, coords, border)


# ---- occlusion ---------------------------------------------------------------------------------


def consistency_mask(fwd, bwd, *, alpha: float = CONSISTENCY_ALPHA, beta_px2: float = CONSISTENCY_BETA_PX2):
    """Forward/backward consistency (Sundaram et al. 2010): pixel x of frame a is kept (1) when
    ``|f(x) + b(x + f(x))|^2 < alpha (|f(x)|^2 + |b(x + f(x))|^2) + beta_px2`` and x + f(x) lands
    inside frame b, else 0 (occluded, disoccluded or flow unreliable).

    ``fwd`` is the flow a->b and ``bwd`` the flow b->a, both numpy (H, W, 2) or tensors (N, 2, H, W).
    Returns an (H, W) float32 array or an (N, 1, H, W) float32 tensor of 0/1, in frame a."""
    as_numpy = not isinstance(fwd, torch.Tensor)
    fwd_t = flow_to_tensor(fwd).to(torch.float32)
    bwd_t = flow_to_tensor(bwd, fwd_t.device).to(torch.float32)
    height, width = fwd_t.shape[-2:]
    target = pixel_grid(height, width, dtype=torch.float32, device=fwd_t.device) + fwd_t.permute(0, 2, 3, 1)
    bwd_at_target = sample_px(bwd_t, target, "replicate")
    round_trip = ((fwd_t + bwd_at_target) ** 2).sum(1, keepdim=True)
    magnitude = (fwd_t**2).sum(1, keepdim=True) + (bwd_at_target**2).sum(1, keepdim=True)
    inside = ((target[..., 0] >= -0.5) & (target[..., 0] <= width - 0.5)
              & (target[..., 1] >= -0.5) & (target[..., 1] <= height - 0.5)).unsqueeze(1)
    mask = ((round_trip < alpha * magnitude + beta_px2) & inside).to(torch.float32)
    return mask[0, 0].cpu().numpy() if as_numpy else mask


# ---- estimation -------------------------------------------------------------------------------


def to_gray_u8(frame) -> np.ndarray:
    """(H, W) uint8 luma from an (H, W, 3) uint8 RGB array or a (1, 3, H, W) tensor in [0, 1]."""
    if isinstance(frame, torch.Tensor):
        if frame.dim() != 4 or frame.shape[0] != 1 or frame.shape[1] != 3:
            raise ValueError(f"frame tensor must be (1, 3, H, W), got {tuple(frame.shape)}")
        frame = torch.round(frame[0].detach().clamp(0, 1) * 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(f"frame must be an (H, W, 3) uint8 array, got {frame.dtype} {frame.shape}")
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)


def estimate_flow(a, b, method: str = "dis"):
    """Forward optical flow from frame ``a`` to frame ``b`` (``a(x) ~ b(x + flow(x))``), in pixels.

    Frames are (H, W, 3) uint8 RGB arrays (returns an (H, W, 2) float32 array) or (1, 3, H, W)
    tensors in [0, 1] (returns a (1, 2, H, W) float32 tensor on their device). Methods:
    ``dis`` (cv2 DIS, preset MEDIUM: fast, robust; default), ``farneback`` (cv2, dense polynomial
    expansion), ``raft`` / ``raft_large`` / ``raft_small`` (torchvision RAFT, only with its
    weights already in the torch hub cache; never downloaded). Deterministic for a given input."""
    if method not in FLOW_METHODS:
        raise InputError(f"unknown flow method {method!r}; use one of {', '.join(FLOW_METHODS)}")
    as_tensor = isinstance(a, torch.Tensor)
    if method.startswith("raft"):
        flow = raft_flow(_as_tensor_frame(a), _as_tensor_frame(b, a), method)
        return flow if as_tensor else flow_to_numpy(flow)
    gray_a, gray_b = to_gray_u8(a), to_gray_u8(b)
    if gray_a.shape != gray_b.shape:
        raise InputError(f"frames differ in size: {gray_a.shape[::-1]} vs {gray_b.shape[::-1]}")
    flow = dis_flow(gray_a, gray_b) if method == "dis" else farneback_flow(gray_a, gray_b)
    return flow_to_tensor(flow, a.device) if as_tensor else flow


def dis_flow(gray_a: np.ndarray, gray_b: np.ndarray) -> np.ndarray:
    """cv2 DIS optical flow (preset MEDIUM) between two (H, W) uint8 images -> (H, W, 2) float32."""
    import cv2

    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    return dis.calc(gray_a, gray_b, None)


def farneback_flow(gray_a: np.ndarray, gray_b: np.ndarray) -> np.ndarray:
    """cv2 Farneback flow (3-level pyramid, 15 px window, 5 px polynomial) -> (H, W, 2) float32."""
    import cv2

    return cv2.calcOpticalFlowFarneback(gray_a, gray_b, None, pyr_scale=0.5, levels=3, winsize=15,
                                        iterations=3, poly_n=5, poly_sigma=1.2, flags=0)


# ---- RAFT (torchvision, local weights only) -----------------------------------------------------


def _as_tensor_frame(frame, like=None) -> torch.Tensor:
    """(1, 3, H, W) float32 in [0, 1] from a uint8 (H, W, 3) array or a tensor."""
    if isinstance(frame, torch.Tensor):
        return frame.to(torch.float32)
    array = np.asarray(frame)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"frame must be an (H, W, 3) uint8 array, got {array.dtype} {array.shape}")
    device = like.device if isinstance(like, torch.Tensor) else "cpu"
    return (torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1)[None].to(device) / 255.0).float()


def raft_weights_path(method: str) -> Path:
    """Where torch hub keeps the RAFT checkpoint for ``method`` (whether or not it is there)."""
    from torchvision.models.optical_flow import Raft_Large_Weights, Raft_Small_Weights

    weights = Raft_Small_Weights.DEFAULT if method == "raft_small" else Raft_Large_Weights.DEFAULT  # raft = large
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(weights.url)


def load_raft(method: str, device: torch.device) -> torch.nn.Module:
    """A torchvision RAFT (``raft`` = ``raft_large``, or ``raft_small``) with weights read from the
    local torch hub cache; ModelError naming the method and the expected file when absent. The checkpoint
    is a pickle: callers ask the user's allow_pickle first (the preset schema, `metrics --allow-pickle`)."""
    return _load_raft(method, str(raft_weights_path(method)), str(device))


@functools.lru_cache(maxsize=4)
def _load_raft(method: str, path_text: str, device: str) -> torch.nn.Module:
    """The RAFT model, loaded once per (method, file, device) in a process."""
    from torchvision.models.optical_flow import raft_large, raft_small

    path = Path(path_text)
    if not path.is_file():
        raise ModelError(f"flow method '{method}' needs its weights at {path} (not downloaded automatically); "
                         "use `dis` or place the torchvision checkpoint there")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model = (raft_small if method == "raft_small" else raft_large)(weights=None, progress=False)
        model.load_state_dict(state)
    except Exception as exc:  # a truncated or foreign file
        raise ModelError(f"could not load RAFT weights {path} ({type(exc).__name__}); use `dis`") from None
    return model.to(device).eval()


def raft_pad(height: int, width: int) -> tuple[int, int, int, int]:
    """F.pad amounts (left, right, top, bottom) that make a frame fit RAFT."""
    def extra(side: int) -> int:
        return max(_RAFT_MIN_SIDE_PX, side + (-side) % _RAFT_MULTIPLE_PX) - side

    return 0, extra(width), 0, extra(height)


def raft_flow(a: torch.Tensor, b: torch.Tensor, method: str = "raft") -> torch.Tensor:
    """RAFT forward flow a->b, (1, 2, H, W) on the frames' device; frames are padded (replicate) on
    the right/bottom to fit RAFT and the flow cropped back."""
    model = load_raft(method, a.device)
    height, width = a.shape[-2:]
    pad = raft_pad(height, width)
    a_in = F.pad(a * 2.0 - 1.0, pad, mode="replicate")
    b_in = F.pad(b.to(a.device) * 2.0 - 1.0, pad, mode="replicate")
    with torch.no_grad():
        flows = model(a_in, b_in)
    return flows[-1][..., :height, :width].to(torch.float32)
