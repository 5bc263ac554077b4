"""Test-only numpy reference ("oracle") of Deforum's 3D camera warp.

Written from a reading of deforum-art/sd-webui-deforum (animation.py: anim_frame_warp_3d,
transform_image_3d_new/_legacy; src/py3d_tools.py: FoVPerspectiveCameras, euler_angles_to_matrix,
Transform3d).  No code was copied; it deliberately imports neither torch nor anim.

Conventions reproduced:
  * world point of output pixel (row r, col c) = (linspace(-1,1,W)[c], linspace(-1,1,H)[r], z);
    z = 1 everywhere for flat depth (Deforum ignores `near`/`far` for x,y).
  * R = Rx @ Ry @ Rz (XYZ Euler, radians, right-handed), applied to ROW vectors: X_view = X R + T,
    T = (-tx, +ty, -tz) / 200 with tx,ty,tz = Deforum translation_x/y/z for the frame.
  * x_ndc = x_view / (z_view tan(fov/2) aspect), y_ndc = y_view / (z_view tan(fov/2)).
  * old camera R=I, T=0; grid = pixel-centre identity grid (align_corners=False) - (new - old).
  * aspect_ratio: Deforum's default is aspect_ratio_schedule "0: (1)" (=1.0, our default);
    only with aspect_ratio_use_old_formula=True (default False) does it use W/H.
  * Deforum samples with grid_sample(mode=sampling_mode ['bicubic' by default],
    padding_mode ['border' by default], align_corners=False); this oracle is bilinear only.
"""

import numpy as np

TRANSLATION_SCALE = 1.0 / 200.0  # Deforum's "matches Disco" translation scale
DEFORUM_BIAS = 1.0 / 512.0 - 0.0001  # added to pixels before sampling (legacy path only)

# (depth scale, depth offset, depth factor): z = (d_eq * scale + offset) * factor, d_eq in [0,1]
DEPTH_Z_MAPPING = {
    "midas": (1.0, -2.0, -1.0),  # disparity -> z = 2 - d_eq, in [1, 2]
    "depth-anything": (1.0, -2.3, -1.0),  # Forge fork only -> z = 2.3 - d_eq, in [1.3, 2.3]
    "adabins": (1.0, 1.0, 1.0),  # metric depth -> z = 1 + d_eq, in [1, 2]
    "zoe": (1.0, 1.0, 1.0),
    "leres": (1.0, 1.0, 1.0),
}


def euler_xyz_matrix(rx, ry, rz):
    """Rotation matrix Rx @ Ry @ Rz for XYZ Euler angles in radians (pytorch3d convention)."""
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    mx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]], dtype=np.float64)
    my = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]], dtype=np.float64)
    mz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]], dtype=np.float64)
    return mx @ my @ mz


def world_points(width, height, depth=None):
    """(H*W, 3) world points Deforum unprojects: linspace x/y in [-1,1], z = depth or 1."""
    y, x = np.meshgrid(np.linspace(-1.0, 1.0, height), np.linspace(-1.0, 1.0, width), indexing="ij")
    z = np.ones_like(x) if depth is None else np.asarray(depth, dtype=np.float64).reshape(height, width)
    return np.stack([x.ravel(), y.ravel(), z.ravel()], axis=1)


def project(points, rotation, translation, fov_deg, aspect_ratio):
    """(N, 2) NDC x,y of row-vector points seen by a FoV camera (X R + T, then divide by z)."""
    view = points @ rotation + np.asarray(translation, dtype=np.float64)
    tan_half = np.tan(np.deg2rad(fov_deg) / 2.0)
    return np.stack([view[:, 0] / (view[:, 2] * tan_half * aspect_ratio),
                     view[:, 1] / (view[:, 2] * tan_half)], axis=1)


