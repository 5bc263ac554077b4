"""Deforum's ControlNet units (cn_1..cn_5, and the single `controlnet_*` block of early 2023) and the
soundtrack, read into anim's controlnet list, notes and output.audio."""
from __future__ import annotations

from typing import Any

from anim.importers.common import flag, number, path_value, whole
from anim.importers.deforum_tables import CN_MODULE, CN_RESIZE, controlnet_model_id

UNITS = range(1, 6)
# anim unit field -> the cn_N_ key it comes from (for error messages)
FIELD_SOURCES = {"model": "model", "input": "vid_path", "annotator": "module", "weight": "weight",
                 "guidance_start": "guidance_start", "guidance_end": "guidance_end", "resize": "resize_mode",
                 "annotator_options": "module", "control_mode": "control_mode", "pixel_perfect": "pixel_perfect",
                 "processor_res": "processor_res", "threshold_a": "threshold_a", "threshold_b": "threshold_b"}
UNIT_KEYS = ("overwrite_frames", "vid_path", "mask_vid_path", "enabled", "low_vram", "pixel_perfect", "module",
             "model", "weight", "guidance_start", "guidance_end", "processor_res", "threshold_a", "threshold_b",
             "resize_mode", "control_mode", "loopback_mode")
OLD_BLOCK = ("controlnet_enabled", "controlnet_scribble_mode", "controlnet_rgbbgr_mode", "controlnet_lowvram",
             "controlnet_module", "controlnet_model", "controlnet_weight", "controlnet_guidance_strength",
             "controlnet_processor_res", "controlnet_threshold_a", "controlnet_threshold_b", "controlnet_resize_mode")
# sd-webui-controlnet's Control Mode labels (also its 0/1/2 API values) -> anim control_mode
CN_CONTROL_MODE = {"balanced": "balanced", "my prompt is more important": "prompt",
                   "controlnet is more important": "controlnet", "0": "balanced", "1": "prompt", "2": "controlnet"}
# the annotators A1111 gives threshold sliders (anim.control.unit_settings.THRESHOLDS): canny low/high, mlsd
# value/distance; Deforum stores threshold_a/b for every module (64 when the module has none)
THRESHOLD_ANNOTATORS = ("canny", "mlsd")


def import_controlnet(r) -> None:
    """Every enabled unit becomes an anim ControlNet unit, or a note saying why it could not."""
    units: list[dict] = []
    origins: list[dict[str, str]] = []
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
            _resolution(r, prefix, unit)
            _control_mode(r, prefix, unit)
            units.append(unit)
            origins.append({field: prefix + source for field, source in FIELD_SOURCES.items()})
        for key in ("overwrite_frames", "low_vram", "pixel_perfect", "processor_res", "mask_vid_path", "threshold_a",
                    "threshold_b", "control_mode"):
            r.take(prefix + key)
    if flag(r.get("controlnet_enabled")):  # early 2023: its input video was an upload the file does not hold
        r.note("controlnet_enabled", True, f"the single ControlNet unit of early 2023 ({r.get('controlnet_module')}, "
                                           f"{r.get('controlnet_model')}) is not carried: its input video is not in "
                                           "the file (current Deforum ignores this block too)")
    for key in OLD_BLOCK:
        r.take(key)
    if units:
        r.put(("controlnet",), units, "cn_1_enabled")
        for index, fields in enumerate(origins):
            for field, source in fields.items():
                r.out.origins[("controlnet", str(index), field)] = source


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
    model_id = controlnet_model_id(model_name)
    if model_id is None:
        model_id = model_name.split(" [", 1)[0].strip()
        r.note(prefix + "model", model_name, "not a lllyasviel v1.0/v1.1 model name: carried as written; set the "
                                             "unit's model to its file or hub id")
    unit: dict = {"model": model_id, "input": source, "annotator": annotator}
    if options:
        unit["annotator_options"] = dict(options)
    return unit


def _thresholds(r, prefix: str, unit: dict) -> None:
    """threshold_a/b for the annotators A1111 gives sliders (canny: whole low/high thresholds, mlsd: value/distance
    thresholds); for the others Deforum's stored values mean nothing and are left out."""
    if unit["annotator"] not in THRESHOLD_ANNOTATORS:
        return
    read = whole if unit["annotator"] == "canny" else number
    for key in ("threshold_a", "threshold_b"):
        value = read(r.get(prefix + key))
        if value is not None:
            unit[key] = value


def _resolution(r, prefix: str, unit: dict) -> None:
    """pixel_perfect, else processor_res (what Deforum hands the extension), for annotators that work at a
    resolution; `none` (and tile) pass the frame through. A processor_res <= 0 (the API's "default") is left out."""
    if unit["annotator"] == "none":
        return
    if flag(r.get(prefix + "pixel_perfect")):
        unit["pixel_perfect"] = True
        return
    resolution = whole(r.get(prefix + "processor_res"))
    if resolution is not None and resolution > 0:
        unit["processor_res"] = resolution


def _control_mode(r, prefix: str, unit: dict) -> None:
    """Control Mode "Balanced" | "My prompt is more important" | "ControlNet is more important" -> balanced |
    prompt | controlnet (balanced, the default, is left out; an unknown label is noted and balanced)."""
    label = str(r.get(prefix + "control_mode") or "Balanced").strip()
    mode = CN_CONTROL_MODE.get(label.lower())
    if mode is None:
        r.note(prefix + "control_mode", label, "unknown control mode; Balanced is used")
    elif mode != "balanced":
        unit["control_mode"] = mode


def _resize(r, key: str) -> str:
    """A resize-mode label of any ControlNet version -> fit | crop | stretch."""
    label = str(r.get(key) or "Inner Fit (Scale to Fit)").strip()
    resize = CN_RESIZE.get(label.lower())
    if resize is None:
        r.note(key, label, "unknown resize mode; crop is used")
        return "crop"
    return resize


def import_soundtrack(r) -> None:
    """add_soundtrack None | File (soundtrack_path) | Init Video (video_init_path) -> output.audio."""
    choice = str(r.get("add_soundtrack") or "None").strip().lower()
    key = {"file": "soundtrack_path", "init video": "video_init_path"}.get(choice)
    path = path_value(r.get(key)) if key else None
    r.take("soundtrack_path")
    if path and r.usable_path(key, path):
        r.put(("output", "audio"), path, "add_soundtrack")

