"""Step 2 of the loop: the camera moves the previous frame by a frame's motion (2D matrix or 3D with depth)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from anim.motion.camera2d import camera_matrix_2d, warp_perspective
from anim.motion.camera3d import warp_3d
from anim.motion.depth import save_depth_png


def camera_matrix(row: dict, width: int, height: int) -> np.ndarray:
    """The frame's 2D camera matrix from its row (Deforum: rotate+zoom about the centre, then translate)."""
    return camera_matrix_2d(
        angle_deg=row["angle"], zoom=row["zoom"], tx_px=row["translation_x"], ty_px=row["translation_y"],
        center_x_frac=row["transform_center_x"], center_y_frac=row["transform_center_y"],
        width=width, height=height,
    )


class Camera:
    """Step 2: moves the previous frame by a frame's motion: 2D matrix, or 3D with the frame's depth."""

    def __init__(self, preset, depth_model=None, depth_dir: Path | None = None) -> None:
        """`preset` gives the motion settings and size; `depth_model` (anim.motion.depth.DepthModel, loaded
        by the caller) is needed for 3D; depth maps are saved under `depth_dir` when motion.save_depth."""
        self.preset, self.motion = preset, preset.motion
        if self.motion.mode == "3d" and depth_model is None:
            raise ValueError("Camera: 3D motion needs a depth model")
        self.depth_model = depth_model
        self.depth_dir = depth_dir if preset.motion.save_depth else None

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
