"""A Deforum settings file (its JSON `*_settings.txt`) -> an anim preset with Deforum's meaning.

Each setting is read with Deforum's own rules (numbers stored as text, renamed keys, old value names),
missing settings take Deforum's defaults, and every setting that was changed from its default but
could not be carried over is reported as a Note with the reason. Paths in the file are only checked for
existence (a note when this machine lacks them); nothing else is read.
"""
from __future__ import annotations

import json
from typing import Any

from anim.errors import PresetError
from anim.importers.common import Imported, flag, number, path_value, unquote, whole
from anim.importers.deforum_a1111 import import_a1111
from anim.importers.deforum_controlnet import import_controlnet, import_soundtrack
from anim.importers.deforum_defaults import IF_MISSING, RENAMED, VALUE_FIXES
from anim.importers.deforum_hybrid import import_hybrid, video_frame_range
from anim.importers.deforum_masks import import_masks
from anim.importers.deforum_modes import (
    import_parseq_manifest,
    interpolation_as_blends,
    video_input_frames,
)
from anim.importers.deforum_sampler import (
    import_checkpoint_schedule,
    import_model,
    import_sampler,
    import_sampler_schedule,
    import_steps,
)
from anim.importers.deforum_tables import COLOR_COHERENCE, DEPTH_MODEL, FLOW_METHOD
from anim.importers.reader import Reader
from anim.importers.schedule_text import map_values

# Deforum schedule key -> anim preset path.
SCHEDULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("angle", ("motion", "angle")), ("zoom", ("motion", "zoom")),
    ("translation_x", ("motion", "translation_x")), ("translation_y", ("motion", "translation_y")),
    ("translation_z", ("motion", "translation_z")), ("rotation_3d_x", ("motion", "rotation_3d_x")),
    ("rotation_3d_y", ("motion", "rotation_3d_y")), ("rotation_3d_z", ("motion", "rotation_3d_z")),
    ("transform_center_x", ("motion", "transform_center_x")), ("transform_center_y", ("motion", "transform_center_y")),
    ("fov_schedule", ("motion", "fov")), ("near_schedule", ("motion", "near")), ("far_schedule", ("motion", "far")),
    ("noise_schedule", ("noise",)), ("contrast_schedule", ("contrast",)), ("cfg_scale_schedule", ("cfg_scale",)),
    ("kernel_schedule", ("unsharp_kernel",)), ("sigma_schedule", ("unsharp_sigma",)),
    ("amount_schedule", ("unsharp_amount",)), ("threshold_schedule", ("unsharp_threshold",)),
)
ONLY_2D = ("angle", "zoom", "transform_center_x", "transform_center_y")
ONLY_3D = ("translation_z", "rotation_3d_x", "rotation_3d_y", "rotation_3d_z", "fov_schedule", "near_schedule",
           "far_schedule")
MODES = {"2d": "2d", "3d": "3d", "none": "none", "video input": "none", "interpolation": "none"}
PADDING = {"border": "replicate", "reflection": "reflect", "zeros": "zeros"}


def is_deforum(data: dict) -> bool:
    """A JSON object is a Deforum settings file when it has Deforum's own keys."""
    markers = ("animation_mode", "diffusion_cadence", "strength_schedule", "animation_prompts", "max_frames")
    return sum(key in data for key in markers) >= 2 or ("W" in data and "prompts" in data)


def from_deforum(settings: dict, key_lines: dict[str, int] | None = None) -> Imported:
    """The anim preset data for a Deforum settings dict (see the module docstring)."""
    out = Imported(kind="deforum", data={}, lines=dict(key_lines or {}))
    r = Reader(upgrade(settings, out), out)
    mode = import_mode(r)
    import_size_and_frames(r)
    cadence = import_cadence(r, mode)
    import_model(r)
    import_sampler(r)
    import_sampler_schedule(r)
    import_checkpoint_schedule(r)
    import_steps(r)
    import_seeds(r, cadence)
    import_prompts(r)
    import_strength(r)
    import_schedules(r, mode)
    import_motion(r, mode)
    import_color(r)
    import_a1111(r)
    import_controlnet(r)
    import_soundtrack(r)
    video_colours(r, import_hybrid(r, mode, cadence))
    import_masks(r)
    if mode == "interpolation":
        interpolation_as_blends(r)
    if mode == "video input":
        video_input_frames(r)
    import_parseq_manifest(r)
    r.report_unused()
    return out


