"""OpenPose body skeletons: the 18-keypoint COCO layout, BlazePose -> OpenPose mapping, JSON files, drawing.

Standard openpose ControlNets were trained on skeletons drawn in one fixed style (limb pairs,
colours, ellipse limbs at 60% brightness, round joints on black); we draw that style ourselves so
any keypoint source (mediapipe, OpenPose JSON) feeds those ControlNets.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np

from anim.errors import InputError

# COCO-18 order used by OpenPose and the openpose ControlNets.
KEYPOINT_NAMES = (
    "nose", "neck", "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow",
    "left_wrist", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
)
NECK = 1
# Limbs as (keypoint, keypoint) pairs; limb i is drawn in COLORS_RGB[i].
LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)
COLORS_RGB = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)
LIMB_BRIGHTNESS = 0.6
REFERENCE_SIDE_PX = 512  # limb width and joint radius are 4 px at this size and scale with the image

# BlazePose (33 landmarks) index for each COCO-18 keypoint; the neck is the shoulders' midpoint.
BLAZE_FOR_COCO = {
    0: 0, 2: 12, 3: 14, 4: 16, 5: 11, 6: 13, 7: 15, 8: 24, 9: 26, 10: 28,
    11: 23, 12: 25, 13: 27, 14: 5, 15: 2, 16: 8, 17: 7,
}
BLAZE_LEFT_SHOULDER, BLAZE_RIGHT_SHOULDER = 11, 12
# OpenPose BODY_25 index for each COCO-18 keypoint (BODY_25 adds mid-hip and feet).
BODY25_FOR_COCO = (0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18)


def blazepose_to_openpose(landmarks_xyv: np.ndarray, width: int, height: int) -> np.ndarray:
    """(33, 3) BlazePose [x, y, visibility] in image fractions -> (18, 3) OpenPose [x_px, y_px, confidence]."""
    blaze = np.asarray(landmarks_xyv, dtype=np.float64)
    if blaze.shape != (33, 3):
        raise ValueError(f"expected (33, 3) BlazePose landmarks, got {blaze.shape}")
    keypoints = np.zeros((18, 3), dtype=np.float64)
    for coco, index in BLAZE_FOR_COCO.items():
        keypoints[coco] = blaze[index]
    left, right = blaze[BLAZE_LEFT_SHOULDER], blaze[BLAZE_RIGHT_SHOULDER]
    keypoints[NECK] = ((left[0] + right[0]) / 2, (left[1] + right[1]) / 2, min(left[2], right[2]))
    keypoints[:, 0] *= width
    keypoints[:, 1] *= height
    return keypoints


def visible(keypoints: np.ndarray, width: int, height: int, min_confidence: float) -> np.ndarray:
    """(18,) bool: confident enough and inside the image (a point off the canvas is not drawn)."""
    x, y, conf = keypoints[:, 0], keypoints[:, 1], keypoints[:, 2]
    inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
    return (conf > min_confidence) & inside & np.isfinite(x) & np.isfinite(y)


def draw_openpose(people: list[np.ndarray], width: int, height: int, min_confidence: float = 0.0) -> np.ndarray:
    """Skeletons of every person ((18, 3) pixel keypoints each) on black, in the openpose ControlNet style."""
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    size_px = max(1, round(4 * min(width, height) / REFERENCE_SIDE_PX))
    for keypoints in people:
        shown = visible(np.asarray(keypoints, dtype=np.float64), width, height, min_confidence)
        _draw_limbs(canvas, keypoints, shown, size_px)
        _draw_joints(canvas, keypoints, shown, size_px)
    return canvas


def _draw_limbs(canvas: np.ndarray, keypoints: np.ndarray, shown: np.ndarray, width_px: int) -> None:
    """Each limb whose two ends are shown, as a filled ellipse between them at 60% of its colour."""
    for limb, (a, b) in enumerate(LIMBS):
        if not (shown[a] and shown[b]):
            continue
        (xa, ya), (xb, yb) = keypoints[a, :2], keypoints[b, :2]
        half_length = int(math.hypot(xb - xa, yb - ya) / 2)
        angle_deg = int(math.degrees(math.atan2(yb - ya, xb - xa)))
        centre = (int((xa + xb) / 2), int((ya + yb) / 2))
        polygon = cv2.ellipse2Poly(centre, (half_length, width_px), angle_deg, 0, 360, 1)
        colour = tuple(int(c * LIMB_BRIGHTNESS) for c in COLORS_RGB[limb])
        cv2.fillConvexPoly(canvas, polygon, colour)


def _draw_joints(canvas: np.ndarray, keypoints: np.ndarray, shown: np.ndarray, radius_px: int) -> None:
    """Each shown keypoint as a filled circle in its own colour, over the limbs."""
    for index in np.flatnonzero(shown):
        x, y = keypoints[index, :2]
        cv2.circle(canvas, (int(x), int(y)), radius_px, COLORS_RGB[index], thickness=-1)


# ---------------------------------------------------------------- OpenPose JSON files


def read_pose_json(path: Path) -> tuple[list[np.ndarray], tuple[int, int] | None]:
    """People ((18, 3) keypoints each) and the canvas (width, height) if the file gives one.

    Accepts COCO-18 (54 numbers) or BODY_25 (75 numbers, reduced to COCO-18) `pose_keypoints_2d`.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a readable OpenPose JSON file ({exc})") from None
    people = data.get("people") if isinstance(data, dict) else None
    if not isinstance(people, list):
        raise InputError(f"{path}: no 'people' list; expected OpenPose JSON with people[].pose_keypoints_2d")
    result = [_person_keypoints(person, path) for person in people]
    canvas = None
    if isinstance(data.get("canvas_width"), (int, float)) and isinstance(data.get("canvas_height"), (int, float)):
        canvas = (int(data["canvas_width"]), int(data["canvas_height"]))
    return [k for k in result if k is not None], canvas


def _person_keypoints(person: dict, path: Path) -> np.ndarray | None:
    """One person's COCO-18 keypoints from its flat [x, y, c, ...] list (None when the list is empty)."""
    flat = person.get("pose_keypoints_2d") if isinstance(person, dict) else None
    if not flat:
        return None
    try:
        values = np.asarray(flat, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{path}: pose_keypoints_2d must be numbers [x, y, c, ...]") from None
    if values.size == 18 * 3:
        return values.reshape(18, 3)
    if values.size == 25 * 3:
        return values.reshape(25, 3)[list(BODY25_FOR_COCO)]
    raise InputError(f"{path}: pose_keypoints_2d has {values.size} numbers; expected 54 (COCO-18) "
                     "or 75 (BODY_25) as [x, y, confidence] per keypoint")


def place_keypoints(keypoints: np.ndarray, transform: tuple[float, float, float, float]) -> np.ndarray:
    """Keypoints moved by a resize transform (scale_x, scale_y, offset_x, offset_y); confidence kept."""
    scale_x, scale_y, offset_x, offset_y = transform
    placed = np.array(keypoints, dtype=np.float64, copy=True)
    placed[:, 0] = placed[:, 0] * scale_x + offset_x
    placed[:, 1] = placed[:, 1] * scale_y + offset_y
    return placed


def normalised(people: list[np.ndarray]) -> bool:
    """True when every confident coordinate lies in [0, 1] (keypoints given as image fractions)."""
    coords = [k[k[:, 2] > 0, :2] for k in people]
    coords = [c for c in coords if c.size]
    return bool(coords) and all(float(c.max()) <= 1.0 and float(c.min()) >= 0.0 for c in coords)
