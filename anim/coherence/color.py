"""Colour coherence on device tensors: colour spaces and Deforum's histogram colour matching.

Images are float tensors (N, 3, H, W) in [0, 1] on any device; nothing leaves the device except
random numbers, which are drawn on the CPU so a seed gives the same frame on every device.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

COLOR_SPACES = ("none", "lab", "hsv", "rgb")

# sRGB (D65) <-> CIE XYZ, the matrix OpenCV and scikit-image use; white point of that matrix.
_RGB_TO_XYZ = np.array(
    [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]]
)
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
_WHITE_D65 = (0.950456, 1.0, 1.088754)
_LAB_DELTA = 6.0 / 29.0
HUE_BINS = 256  # resolution at which the HSV hue circle is cut for matching


# ---- colour spaces ---------------------------------------------------------------------------


def _mix_channels(image: torch.Tensor, matrix: np.ndarray) -> torch.Tensor:
    """Apply a 3x3 matrix to the channel axis of (N, 3, H, W)."""
    m = torch.as_tensor(matrix, dtype=image.dtype, device=image.device)
    return torch.einsum("ij,njhw->nihw", m, image)


def srgb_to_linear(image: torch.Tensor) -> torch.Tensor:
    """Undo the sRGB transfer curve (values in [0, 1])."""
    return torch.where(image <= 0.04045, image / 12.92, ((image + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(image: torch.Tensor) -> torch.Tensor:
    """Apply the sRGB transfer curve; input is clamped to [0, 1] first (out of gamut)."""
    image = image.clamp(0.0, 1.0)
    return torch.where(image <= 0.0031308, image * 12.92, 1.055 * image ** (1.0 / 2.4) - 0.055)


def rgb_to_lab(image: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1] to CIE L*a*b* (D65): L in [0, 100], a/b roughly [-128, 127], as cv2/skimage."""
    xyz = _mix_channels(srgb_to_linear(image), _RGB_TO_XYZ)
    white = torch.tensor(_WHITE_D65, dtype=image.dtype, device=image.device).view(1, 3, 1, 1)
    t = xyz / white
    f = torch.where(t > _LAB_DELTA**3, t.clamp_min(1e-12) ** (1.0 / 3.0), t / (3 * _LAB_DELTA**2) + 4.0 / 29.0)
    fx, fy, fz = f.unbind(1)
    return torch.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], dim=1)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """CIE L*a*b* (D65) back to sRGB, clamped to [0, 1]."""
    L, a, b = lab.unbind(1)
    fy = (L + 16.0) / 116.0
    f = torch.stack([fy + a / 500.0, fy, fy - b / 200.0], dim=1)
    t = torch.where(f > _LAB_DELTA, f**3, 3 * _LAB_DELTA**2 * (f - 4.0 / 29.0))
    white = torch.tensor(_WHITE_D65, dtype=lab.dtype, device=lab.device).view(1, 3, 1, 1)
    return linear_to_srgb(_mix_channels(t * white, _XYZ_TO_RGB))


def rgb_to_hsv(image: torch.Tensor) -> torch.Tensor:
    """RGB in [0, 1] to HSV with hue in [0, 1) (skimage convention), S and V in [0, 1]."""
    r, g, b = image.unbind(1)
    value, argmax = image.max(dim=1)
    delta = value - image.min(dim=1).values
    safe_delta = torch.where(delta > 0, delta, torch.ones_like(delta))
    hue_r = torch.remainder((g - b) / safe_delta, 6.0)
    hue_g = (b - r) / safe_delta + 2.0
    hue_b = (r - g) / safe_delta + 4.0
    hue6 = torch.where(argmax == 0, hue_r, torch.where(argmax == 1, hue_g, hue_b))
    hue = torch.where(delta > 0, torch.remainder(hue6 / 6.0, 1.0), torch.zeros_like(delta))
    sat = torch.where(value > 0, delta / torch.where(value > 0, value, torch.ones_like(value)), torch.zeros_like(value))
    return torch.stack([hue, sat, value], dim=1)


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """HSV (hue in [0, 1), wrapped) back to RGB in [0, 1], branch-free."""
    hue, sat, value = hsv.unbind(1)
    hue6 = torch.remainder(hue, 1.0) * 6.0
    channels = []
    for n in (5.0, 3.0, 1.0):
        k = torch.remainder(n + hue6, 6.0)
        ramp = torch.minimum(torch.minimum(k, 4.0 - k), torch.ones_like(k)).clamp_min(0.0)
        channels.append(value - value * sat * ramp)
    return torch.stack(channels, dim=1).clamp(0.0, 1.0)