def upgrade(settings: dict, out: Imported) -> dict:
    """Old key names renamed and old values fixed, as Deforum's deprecation rules do."""
    upgraded = {**IF_MISSING, **settings}  # keys Deforum sets when an old file lacks them
    for key, fixes in VALUE_FIXES.items():  # keyed by the name as the file has it: before the renames
        found = _fix_for(fixes, upgraded.get(key))
        if found is not None:
            upgraded[key] = found[0]
    if "animation_prompts" in upgraded:  # Deforum's loader: animation_prompts wins over prompts
        upgraded["prompts"] = upgraded.pop("animation_prompts")
        if "animation_prompts" in out.lines:
            out.lines["prompts"] = out.lines["animation_prompts"]
    for old, new in RENAMED.items():
        if old in upgraded and new not in upgraded:
            upgraded[new] = upgraded[old]
            if old in out.lines and new not in out.lines:
                out.lines[new] = out.lines[old]
        upgraded.pop(old, None)
    return upgraded


def _fix_for(fixes: dict, value: Any) -> tuple[Any] | None:
    """(the new value,) when `value` is one of `fixes`' old values of the same type (True is not 1), else None."""
    if not isinstance(value, (str, int, float, bool)):
        return None
    for old, new in fixes.items():
        if type(old) is type(value) and old == value:
            return (new,)
    return None


def import_mode(r: Reader) -> str:
    """animation_mode -> motion.mode; Video Input sets init_video; Interpolation is mapped to blends."""
    raw = str(r.get("animation_mode")).strip()
    mode = raw.lower()
    if mode not in MODES:
        raise PresetError(f"animation_mode: {raw!r} is not a Deforum animation mode (2D, 3D, Video Input, "
                          "Interpolation, None)")
    r.put(("motion", "mode"), MODES[mode], "animation_mode")
    r.keep_past = mode == "video input"  # Video Input renders every extracted frame, whatever max_frames says
    if mode == "video input":
        import_video_input(r)
    else:
        for key in ("video_init_path", "extract_nth_frame", "extract_from_frame", "extract_to_frame"):
            r.take(key)  # only Video Input (and hybrid video) read these
    return mode


def import_video_input(r: Reader) -> None:
    """Video Input mode: each frame's init is the input video's frame (anim's init_video)."""
    path = path_value(r.get("video_init_path"))
    if path is None:
        raise PresetError("video_init_path: animation_mode 'Video Input' needs a video")
    if not r.usable_path("video_init_path", path):
        raise PresetError(f"video_init_path: {path!r} is a URL; anim never downloads: save the video and "
                          "give its path")
    r.put(("init_video",), path, "video_init_path")
    r.put(("video_blend",), 0.0, "video_init_path")
    video_frame_range(r)


def import_size_and_frames(r: Reader) -> None:
    """W/H (multiples of 8, as anim needs), max_frames, fps."""
    for key, target in (("W", "width"), ("H", "height")):
        value = whole(r.get(key))
        if value is None or value < 64:
            raise PresetError(f"{key}: {r.raw(key)!r} is not a frame size in pixels")
        rounded = value - value % 8
        if rounded != value:
            r.note(key, value, f"rounded down to {rounded} (a multiple of 8)")
        r.put((target,), rounded, key)
    frames = whole(r.get("max_frames"))
    if frames is None or frames < 1:
        raise PresetError(f"max_frames: {r.raw('max_frames')!r} is not a whole number of frames >= 1")
    r.put(("max_frames",), frames, "max_frames")
    fps = number(r.get("fps"))
    if fps is not None and fps > 0:
        r.put(("fps",), fps, "fps")