def identity_grid(width, height):
    """(H, W, 2) pixel-centre grid, as torch affine_grid(identity, align_corners=False) gives."""
    xs = (2.0 * np.arange(width) + 1.0) / width - 1.0
    ys = (2.0 * np.arange(height) + 1.0) / height - 1.0
    gx, gy = np.meshgrid(xs, ys, indexing="xy")
    return np.stack([gx, gy], axis=-1)


def deforum_grid(width, height, *, tx=0.0, ty=0.0, tz=0.0, rx_deg=0.0, ry_deg=0.0, rz_deg=0.0,
                 fov_deg=70.0, aspect_ratio=1.0, depth=None):
    """(H, W, 2) grid_sample coordinates Deforum builds; depth = z values (already mapped) or None."""
    pts = world_points(width, height, depth)
    rot = euler_xyz_matrix(*np.deg2rad([rx_deg, ry_deg, rz_deg]))
    trans = np.array([-tx, ty, -tz], dtype=np.float64) * TRANSLATION_SCALE
    old = project(pts, np.eye(3), np.zeros(3), fov_deg, aspect_ratio)
    new = project(pts, rot, trans, fov_deg, aspect_ratio)
    return identity_grid(width, height) - (new - old).reshape(height, width, 2)


def grid_sample_bilinear_border(image, grid):
    """Sample (H, W, C) image at grid like torch grid_sample(bilinear, border, align_corners=False)."""
    img = np.asarray(image, dtype=np.float64)
    h, w = img.shape[:2]
    ix = np.clip(((grid[..., 0] + 1.0) * w - 1.0) / 2.0, 0.0, w - 1.0)  # border: clamp the coordinate
    iy = np.clip(((grid[..., 1] + 1.0) * h - 1.0) / 2.0, 0.0, h - 1.0)
    x0, y0 = np.floor(ix).astype(np.int64), np.floor(iy).astype(np.int64)
    fx, fy = (ix - x0)[..., None], (iy - y0)[..., None]
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)  # weight is 0 when clamped
    top = img[y0, x0] * (1.0 - fx) + img[y0, x1] * fx
    bottom = img[y1, x0] * (1.0 - fx) + img[y1, x1] * fx
    return top * (1.0 - fy) + bottom * fy


def deforum_warp_3d(image, *, add_bias=False, to_uint8=False, **motion):
    """Warp (H, W, C) image like Deforum's 3D mode (bilinear/border); float64 unless to_uint8.

    add_bias adds Deforum's (1/512 - 0.0001) before sampling (legacy path only); to_uint8 then
    clamps to 0..255 and truncates, as Deforum's .astype(uint8) does.
    """
    img = np.asarray(image, dtype=np.float64)
    out = grid_sample_bilinear_border(img + (DEFORUM_BIAS if add_bias else 0.0),
                                      deforum_grid(img.shape[1], img.shape[0], **motion))
    return np.clip(out, 0.0, 255.0).astype(np.uint8) if to_uint8 else out


def deforum_depth_to_z(raw_depth, algorithm):
    """z values Deforum's non-legacy path derives from a raw depth map (min-max, equalise, map).

    The legacy '* +AdaBins (old)' algorithms are not covered: they pass the raw map through as z.
    """
    if "(old)" in algorithm:
        raise ValueError("legacy depth algorithms use the raw depth map as z")
    d = np.asarray(raw_depth, dtype=np.float64)
    if not np.isfinite(d).all() or d.min() == d.max():
        return np.ones_like(d)  # Deforum falls back to flat depth for invalid maps
    d = (d - d.min()) / (d.max() - d.min())
    hist, edges = np.histogram(d, bins=1024, range=(0.0, 1.0))
    cdf = np.cumsum(hist) / float(hist.sum())
    d = np.interp(d, edges[:-1], cdf)  # Deforum's histogram equalisation
    key = next(k for k in DEPTH_Z_MAPPING if algorithm.lower().startswith(k))
    scale, offset, factor = DEPTH_Z_MAPPING[key]
    return (d * scale + offset) * factor
