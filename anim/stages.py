"""The per-frame image stages of the loop, as small functions of (image tensor, frame row, preset)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from anim.coherence import add_noise, apply_contrast, from_uint8_hwc, match_histograms, unsharp_mask
from anim.errors import InputError
from anim.motion.camera2d import camera_matrix_2d, warp_perspective
from anim.preset import Preset


def camera_matrix(row: dict, width: int, height: int) -> np.ndarray:
    """The frame's 2D camera matrix from its row (Deforum: rotate+zoom about the centre, then translate)."""
    return camera_matrix_2d(
        angle_deg=row["angle"], zoom=row["zoom"], tx_px=row["translation_x"], ty_px=row["translation_y"],
        center_x_frac=row["transform_center_x"], center_y_frac=row["transform_center_y"],
        width=width, height=height,
    )


class Camera:
    """Step 2: moves the previous frame by a frame's motion: 2D matrix, or 3D with the frame's depth."""

    def __init__(self, preset: Preset, device: torch.device, dtype: torch.dtype = torch.float32,
                 depth_dir: Path | None = None) -> None:
        self.preset, self.motion = preset, preset.motion
        self.depth_model = None
        self.depth_dir = depth_dir if preset.motion.save_depth else None
        if self.motion.mode == "3d":
            from anim.models import load_depth_model

            self.depth_model = load_depth_model(self.motion.depth_model, device=device, dtype=dtype)

    def move(self, image: torch.Tensor, row: dict, source_frame: int | None = None) -> torch.Tensor:
        """`image` (the frame before `row`'s frame) seen after `row`'s camera motion."""
        if self.motion.mode == "none":
            return image
        if self.motion.mode == "2d":
            matrix = camera_matrix(row, self.preset.width, self.preset.height)
            return warp_perspective(image, matrix, border=self.motion.border)
        return self.move_3d(image, row, self.depth(image, row, source_frame))

    def move_many(self, image: torch.Tensor, rows: list[dict], inverse: bool = False) -> torch.Tensor:
        """`image` moved by several frames' motion in order (or undone, newest first, when `inverse`).

        2D composes the matrices into one warp (one resampling); 3D moves frame by frame, re-estimating depth.
        """
        if not rows or self.motion.mode == "none":
            return image
        if self.motion.mode == "2d":
            total = np.eye(3)
            for row in rows:  # img_f(x) = img_{f-1}(M_f^-1 x), so the moves compose as M_last ... M_first
                total = camera_matrix(row, self.preset.width, self.preset.height) @ total
            if inverse:
                total = np.linalg.inv(total)
            return warp_perspective(image, total, border=self.motion.border)
        for row in (reversed(rows) if inverse else rows):
            image = self.move_3d(image, row, self.depth(image, row), scale=-1.0 if inverse else 1.0)
        return image

    def depth(self, image: torch.Tensor, row: dict, source_frame: int | None = None) -> torch.Tensor:
        """Depth of `image` in [near, far] (flat without a model); saved as depth/<source_frame>.png if asked."""
        depth = self.depth_model.predict(image, near=row["near"], far=row["far"])
        if self.depth_dir is not None and source_frame is not None:
            from anim.motion.depth import save_depth_png

            save_depth_png(depth, self.depth_dir / f"{source_frame:06d}.png")
        return depth

    def move_3d(self, image: torch.Tensor, row: dict, depth: torch.Tensor | None, scale: float = 1.0) -> torch.Tensor:
        """The 3D warp with `row`'s motion (times `scale`, -1 for the inverse move used by cadence)."""
        from anim.motion.camera3d import warp_3d

        return warp_3d(
            image, depth, tx=scale * row["translation_x"], ty=scale * row["translation_y"],
            tz=scale * row["translation_z"], rx_deg=scale * row["rotation_3d_x"], ry_deg=scale * row["rotation_3d_y"],
            rz_deg=scale * row["rotation_3d_z"], fov_deg=row["fov"], near=row["near"], far=row["far"],
            border=self.motion.border)


def flow_coherence(base: torch.Tensor, prev: torch.Tensor, source_now: np.ndarray, source_before: np.ndarray,
                   strength: float, method: str = "dis") -> torch.Tensor:
    """Video input: blend the previous output, moved by the INPUT video's flow, into the init.

    Only where forward/backward flow agree (elsewhere, occluded, the init keeps `base`, the input frame).
    """
    from anim.motion.flow import consistency_mask, estimate_flow, warp_by_flow

    forward = estimate_flow(source_now, source_before, method)  # now(x) ~ before(x + flow(x))
    backward = estimate_flow(source_before, source_now, method)
    mask = torch.from_numpy(consistency_mask(forward, backward)).to(base.device)[None, None]
    followed = warp_by_flow(prev, forward)
    return base + (strength * mask) * (followed - base)