# ---- histogram matching ----------------------------------------------------------------------


def _accumulate_dtype(device: torch.device) -> torch.dtype:
    """float64 for quantile arithmetic, except where the device has none (Apple MPS)."""
    return torch.float32 if device.type == "mps" else torch.float64


def interp(x: torch.Tensor, xp: torch.Tensor, fp: torch.Tensor) -> torch.Tensor:
    """``numpy.interp`` on the device: piecewise-linear through (xp, fp), xp increasing, clamped
    to fp[0] / fp[-1] outside."""
    if xp.numel() == 1:
        return fp.expand_as(x).clone()
    right = torch.searchsorted(xp, x, right=True) - 1
    i = right.clamp(0, xp.numel() - 2)
    x0, x1 = xp[i], xp[i + 1]
    weight = ((x - x0) / (x1 - x0)).clamp(0.0, 1.0)
    return torch.lerp(fp[i], fp[i + 1], weight)


def channel_cdf(channel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sorted unique values, cumulative fraction of pixels at or below each) of one channel."""
    values, counts = torch.unique(channel.reshape(-1), return_counts=True)
    acc = _accumulate_dtype(channel.device)
    return values.to(acc), torch.cumsum(counts.to(acc), 0) / channel.numel()


def map_to_cdf(source: torch.Tensor, ref_values: torch.Tensor, ref_quantiles: torch.Tensor) -> torch.Tensor:
    """Send each unique source value to the reference value at the same cumulative fraction."""
    acc = _accumulate_dtype(source.device)
    _, src_index, src_counts = torch.unique(source.reshape(-1), return_inverse=True, return_counts=True)
    src_quantiles = torch.cumsum(src_counts.to(acc), 0) / source.numel()
    mapped = interp(src_quantiles, ref_quantiles, ref_values)
    return mapped[src_index].to(source.dtype).reshape(source.shape)


def match_channel(source: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Exact quantile mapping of one channel (any shape) onto the reference's distribution, as
    ``skimage.exposure.match_histograms``: each unique source value goes to the reference value
    at the same cumulative fraction (linear between the reference's unique values)."""
    return map_to_cdf(source, *channel_cdf(reference))


def hue_cut(hue_a: torch.Tensor, hue_b: torch.Tensor) -> float:
    """Where to cut the hue circle before matching it as a line: inside the widest circular run of
    least-populated bins (of HUE_BINS) over both images, so no colour family is split; 0.0 (the
    usual cut at red) whenever that run touches 0. Any cut inside one run gives the same result."""
    both = torch.cat([hue_a.reshape(-1), hue_b.reshape(-1)])
    bins = (both * HUE_BINS).long().clamp(0, HUE_BINS - 1)
    counts = torch.bincount(bins, minlength=HUE_BINS).cpu().tolist()  # 256 ints: one tiny sync
    start, length = widest_circular_run([c == min(counts) for c in counts])
    if start == 0 or start + length >= HUE_BINS:  # the run contains or borders hue 0
        return 0.0
    return start / HUE_BINS


