"""Camera motion: Deforum 2D matrices and warps, the 3D depth-reprojection camera, depth models,
optical flow and occlusion, Deforum's perspective flip and hybrid-video motion, all on the device."""

from anim.motion.camera2d import BORDER_MODES, camera_matrix_2d, warp_perspective
from anim.motion.camera3d import equivalent_zoom, flow_3d, warp_3d
from anim.motion.depth import DepthModel, save_depth_png
from anim.motion.flow import consistency_mask, estimate_flow, warp_by_flow
from anim.motion.hybrid import estimate_hybrid_matrix, hybrid_flow, warp_by_hybrid_flow, warp_hybrid
from anim.motion.perspective_flip import camera_matrix_2d_with_flip, perspective_flip_matrix, prewarp_3d

__all__ = [
    "BORDER_MODES", "camera_matrix_2d", "warp_perspective",
    "warp_3d", "flow_3d", "equivalent_zoom",
    "DepthModel", "save_depth_png",
    "estimate_flow", "consistency_mask", "warp_by_flow",
    "perspective_flip_matrix", "camera_matrix_2d_with_flip", "prewarp_3d",
    "estimate_hybrid_matrix", "warp_hybrid", "hybrid_flow", "warp_by_hybrid_flow",
]
