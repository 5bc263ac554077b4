"""Camera motion: Deforum 2D matrices and warps on the device."""

from anim.motion.camera2d import BORDER_MODES, camera_matrix_2d, warp_perspective

__all__ = ["BORDER_MODES", "camera_matrix_2d", "warp_perspective"]
