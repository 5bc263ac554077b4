"""Deforum's hybrid video (hybrid_motion, hybrid_composite and their settings) read into anim's `hybrid:` section.

Deforum runs hybrid video only in the 2D and 3D animation modes, from the frames of video_init_path: the camera
keeps moving the previous output and the input video's motion and frames act on it (anim.coherence.hybrid).
Composite masks, mask equalising/auto-contrast and the other hybrid extras are noted as not carried."""
from __future__ import annotations

from anim.importers.common import flag, number, path_value, whole
from anim.importers.deforum_tables import FLOW_METHOD

HYBRID_MOTION = {"none": "none", "optical flow": "optical_flow", "perspective": "perspective", "affine": "affine"}
HYBRID_COMPOSITE = {"none": "none", "false": "none", "normal": "normal", "true": "normal",
                    "before motion": "before_motion", "after generation": "after_generation"}
MASK_KEYS = ("hybrid_comp_mask_inverse", "hybrid_comp_mask_equalize", "hybrid_comp_mask_auto_contrast",
             "hybrid_comp_mask_blend_alpha_schedule", "hybrid_comp_mask_contrast_schedule",
             "hybrid_comp_mask_auto_contrast_cutoff_high_schedule",
             "hybrid_comp_mask_auto_contrast_cutoff_low_schedule")
NO_EFFECT = ("hybrid_generate_inputframes", "hybrid_comp_save_extra_frames")  # files Deforum writes, not pixels


def hybrid_choice(r, key: str, table: dict) -> str | None:
    """The anim value of a Deforum hybrid dropdown, or None (noted) when anim does not know the label."""
    label = str(r.get(key) if r.get(key) is not None else "None").strip()
    value = table.get(label.lower())
    if value is None:
        r.note(key, label, "unknown value; hybrid video is not carried")
    return value


def import_hybrid(r, mode: str, cadence: int) -> None:
    """hybrid_* -> the preset's `hybrid:` section (and init_video from video_init_path) in 2D/3D mode; a note
    where Deforum's hybrid video would act but anim cannot carry it."""
    motion = hybrid_choice(r, "hybrid_motion", HYBRID_MOTION)
    composite = hybrid_choice(r, "hybrid_composite", HYBRID_COMPOSITE)
    for key in NO_EFFECT:
        r.take(key)
    if motion is None or composite is None or (motion == "none" and composite == "none"):
        return
    key = "hybrid_motion" if motion != "none" else "hybrid_composite"
    label = r.get(key)
    path = path_value(r.get("video_init_path"))
    if mode not in ("2d", "3d"):
        r.note(key, label, f"hybrid video acts only in Deforum's 2D/3D modes (this file is {mode}); not carried")
        return
    if path is None:
        r.note(key, label, "hybrid video needs video_init_path; not carried")
        return
    if cadence > 1:
        r.note(key, label, f"hybrid video with diffusion_cadence {cadence} is not supported by anim yet; "
                           "not carried (set cadence: 1 and the hybrid: section by hand)")
        return
    if not r.usable_path("video_init_path", path):
        return
    r.put(("init_video",), path, "video_init_path")
    r.put(("extract_nth_frame",), max(1, whole(r.get("extract_nth_frame")) or 1), "extract_nth_frame")
    r.put(("hybrid", "motion"), motion, "hybrid_motion")
    r.put(("hybrid", "composite"), composite, "hybrid_composite")
    r.put(("hybrid", "use_prev_img"), flag(r.get("hybrid_motion_use_prev_img")), "hybrid_motion_use_prev_img")
    _flow(r)
    r.put(("hybrid", "comp_alpha"), r.schedule("hybrid_comp_alpha_schedule"), "hybrid_comp_alpha_schedule")
    _not_carried(r)


def _flow(r) -> None:
    """hybrid_flow_method (RAFT and the finer DIS presets become DIS, noted), flow factor, consistency check."""
    label = str(r.get("hybrid_flow_method") or "DIS Medium").strip()
    method = FLOW_METHOD.get(label.lower())
    if method not in ("dis", "farneback"):
        r.note("hybrid_flow_method", label, "anim's hybrid flow is dis or farneback: dis is used")
        method = "dis"
    elif label.lower() in ("dis fine", "dis ultrafine"):
        r.note("hybrid_flow_method", label, "anim's DIS uses the medium preset")
    r.put(("hybrid", "flow_method"), method, "hybrid_flow_method")
    r.put(("hybrid", "flow_factor"), r.schedule("hybrid_flow_factor_schedule"), "hybrid_flow_factor_schedule")
    r.put(("hybrid", "flow_consistency"), flag(r.get("hybrid_flow_consistency")), "hybrid_flow_consistency")
    blur = number(r.get("hybrid_consistency_blur"))
    r.put(("hybrid", "consistency_blur"), float(blur if blur is not None and blur >= 0 else 2.0),
          "hybrid_consistency_blur")


def _not_carried(r) -> None:
    """Composite masks and the init-image options: noted when set (their settings taken silently when off)."""
    mask = str(r.get("hybrid_comp_mask_type") or "None").strip()
    if mask.lower() != "none":
        r.note("hybrid_comp_mask_type", mask, "hybrid composite masks are not supported by anim; the composite "
                                              "blends the whole frame")
    if mask.lower() == "none":  # the mask settings act only with a mask (others are noted as unsupported)
        for key in MASK_KEYS:
            r.take(key)
    if not flag(r.get("hybrid_use_first_frame_as_init_image")):
        r.note("hybrid_use_first_frame_as_init_image", False, "anim starts from the first input frame")
    for key in ("extract_from_frame", "extract_to_frame"):
        value = whole(r.get(key))
        if value not in (None, 0, -1):
            r.note(key, value, "not carried for hybrid video: the input is read from its first frame")
