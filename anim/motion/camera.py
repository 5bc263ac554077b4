"""Step 2 of the loop: the camera moves the previous frame by a frame's motion (2D matrix or 3D with depth)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from anim.motion.camera2d import camera_matrix_2d, warp_perspective
from anim.motion.camera3d import warp_3d
from anim.motion.depth import save_depth_png
from anim.motion.perspective_flip import (
    camera_matrix_2d_with_flip,
    flip_border,
    perspective_flip_matrix,
    prewarp_3d,
)


def camera_matrix(row: dict, width: int, height: int, flip: bool = False) -> np.ndarray:
    """The frame's 2D camera matrix from its row (Deforum: rotate+zoom about the centre, then translate; with
    the perspective flip, Deforum's flip @ rotation, which leaves translation out as Deforum's warp does)."""
    if flip:
        return camera_matrix_2d_with_flip(
            flip_matrix(row, width, height), angle_deg=row["angle"], zoom=row["zoom"], tx_px=row["translation_x"],
            ty_px=row["translation_y"], center_x_frac=row["transform_center_x"],
            center_y_frac=row["transform_center_y"], width=width, height=height)
    return camera_matrix_2d(
        angle_deg=row["angle"], zoom=row["zoom"], tx_px=row["translation_x"], ty_px=row["translation_y"],
        center_x_frac=row["transform_center_x"], center_y_frac=row["transform_center_y"],
        width=width, height=height,
    )


def flip_matrix(row: dict, width: int, height: int) -> np.ndarray:
    """The frame's perspective-flip homography (Deforum's construction, from its four schedules)."""
    return perspective_flip_matrix(width, height, row["perspective_flip_theta"], row["perspective_flip_phi"],
                                   row["perspective_flip_gamma"], row["perspective_flip_fv"])


class Camera:
    """Step 2: moves the previous frame by a frame's motion: 2D matrix, or 3D with the frame's depth."""

    def __init__(self, preset, depth_model=None, depth_dir: Path | None = None) -> None:
        """`preset` gives the motion settings and size; `depth_model` (anim.motion.depth.DepthModel, loaded
        by the caller) is needed for 3D; depth maps are saved under `depth_dir` when motion.save_depth."""
        self.preset, self.motion = preset, preset.motion
        if self.motion.mode == "3d" and depth_model is None:
            raise ValueError("Camera: 3D motion needs a depth model")
        self.depth_model = depth_model
        self.flip = bool(self.motion.enable_perspective_flip)
        self.border_2d = flip_border(self.motion.border) if self.flip else self.motion.border  # Deforum's rule
        self.depth_dir = depth_dir if preset.motion.save_depth else None

    def move(self, image: torch.Tensor, row: dict, source_frame: int | None = None) -> torch.Tensor:
        """`image` (the frame before `row`'s frame) seen after `row`'s camera motion."""
        if self.motion.mode == "none":
            return image
        if self.motion.mode == "2d":
            matrix = camera_matrix(row, self.preset.width, self.preset.height, self.flip)
            return warp_perspective(image, matrix, border=self.border_2d)
        depth = self.depth(image, row, source_frame)
        return self.move_3d(self._prewarp(image, row), row, depth)

    def move_many(self, image: torch.Tensor, rows: list[dict], inverse: bool = False) -> torch.Tensor:
        """`image` moved by several frames' motion in order (or undone, newest first, when `inverse`).

        2D composes the matrices into one warp (one resampling); 3D moves frame by frame, re-estimating depth.
        """
        if not rows or self.motion.mode == "none":
            return image
        if self.motion.mode == "2d":
            total = np.eye(3)
            for row in rows:  # img_f(x) = img_{f-1}(M_f^-1 x), so the moves compose as M_last ... M_first
                total = camera_matrix(row, self.preset.width, self.preset.height, self.flip) @ total
            if inverse:
                total = np.linalg.inv(total)
            return warp_perspective(image, total, border=self.border_2d)
        for row in (reversed(rows) if inverse else rows):
            if inverse:
                image = self._prewarp(self.move_3d(image, row, self.depth(image, row), scale=-1.0), row, inverse)
            else:
                image = self.move_3d(self._prewarp(image, row), row, self.depth(image, row))
        return image

    def _prewarp(self, image: torch.Tensor, row: dict, inverse: bool = False) -> torch.Tensor:
        """3D with the perspective flip: the image warped by the flip alone before the depth move (Deforum's
        order; depth is estimated on the image before it), or undone after the inverse move."""
        if not self.flip:
            return image
        matrix = flip_matrix(row, self.preset.width, self.preset.height)
        return prewarp_3d(image, np.linalg.inv(matrix) if inverse else matrix, self.motion.border)

    def depth(self, image: torch.Tensor, row: dict, source_frame: int | None = None) -> torch.Tensor:
        """Depth of `image` in [near, far] (flat without a model); saved as depth/<source_frame>.png if asked."""
        depth = self.depth_model.predict(image, near=row["near"], far=row["far"])
        if self.depth_dir is not None and source_frame is not None:
            save_depth_png(depth, self.depth_dir / f"{source_frame:06d}.png")
        return depth

    def move_3d(self, image: torch.Tensor, row: dict, depth: torch.Tensor | None, scale: float = 1.0) -> torch.Tensor:
        """The 3D warp with `row`'s motion (times `scale`, -1 for the inverse move used by cadence)."""
        if self.motion.projection == "deforum" and self.depth_model.model is None:
            depth = None  # Deforum's flat scene sits at z = 1 whatever near is
        return warp_3d(
            image, depth, tx=scale * row["translation_x"], ty=scale * row["translation_y"],
            tz=scale * row["translation_z"], rx_deg=scale * row["rotation_3d_x"], ry_deg=scale * row["rotation_3d_y"],
            rz_deg=scale * row["rotation_3d_z"], fov_deg=row["fov"], near=row["near"], far=row["far"],
            border=self.motion.border, projection=self.motion.projection, aspect_ratio=row["aspect_ratio"],
            sampling=self.motion.sampling)
