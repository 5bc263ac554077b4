"""Interpolation between keyframe anchors: easing curves and a natural cubic spline (numpy only)."""

from __future__ import annotations

import numpy as np

EASES = ("linear", "step", "cubic", "ease_in", "ease_out", "ease_in_out")


def ease_linear(u: np.ndarray) -> np.ndarray:
    """g(u) = u: constant speed from one key to the next."""
    return u


def ease_step(u: np.ndarray) -> np.ndarray:
    """g(u) = 0: hold the key's value until the next key, then jump."""
    return np.zeros_like(u)


def ease_in(u: np.ndarray) -> np.ndarray:
    """g(u) = u³: starts at rest, speeds up into the next key."""
    return u ** 3


def ease_out(u: np.ndarray) -> np.ndarray:
    """g(u) = 1 - (1-u)³: leaves fast, comes to rest at the next key."""
    return 1.0 - (1.0 - u) ** 3


def ease_in_out(u: np.ndarray) -> np.ndarray:
    """g(u) = 4u³ for u < ½, else 1 - (2-2u)³/2: at rest at both keys, fastest midway."""
    return np.where(u < 0.5, 4.0 * u ** 3, 1.0 - (2.0 - 2.0 * u) ** 3 / 2.0)


EASE_CURVES = {
    "linear": ease_linear, "step": ease_step,
    "ease_in": ease_in, "ease_out": ease_out, "ease_in_out": ease_in_out,
}


def natural_cubic_moments(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Second derivatives M at the knots of the natural cubic spline through (x, y) (M=0 at ends).

    Solves the tridiagonal system h[i-1]·M[i-1] + 2(h[i-1]+h[i])·M[i] + h[i]·M[i+1]
    = 6·(slope[i] - slope[i-1]) with the Thomas algorithm; x must be strictly increasing."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = len(x)
    moments = np.zeros(n)
    if n < 3:
        return moments
    h = np.diff(x)
    slope = np.diff(y) / h
    lower = h[:-1].copy()              # sub-diagonal for rows 1..n-2 (first entry unused)
    diag = 2.0 * (h[:-1] + h[1:])
    upper = h[1:].copy()               # super-diagonal (last entry unused)
    rhs = 6.0 * np.diff(slope)
    for i in range(1, n - 2):          # forward elimination
        factor = lower[i] / diag[i - 1]
        diag[i] -= factor * upper[i - 1]
        rhs[i] -= factor * rhs[i - 1]
    inner = np.empty(n - 2)
    inner[-1] = rhs[-1] / diag[-1]
    for i in range(n - 4, -1, -1):     # back substitution
        inner[i] = (rhs[i] - upper[i] * inner[i + 1]) / diag[i]
    moments[1:-1] = inner
    return moments


def natural_cubic_eval(x: np.ndarray, y: np.ndarray, moments: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The spline value at positions ``at`` (clamped to the knot range), from natural_cubic_moments."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    at = np.clip(np.asarray(at, dtype=np.float64), x[0], x[-1])
    if len(x) == 1:
        return np.full(at.shape, y[0])
    seg = np.clip(np.searchsorted(x, at, side="right") - 1, 0, len(x) - 2)
    x0, x1, y0, y1 = x[seg], x[seg + 1], y[seg], y[seg + 1]
    m0, m1 = moments[seg], moments[seg + 1]
    h = x1 - x0
    a, b = x1 - at, at - x0
    return (m0 * a ** 3 + m1 * b ** 3) / (6.0 * h) + (y0 / h - m0 * h / 6.0) * a + (y1 / h - m1 * h / 6.0) * b


def natural_cubic(x, y, at) -> np.ndarray:
    """Natural cubic spline through the knots (x, y), evaluated at ``at``: C2-smooth, exact at knots."""
    return natural_cubic_eval(x, y, natural_cubic_moments(x, y), at)
