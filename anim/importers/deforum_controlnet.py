"""Deforum's ControlNet units (cn_1..cn_5, and the single `controlnet_*` block of early 2023), hybrid video
and the soundtrack, read into anim's controlnet list, notes and output.audio."""
from __future__ import annotations

from typing import Any

from anim.importers.common import flag, number, path_value, whole
from anim.importers.deforum_tables import CN_MODULE, CN_RESIZE, controlnet_model_id

UNITS = range(1, 6)
UNIT_KEYS = ("overwrite_frames", "vid_path", "mask_vid_path", "enabled", "low_vram", "pixel_perfect", "module",
             "model", "weight", "guidance_start", "guidance_end", "processor_res", "threshold_a", "threshold_b",
             "resize_mode", "control_mode", "loopback_mode")
OLD_BLOCK = ("controlnet_enabled", "controlnet_scribble_mode", "controlnet_rgbbgr_mode", "controlnet_lowvram",
             "controlnet_module", "controlnet_model", "controlnet_weight", "controlnet_guidance_strength",
             "controlnet_processor_res", "controlnet_threshold_a", "controlnet_threshold_b", "controlnet_resize_mode")


def import_controlnet(r) -> None:
    """Every enabled unit becomes an anim ControlNet unit, or a note saying why it could not."""
    units: list[dict] = []
    for i in UNITS:
        prefix = f"cn_{i}_"
        if not flag(r.get(prefix + "enabled")):
            for key in UNIT_KEYS:
                r.take(prefix + key)
            continue
        unit = _unit(r, prefix, r.get(prefix + "module"), r.get(prefix + "model"),
                     path_value(r.get(prefix + "vid_path")), flag(r.get(prefix + "loopback_mode")))
        if unit is not None:
            unit["weight"] = r.schedule(prefix + "weight")
            unit["guidance_start"] = r.schedule(prefix + "guidance_start")
            unit["guidance_end"] = r.schedule(prefix + "guidance_end")
            unit["resize"] = _resize(r, prefix + "resize_mode")
            _thresholds(r, prefix, unit)
            units.append(unit)
        for key in ("overwrite_frames", "low_vram", "pixel_perfect", "processor_res", "mask_vid_path"):
            r.take(prefix + key)
        mode = str(r.get(prefix + "control_mode") or "Balanced")
        if mode != "Balanced":
            r.note(prefix + "control_mode", mode, "control modes other than Balanced are not carried yet")
    if flag(r.get("controlnet_enabled")):
        unit = _unit(r, "controlnet_", r.get("controlnet_module"), r.get("controlnet_model"),
                     path_value(r.get("video_init_path")), False)
        if unit is not None:
            unit["weight"] = number(r.get("controlnet_weight")) or 1.0
            unit["guidance_end"] = number(r.get("controlnet_guidance_strength")) or 1.0
            unit["resize"] = _resize(r, "controlnet_resize_mode")
            units.append(unit)
    for key in OLD_BLOCK:
        r.take(key)
    if units:
        r.put(("controlnet",), units, "cn_1_enabled")


def _unit(r, prefix: str, module: Any, model: Any, video: str | None, loopback: bool) -> dict | None:
    """The unit's model, annotator and input, or None (with a note) when it cannot be carried over."""
    module_name = str(module or "none").strip().lower()
    model_name = str(model or "None").strip()
    if model_name.lower() in ("none", ""):
        r.note(prefix + "model", model_name, "the unit is enabled but names no model; not carried")
        return None
    if module_name not in CN_MODULE:
        r.note(prefix + "module", module_name, "this preprocessor is not in anim; the unit is not carried")
        return None
    annotator, options = CN_MODULE[module_name]
    if loopback:
        source = "loopback"
    elif video is None:
        r.note(prefix + "vid_path", "", "the unit has no input video; not carried")
        return None
    elif not r.usable_path(prefix + "vid_path", video):
        return None
    else:
        source = video
    unit: dict = {"model": controlnet_model_id(model_name), "input": source, "annotator": annotator}
    if options:
        unit["annotator_options"] = dict(options)
    return unit


def _thresholds(r, prefix: str, unit: dict) -> None:
    """Canny's low/high thresholds are the unit's threshold_a/b (other preprocessors keep their defaults)."""
    low, high = whole(r.get(prefix + "threshold_a")), whole(r.get(prefix + "threshold_b"))
    if unit["annotator"] == "canny" and low is not None and high is not None:
        unit["annotator_options"] = {"low_threshold": low, "high_threshold": high}


def _resize(r, key: str) -> str:
    """A resize-mode label of any ControlNet version -> fit | crop | stretch."""
    label = str(r.get(key) or "Inner Fit (Scale to Fit)").strip()
    resize = CN_RESIZE.get(label.lower())
    if resize is None:
        r.note(key, label, "unknown resize mode; crop is used")
        return "crop"
    return resize


def import_soundtrack(r) -> None:
    """add_soundtrack None | File (soundtrack_path) | Init Video (video_init_path) -> output.audio; hybrid
    video compositing and motion are reported (not carried yet)."""
    choice = str(r.get("add_soundtrack") or "None").strip().lower()
    path = None
    if choice == "file":
        path = path_value(r.get("soundtrack_path"))
        key = "soundtrack_path"
    elif choice == "init video":
        path = path_value(r.get("video_init_path"))
        key = "add_soundtrack"
    r.take("soundtrack_path")
    if path and r.usable_path(key, path):
        r.put(("output", "audio"), path, key)
    hybrid = str(r.get("hybrid_composite") or "None").strip()
    motion = str(r.get("hybrid_motion") or "None").strip()
    if hybrid.lower() not in ("none", "false"):
        r.note("hybrid_composite", hybrid, "hybrid video compositing is not carried yet (anim: init_video with "
                                           "video_blend)")
    if motion.lower() not in ("none", "false"):
        r.note("hybrid_motion", motion, "hybrid video motion is not carried yet (anim: init_video with flow_blend)")