def widest_circular_run(flags: list[bool]) -> tuple[int, int]:
    """(start, length) of the longest run of True in a circular list, first one on ties."""
    size = len(flags)
    if all(flags):
        return 0, size
    best_start, best_length, run_start, run_length = 0, 0, 0, 0
    first_false = flags.index(False)  # begin scanning after a False so runs do not split at the seam
    for step in range(1, size + 1):
        index = (first_false + step) % size
        if flags[index]:
            run_start, run_length = (index, 1) if run_length == 0 else (run_start, run_length + 1)
            if run_length > best_length:
                best_start, best_length = run_start, run_length
        else:
            run_length = 0
    return best_start, best_length


_SPACES = {
    "lab": (rgb_to_lab, lab_to_rgb),
    "hsv": (rgb_to_hsv, hsv_to_rgb),
    "rgb": (lambda x: x, lambda x: x),
}


@dataclass(frozen=True)
class HistogramReference:
    """A colour reference prepared once for :func:`match_histograms` (the sort is the costly
    part, and Deforum's reference is usually frame 0 for the whole render). ``channels[n]`` holds,
    per reference image, a CDF per channel; for hsv the hue is kept raw because where the hue
    circle is cut depends on the image being matched too."""

    space: str
    channels: tuple


def prepare_reference(reference: torch.Tensor, space: str = "lab") -> HistogramReference:
    """Convert a (R, 3, h, w) RGB reference to ``space`` and sort its channels once."""
    if space not in _SPACES:
        raise ValueError(f"colour space must be one of {tuple(_SPACES)}, got {space!r}")
    converted = _SPACES[space][0](reference)
    per_image = []
    for ref in converted:
        if space == "hsv":
            per_image.append((ref[0].reshape(-1), channel_cdf(ref[1]), channel_cdf(ref[2])))
        else:
            per_image.append(tuple(channel_cdf(ref[c]) for c in range(3)))
    return HistogramReference(space, tuple(per_image))


def _match_hsv(source: torch.Tensor, reference: tuple) -> torch.Tensor:
    """Match S and V linearly and hue on a circle cut where neither image has colour, so a hue
    range straddling red (0 == 1) is not torn apart; the result hue is wrapped back into [0, 1)."""
    ref_hue, sat_cdf, value_cdf = reference
    cut = hue_cut(source[0], ref_hue)
    src_hue = torch.remainder(source[0] - cut, 1.0)
    hue_cdf = channel_cdf(torch.remainder(ref_hue - cut, 1.0))
    hue = torch.remainder(map_to_cdf(src_hue, *hue_cdf) + cut, 1.0)
    return torch.stack([hue, map_to_cdf(source[1], *sat_cdf), map_to_cdf(source[2], *value_cdf)])


def match_histograms(
    image: torch.Tensor, reference: torch.Tensor | HistogramReference, space: str = "lab"
) -> torch.Tensor:
    """Match each image's per-channel histograms to the reference's in ``space`` (lab | hsv | rgb;
    none returns the image), back to RGB clamped to [0, 1]. Deforum's colour coherence.

    ``reference`` is an RGB (1, 3, h, w) for the whole batch or (N, 3, h, w), any size, or a
    :func:`prepare_reference` of one (faster when the reference does not change).
    """
    if space not in COLOR_SPACES:
        raise ValueError(f"colour space must be one of {COLOR_SPACES}, got {space!r}")
    if space == "none":
        return image
    if not isinstance(reference, HistogramReference):
        reference = prepare_reference(reference.to(device=image.device, dtype=image.dtype), space)
    if reference.space != space:
        raise ValueError(f"reference was prepared for {reference.space!r}, not {space!r}")
    to_space, from_space = _SPACES[space]
    src = to_space(image)
    out = []
    for n in range(src.shape[0]):
        ref_n = reference.channels[n if len(reference.channels) > 1 else 0]
        if space == "hsv":
            out.append(_match_hsv(src[n], ref_n))
        else:
            out.append(torch.stack([map_to_cdf(src[n, c], *ref_n[c]) for c in range(3)]))
    return from_space(torch.stack(out)).clamp(0.0, 1.0)
