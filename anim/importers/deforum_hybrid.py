"""Deforum's hybrid video (hybrid_motion, hybrid_composite and their settings) read into anim's `hybrid:` section.

Deforum runs hybrid video only in the 2D and 3D animation modes, from the frames of video_init_path: the camera
keeps moving the previous output and the input video's motion and frames act on it (anim.coherence.hybrid).
Composite masks, cadence, extract_from/to_frame and Video Input colour coherence are carried; Deforum's
hybrid_use_init_image (composite an init image instead of the video) is noted as not carried."""
from __future__ import annotations

from anim.importers.common import flag, number, path_value, whole
from anim.importers.deforum_tables import DEPTH_MODEL, FLOW_METHOD

HYBRID_MOTION = {"none": "none", "optical flow": "optical_flow", "perspective": "perspective", "affine": "affine"}
HYBRID_COMPOSITE = {"none": "none", "false": "none", "normal": "normal", "true": "normal",
                    "before motion": "before_motion", "after generation": "after_generation"}
COMP_MASK = {"none": "none", "depth": "depth", "video depth": "video_depth", "blend": "blend",
             "difference": "difference"}
EQUALIZE = {"none": "none", "before": "before", "after": "after", "both": "both"}
MASK_SCHEDULES = (("hybrid_comp_mask_blend_alpha_schedule", "comp_mask_alpha"),
                  ("hybrid_comp_mask_contrast_schedule", "comp_mask_contrast"),
                  ("hybrid_comp_mask_auto_contrast_cutoff_low_schedule", "comp_mask_auto_contrast_low"),
                  ("hybrid_comp_mask_auto_contrast_cutoff_high_schedule", "comp_mask_auto_contrast_high"))
NO_EFFECT = ("hybrid_generate_inputframes", "hybrid_comp_save_extra_frames")  # files Deforum writes, not pixels


def hybrid_choice(r, key: str, table: dict) -> str | None:
    """The anim value of a Deforum hybrid dropdown, or None (noted) when anim does not know the label."""
    label = str(r.get(key) if r.get(key) is not None else "None").strip()
    value = table.get(label.lower())
    if value is None:
        r.note(key, label, "unknown value; hybrid video is not carried")
    return value


def import_hybrid(r, mode: str, cadence: int) -> bool:
    """hybrid_* -> the preset's `hybrid:` section (and init_video from video_init_path) in 2D/3D mode; a note
    where Deforum's hybrid video would act but anim cannot carry it. True when hybrid video was carried."""
    motion = hybrid_choice(r, "hybrid_motion", HYBRID_MOTION)
    composite = hybrid_choice(r, "hybrid_composite", HYBRID_COMPOSITE)
    for key in NO_EFFECT:
        r.take(key)
    if motion is None or composite is None or (motion == "none" and composite == "none"):
        return False
    key = "hybrid_motion" if motion != "none" else "hybrid_composite"
    label = r.get(key)
    path = path_value(r.get("video_init_path"))
    if mode not in ("2d", "3d"):
        r.note(key, label, f"hybrid video acts only in Deforum's 2D/3D modes (this file is {mode}); not carried")
        return False
    if path is None:
        r.note(key, label, "hybrid video needs video_init_path; not carried")
        return False
    if not r.usable_path("video_init_path", path):
        return False
    r.put(("init_video",), path, "video_init_path")
    video_frame_range(r)
    r.put(("hybrid", "motion"), motion, "hybrid_motion")
    r.put(("hybrid", "composite"), composite, "hybrid_composite")
    r.put(("hybrid", "use_prev_img"), flag(r.get("hybrid_motion_use_prev_img")), "hybrid_motion_use_prev_img")
    _flow(r)
    r.put(("hybrid", "comp_alpha"), r.schedule("hybrid_comp_alpha_schedule"), "hybrid_comp_alpha_schedule")
    _comp_mask(r, mode)
    if cadence > 1 and motion != "none" and r.out.data.get("cadence_flow"):
        r.out.data.pop("cadence_flow")  # Deforum moves its cadence frames by the hybrid motion, not the flow
        r.note("optical_flow_cadence", r.get("optical_flow_cadence"), "with hybrid motion the in-betweens follow "
               "the input video's motion (as Deforum moves them); cadence flow is not used")
    if not flag(r.get("hybrid_use_first_frame_as_init_image")):
        r.note("hybrid_use_first_frame_as_init_image", False, "anim starts from the first input frame")
    if flag(r.get("hybrid_use_init_image")):
        r.note("hybrid_use_init_image", True, "compositing the init image instead of the video is not carried")
    return True


def video_frame_range(r) -> None:
    """extract_nth_frame and extract_from/to_frame (source frame numbers, `to` inclusive, -1 = the end) as the
    run's input range (anim.plan turns frame numbers into seconds once it can read the video's rate)."""
    from anim.errors import PresetError

    nth = max(1, whole(r.get("extract_nth_frame")) or 1)
    r.put(("extract_nth_frame",), nth, "extract_nth_frame")
    first, last = max(0, whole(r.get("extract_from_frame")) or 0), whole(r.get("extract_to_frame"))
    last = None if last is None or last < 0 else last
    if last is not None and last <= first:
        raise PresetError(f"extract_to_frame: {last} is not after extract_from_frame {first}")
    first = -(-first // nth) * nth  # Deforum keeps source frames whose own index is a multiple of nth
    if first or last is not None:
        r.out.video_frames = (first, last)


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


def _comp_mask(r, mode: str) -> None:
    """hybrid_comp_mask_type and its settings; a depth mask in 2D mode gets the depth model of depth_algorithm
    (Deforum loads one for it whatever the mode)."""
    kind = hybrid_choice(r, "hybrid_comp_mask_type", COMP_MASK) or "none"
    if kind == "none":
        for key in ("hybrid_comp_mask_inverse", "hybrid_comp_mask_equalize", "hybrid_comp_mask_auto_contrast",
                    *(source for source, _ in MASK_SCHEDULES)):
            r.take(key)  # they act only with a mask
        return
    r.put(("hybrid", "comp_mask"), kind, "hybrid_comp_mask_type")
    r.put(("hybrid", "comp_mask_inverse"), flag(r.get("hybrid_comp_mask_inverse")), "hybrid_comp_mask_inverse")
    equalize = EQUALIZE.get(str(r.get("hybrid_comp_mask_equalize") or "None").strip().lower())
    if equalize is None:
        r.note("hybrid_comp_mask_equalize", r.get("hybrid_comp_mask_equalize"), "unknown value; not equalised")
        equalize = "none"
    r.put(("hybrid", "comp_mask_equalize"), equalize, "hybrid_comp_mask_equalize")
    r.put(("hybrid", "comp_mask_auto_contrast"), flag(r.get("hybrid_comp_mask_auto_contrast")),
          "hybrid_comp_mask_auto_contrast")
    for source, target in MASK_SCHEDULES:
        r.put(("hybrid", target), r.schedule(source), source)
    if kind in ("depth", "video_depth") and r.out.data.get("motion", {}).get("depth_model") is None:
        algorithm = str(r.get("depth_algorithm") or "Midas-3-Hybrid").strip()
        model = DEPTH_MODEL.get(algorithm.lower())
        if model is None:
            r.note("hybrid_comp_mask_type", r.get("hybrid_comp_mask_type"),
                   f"depth_algorithm {algorithm} is not available in anim; set motion.depth_model")
        else:
            r.put(("motion", "depth_model"), model, "depth_algorithm")