def import_cadence(r: Reader, mode: str) -> int:
    """diffusion_cadence (often text) and optical_flow_cadence; Video Input diffuses every frame (Deforum)."""
    cadence = max(1, whole(r.get("diffusion_cadence")) or 1)
    if mode == "video input":
        cadence = 1
    r.put(("cadence",), cadence, "diffusion_cadence")
    flow = str(r.get("optical_flow_cadence") or "None").strip()
    if flow.lower() != "none" and cadence > 1:
        method = FLOW_METHOD.get(flow.lower())
        if method is None:
            r.note("optical_flow_cadence", flow, "this flow method is not available; in-betweens are crossfaded")
            return cadence
        if method == "raft":
            r.note("optical_flow_cadence", flow, "RAFT reads a pickled checkpoint: anim uses DIS; set "
                                                 "allow_pickle: true and flow_method: raft to use RAFT")
            method = "dis"
        r.put(("cadence_flow",), True, "optical_flow_cadence")
        r.put(("flow_method",), method, "optical_flow_cadence")
    return cadence


def import_seeds(r: Reader, cadence: int) -> None:
    """seed, seed_behavior, seed_iter_N, seed_schedule. Deforum moves to the next seed once per diffused
    frame, so with cadence the arithmetic behaviours become a seed schedule over the diffused frames."""
    seed = whole(r.get("seed"))
    r.put(("seed",), -1 if seed is None or seed < 0 else seed % 2**32, "seed")
    behavior = str(r.get("seed_behavior") or "iter").strip().lower()
    iter_n = max(1, whole(r.get("seed_iter_N")) or 1)
    if behavior == "schedule":
        r.put(("seed_behavior",), "schedule", "seed_behavior")
        r.put(("seed_schedule",), r.schedule("seed_schedule"), "seed_schedule")
        return
    r.take("seed_schedule")
    k = f"floor(t/{cadence})" if cadence > 1 else "t"
    per_call = {"iter": f"ceil({k}/{iter_n})" if iter_n > 1 else k,
                "ladder": f"floor({k}/2) + 2*({k}%2)", "alternate": f"{k}%2"}
    if behavior not in ("iter", "fixed", "random", "ladder", "alternate"):
        r.note("seed_behavior", behavior, "unknown seed behaviour: random, as Deforum's next_seed does")
        behavior = "random"
    if behavior in per_call and (cadence > 1 or iter_n > 1):
        r.put(("seed_behavior",), "schedule", "seed_behavior")
        r.put(("seed_schedule",), f"0: (s + {per_call[behavior]})", "seed_behavior")
        return
    r.put(("seed_behavior",), behavior, "seed_behavior")


def import_prompts(r: Reader) -> None:
    """prompts with the UI's global positive prepended and global negative appended to each keyframe exactly as
    Deforum builds the text ("POS PROMPT --neg NEG"). Run-saved files hold that text already in `prompts` (their
    positive_prompts / negative_prompts are only a record, read by no Deforum loader), so those are not added."""
    key = "prompts"
    if key not in r.settings:
        r.note(key, None, "the file has no prompts: Deforum's default prompts are used, as Deforum would")
    prompts = r.get(key)
    if isinstance(prompts, str):
        try:
            prompts = json.loads(prompts)
        except ValueError:
            raise PresetError(f"{key}: expected a mapping of frame -> prompt, got text {prompts[:60]!r}") from None
    if not isinstance(prompts, dict) or not prompts:
        raise PresetError(f"{key}: expected a non-empty mapping of frame -> prompt")
    r.take("positive_prompts")
    r.take("negative_prompts")
    positive = str(r.raw("animation_prompts_positive") or "")  # only what the file says: no UI default here
    negative = str(r.raw("animation_prompts_negative") or "").replace("--neg", "")
    r.take("animation_prompts_positive")
    r.take("animation_prompts_negative")
    baked = {}
    for frame, text in prompts.items():
        text = "" if text is None else str(text)
        if positive or negative:
            text = f"{positive} {text} {'' if '--neg' in text else '--neg'} {negative}"
        baked[_prompt_key(frame)] = text
    r.put(("prompts",), baked, key)