def prepare_init(image: torch.Tensor, reference, row: dict, preset: Preset) -> torch.Tensor:
    """Step 3: colour match to the reference, contrast, unsharp mask, seeded noise (Deforum's order)."""
    if reference is not None and preset.color_coherence != "none":
        image = match_histograms(image, reference, preset.color_coherence)
    if row["contrast"] != 1.0:
        image = apply_contrast(image, row["contrast"])
    if row["unsharp_amount"] != 0.0:
        image = unsharp_mask(image, row["unsharp_amount"], kernel_size=int(row["unsharp_kernel"]),
                             sigma=row["unsharp_sigma"], threshold=row["unsharp_threshold"])
    if row["noise"] > 0.0:
        image = add_noise(image, row["noise"], seed=int(row["seed"]), noise_type=preset.noise_type)
    return image


def finish(image: torch.Tensor, reference, preset: Preset) -> torch.Tensor:
    """Step 6: colour match the diffused output to the reference again."""
    if reference is not None and preset.color_coherence != "none":
        return match_histograms(image, reference, preset.color_coherence)
    return image


def load_image(path: str | Path, width: int, height: int, device: torch.device, what: str) -> torch.Tensor:
    """An image file, cover-resized and centre-cropped to width x height, as a (1,3,H,W) tensor."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what}: file not found: {path}")
    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"{what}: cannot read image {path}: {exc}") from None
    return from_uint8_hwc(cover_resize(np.asarray(rgb), width, height), device)


def cover_geometry(src_w: int, src_h: int, width: int, height: int) -> tuple[int, int, int, int]:
    """(scaled_w, scaled_h, left, top): scale to cover width x height, then the centre crop's offset."""
    scale = max(width / src_w, height / src_h)
    new_w, new_h = max(width, round(src_w * scale)), max(height, round(src_h * scale))
    return new_w, new_h, (new_w - width) // 2, (new_h - height) // 2


def cover_resize(image_u8: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale so the image covers width x height, then centre-crop (no distortion, no borders)."""
    h, w = image_u8.shape[:2]
    new_w, new_h, left, top = cover_geometry(w, h, width, height)
    resized = np.asarray(Image.fromarray(image_u8).resize((new_w, new_h), Image.Resampling.LANCZOS))
    return np.ascontiguousarray(resized[top:top + height, left:left + width])


def make_test_card(width: int, height: int) -> np.ndarray:
    """A deterministic test card (colour ramps, grid, centre target) so camera motion is easy to read."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    card = np.stack([x / max(width - 1, 1), y / max(height - 1, 1), 1.0 - x / max(width - 1, 1)], axis=-1)
    card = 0.25 + 0.5 * card
    step = max(8, min(width, height) // 8)
    grid = ((x.astype(int) % step) < 2) | ((y.astype(int) % step) < 2)
    card[grid] = 0.95
    radius = np.hypot(x - width / 2, y - height / 2)
    ring = np.abs(radius - min(width, height) / 4) < 2
    card[ring] = (0.9, 0.1, 0.1)
    card[(np.abs(x - width / 2) < 1.5) | (np.abs(y - height / 2) < 1.5)] = 0.05
    # an arrow-like wedge in the top-left quadrant makes rotation direction unambiguous
    wedge = (x < width / 2) & (y < height / 2) & (x + 2 * y < min(width, height) / 2)
    card[wedge] = (0.1, 0.2, 0.9)
    return np.round(card * 255).clip(0, 255).astype(np.uint8)


def has_bad_pixels(image: torch.Tensor) -> bool:
    """True when the model produced NaN/inf (fp16 overflow in some VAEs)."""
    return not bool(torch.isfinite(image).all())


def key_frames(max_frames: int, cadence: int) -> list[int]:
    """Frames the model renders with cadence N: every Nth frame and the last one."""
    return sorted(set(range(0, max_frames, max(1, cadence))) | {max_frames - 1})


def tween(camera: Camera, before: torch.Tensor, after: torch.Tensor, rows_between: list[dict], position: int,
          use_flow: bool = False, flow_method: str = "dis") -> torch.Tensor:
    """An in-between frame: the key before moved forward, the key after moved back, crossfaded.

    `rows_between` are the rows of the frames after the first key up to the second key (inclusive);
    `position` (1..len-1) is the in-between's place. With `use_flow` the two keys follow the optical
    flow between them instead of the camera motion.
    """
    weight = position / len(rows_between)
    if use_flow:
        from anim.motion.flow import estimate_flow, warp_by_flow

        forward = estimate_flow(before, after, flow_method)  # before(x) ~ after(x + forward(x))
        backward = estimate_flow(after, before, flow_method)
        moved_before = warp_by_flow(before, -weight * forward)
        moved_after = warp_by_flow(after, -(1.0 - weight) * backward)
    else:
        moved_before = camera.move_many(before, rows_between[:position])
        moved_after = camera.move_many(after, rows_between[position:], inverse=True)
    return torch.lerp(moved_before, moved_after, weight)
