"""Deforum's masks (use_mask, use_mask_video, use_noise_mask and their settings) read into anim's `mask:` section.

Deforum hands its mask to A1111 (p.image_mask, inpainting_fill, mask_blur = mask_overlay_blur, invert) and adds
the frame noise only inside the noise mask (the frame mask itself unless use_noise_mask). Deforum's {video_mask}
without use_mask_video is a blank mask, which Deforum then ignores; anim refuses an unknown name, so such a
schedule is noted and the init mask used instead. Inpainting at full resolution (full_res_mask) is not carried.
"""
from __future__ import annotations

from anim.errors import ScheduleError
from anim.importers.common import flag, number, path_value
from anim.keyframes import parse_text_schedule
from anim.keyframes.mask_expr import MaskExprError, parse_mask_expr
from anim.preset.sections import MASK_FILLS

MASK_KEYS = ("use_alpha_as_mask", "mask_file", "invert_mask", "mask_contrast_adjust", "mask_brightness_adjust",
             "overlay_mask", "mask_overlay_blur", "fill", "full_res_mask", "full_res_mask_padding",
             "mask_schedule", "noise_mask_schedule", "video_mask_path")


def import_masks(r) -> None:
    """use_mask / use_noise_mask -> the preset's `mask:` section (see the module docstring); their settings are
    taken silently when both switches are off."""
    use_mask, use_noise = flag(r.get("use_mask")), flag(r.get("use_noise_mask"))
    use_video = flag(r.get("use_mask_video"))
    if not use_mask and not use_noise:
        for key in (*MASK_KEYS, "use_mask_video"):
            r.take(key)
        return
    names = ["everywhere", "human_mask"]
    init_mask = _init_mask(r, use_mask, use_video)
    if init_mask:
        names.append("init_mask")
    if use_video and _video(r):
        names.append("video_mask")
    elif use_video:
        r.note("use_mask_video", True, "the mask video is not carried (see video_mask_path)")
    if use_mask:
        _mask_settings(r)
        schedule = _expression_schedule(r, "mask_schedule", names)
        if schedule is not None:
            r.put(("mask", "schedule"), schedule, "mask_schedule")
    else:  # a noise mask alone: the frame is not masked (everywhere changes), only the noise is
        r.put(("mask", "schedule"), "0: ({everywhere})", "use_noise_mask")
        r.put(("mask", "overlay"), False, "use_noise_mask")
        for key in MASK_KEYS[1:10]:
            r.take(key)
        r.take("mask_schedule")
    if use_noise:
        noise = _expression_schedule(r, "noise_mask_schedule", names)
        if noise is not None:
            r.put(("mask", "noise_schedule"), noise, "noise_mask_schedule")
    else:
        r.take("noise_mask_schedule")


def _init_mask(r, use_mask: bool, use_video: bool) -> bool:
    """{init_mask}: the init image's alpha (use_alpha_as_mask, with an init image) or mask_file (image), carried
    as mask.use_alpha / mask.file; False when there is none anim can read."""
    if flag(r.get("use_alpha_as_mask")) and "init_image" in r.out.data:
        r.put(("mask", "use_alpha"), True, "use_alpha_as_mask")
        return True
    if flag(r.get("use_alpha_as_mask")):
        r.note("use_alpha_as_mask", True, "needs the init image (use_init with init_image); not carried")
    path = path_value(r.get("mask_file"))
    if not use_mask or path is None:
        r.take("mask_file")
        return False
    if not r.usable_path("mask_file", path):
        return False
    r.put(("mask", "file"), path, "mask_file")
    return True


def _video(r) -> bool:
    """video_mask_path as mask.video (its frames are {video_mask}); False when it cannot be carried."""
    path = path_value(r.get("video_mask_path"))
    if path is None or not r.usable_path("video_mask_path", path):
        return False
    r.put(("mask", "video"), path, "video_mask_path")
    return True


def _mask_settings(r) -> None:
    """invert, contrast/brightness, overlay and its blur (Deforum sets A1111's mask_blur from it too), fill."""
    r.put(("mask", "invert"), flag(r.get("invert_mask")), "invert_mask")
    for key, field in (("mask_contrast_adjust", "contrast"), ("mask_brightness_adjust", "brightness")):
        value = number(r.get(key))
        if value is not None and 0.0 <= value <= 10.0:
            r.put(("mask", field), value, key)
        elif value is not None:
            r.note(key, r.get(key), "outside anim's range 0..10; 1 is used")
    r.put(("mask", "overlay"), flag(r.get("overlay_mask")), "overlay_mask")
    blur = number(r.get("mask_overlay_blur"))
    if blur is not None:
        blur = min(max(blur, 0.0), 64.0)
        r.put(("mask", "overlay_blur_px"), blur, "mask_overlay_blur")
        r.put(("mask", "blur_px"), blur, "mask_overlay_blur")
    fill = number(r.get("fill"))
    if fill is not None and int(fill) in range(4):
        r.put(("mask", "fill"), MASK_FILLS[int(fill)], "fill")  # Deforum's fill index is A1111's
    else:
        r.note("fill", r.get("fill"), "unknown fill; original is used")
    if flag(r.get("full_res_mask")):
        r.note("full_res_mask", True, "inpainting at full resolution (a crop around the mask) is not carried: "
                                      "anim diffuses the whole frame")
    r.take("full_res_mask_padding")


def _expression_schedule(r, key: str, names: list[str]) -> str | None:
    """The schedule text when every keyframe parses and names only masks anim has here, else None (noted)."""
    text = r.text_schedule(key)
    try:
        for keyframe in parse_text_schedule(text, key).keyframes:
            parse_mask_expr(keyframe.text, names)
    except (ScheduleError, MaskExprError) as exc:
        r.note(key, text, f"not carried ({exc}); the init mask (or the whole frame) is used")
        return None
    return text