def _prompt_key(frame: Any) -> Any:
    """A prompt key: literal frames as ints, expressions ("max_f-4") as text without quotes."""
    text = unquote(str(frame))
    return int(text) if text.isdigit() else text


def import_strength(r: Reader) -> None:
    """strength_schedule -> denoise = 1 - strength (strength clamped to 0..1, as Deforum does); use_init +
    init_image -> init_image with 1 - strength."""
    spec = r.schedule("strength_schedule")
    r.put(("denoise",), map_values(spec, lambda v: 1.0 - min(max(v, 0.0), 1.0), "1 - clamp({}, 0, 1)"),
          "strength_schedule")
    strength = number(r.get("strength"))
    r.take("strength_0_no_init")
    image = path_value(r.get("init_image"))
    if not flag(r.get("use_init")) or image is None:
        return
    if not r.usable_path("init_image", image):
        return
    r.put(("init_image",), image, "init_image")
    strength = min(max(strength if strength is not None else 0.8, 0.0), 1.0)
    r.put(("init_denoise",), round(1.0 - strength, 12), "strength")


def import_schedules(r: Reader, mode: str) -> None:
    """The plain schedules (motion, noise, contrast, cfg, anti-blur), repeated keyframes deduplicated. Deforum's
    2D mode ignores the 3D keys and its 3D mode the 2D ones (angle, zoom, centre): so do we."""
    ignored = ONLY_3D if mode != "3d" else ONLY_2D
    for key, path in SCHEDULES:
        if key in ignored:
            r.take(key)
        else:
            r.put(path, r.schedule(key), key)
    for old, path in (("fov", ("motion", "fov")), ("near_plane", ("motion", "near")),
                      ("far_plane", ("motion", "far"))):
        if mode == "3d" and old in r.settings and f"{path[1]}_schedule" not in r.settings:
            r.put(path, number(r.get(old)), old)
        else:
            r.take(old)


def import_motion(r: Reader, mode: str) -> None:
    """Border (2D: border, 3D: padding_mode), sampling mode, aspect ratio, depth model, depth maps."""
    if flag(r.get("enable_perspective_flip")) and mode in ("2d", "3d"):
        r.put(("motion", "enable_perspective_flip"), True, "enable_perspective_flip")
        for name in ("theta", "phi", "gamma", "fv"):
            key = f"perspective_flip_{name}"
            r.put(("motion", key), r.schedule(key), key)
    r.take("enable_perspective_flip")
    if mode == "3d":
        padding = str(r.get("padding_mode") or "border").strip().lower()
        r.put(("motion", "border"), PADDING.get(padding, "replicate"), "padding_mode")
        r.take("border")
    else:
        border = str(r.get("border") or "replicate").strip().lower()
        r.put(("motion", "border"), border if border in ("replicate", "wrap") else "replicate", "border")
        r.take("padding_mode")
    sampling = str(r.get("sampling_mode") or "bicubic").strip().lower()
    r.put(("motion", "sampling"), sampling if sampling in ("bicubic", "bilinear", "nearest") else "bicubic",
          "sampling_mode")
    if "aspect_ratio_schedule" not in r.settings or flag(r.get("aspect_ratio_use_old_formula")):
        r.take("aspect_ratio_schedule")
        width, height = r.out.data["width"], r.out.data["height"]
        r.put(("motion", "aspect_ratio"), round(width / height, 12), "aspect_ratio_use_old_formula")
    else:
        r.put(("motion", "aspect_ratio"), r.schedule("aspect_ratio_schedule"), "aspect_ratio_schedule")
    algorithm = str(r.get("depth_algorithm") or "Midas-3-Hybrid").strip()
    warping = flag(r.get("use_depth_warping"))
    r.take("midas_weight")
    if mode == "3d" and warping:
        model = DEPTH_MODEL.get(algorithm.lower())
        if model is None:
            r.note("depth_algorithm", algorithm, "not available in anim (transformers depth models only); "
                                                 "flat depth is used: set motion.depth_model")
        else:
            r.put(("motion", "depth_model"), model, "depth_algorithm")
            if not algorithm.lower().startswith("midas"):
                r.note("depth_algorithm", algorithm, "anim places every depth map at world depth 1..2 linear in "
                                                     "disparity, as Deforum does for MiDaS (Deforum maps this model "
                                                     "linear in depth): parallax differs slightly")
    r.put(("motion", "save_depth"), flag(r.get("save_depth_maps")) and mode == "3d", "save_depth_maps")


def video_colours(r: Reader, hybrid: bool) -> None:
    """color_coherence "Video Input": Deforum matches to the input video's frames only with hybrid video on
    (else to frame 0 in LAB, noted)."""
    raw = str(r.get("color_coherence") or "None").strip()
    if raw.lower() != "video input":
        return
    if not hybrid:
        r.note("color_coherence", raw, "Deforum matches video colours only with hybrid video; colours are "
                                       "matched to frame 0 in LAB")
        return
    r.put(("color_coherence",), "video_input", "color_coherence")
    every = max(1, whole(r.get("color_coherence_video_every_N_frames")) or 1)
    r.put(("color_coherence_every_n",), every, "color_coherence_video_every_N_frames")


def import_color(r: Reader) -> None:
    """color_coherence (new and old names), noise_type (Deforum's "uniform" draws Gaussian noise)."""
    raw = str(r.get("color_coherence") or "None").strip()
    mapped = COLOR_COHERENCE.get(raw.lower())
    if raw.lower() == "video input":
        mapped = "lab"  # until hybrid video is known to be carried (video_colours)
    elif raw.lower() == "image":
        path = path_value(r.get("color_coherence_image_path"))
        if path and r.usable_path("color_coherence_image_path", path):
            r.put(("color_reference",), path, "color_coherence_image_path")
        mapped = "lab"
    elif mapped is None:
        r.note("color_coherence", raw, "not available; colours are matched to frame 0 in LAB")
        mapped = "lab"
    else:
        r.take("color_coherence_image_path")
    r.take("color_coherence_video_every_N_frames")  # read by video_colours when it acts
    if flag(r.get("color_force_grayscale")):
        r.note("color_force_grayscale", True, "grayscale colour matching is not carried yet")
    if flag(r.get("legacy_colormatch")) and mapped != "none":
        r.note("legacy_colormatch", True, "Deforum's legacy colour match (the default of files without this key) "
                                          "matches before noising only; anim also matches each output")
    r.put(("color_coherence",), mapped, "color_coherence")
    # files older than Deforum's perlin default (late 2022) have no noise_type and rendered with "uniform"
    noise_type = str(r.raw("noise_type") or "uniform").strip().lower()
    r.take("noise_type")
    r.put(("noise_type",), "perlin" if noise_type == "perlin" else "gaussian", "noise_type")
    for key in ("perlin_w", "perlin_h", "perlin_octaves", "perlin_persistence"):
        r.take(key)  # perlin_w/h are never saved by Deforum's UI; octaves/persistence act only for perlin
    if noise_type == "perlin":
        octaves, persistence = whole(r.get("perlin_octaves")), number(r.get("perlin_persistence"))
        r.put(("perlin_octaves",), min(max(octaves if octaves is not None else 4, 1), 7), "perlin_octaves")
        r.put(("perlin_persistence",), min(max(persistence if persistence is not None else 0.5, 0.0), 1.0),
              "perlin_persistence")
