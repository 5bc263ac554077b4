"""A Parseq export -> per-frame schedules, prompts, frame count, fps and cadence, as Deforum's Parseq adapter
uses them: motion fields from their `<field>_delta` (per-frame moves; zoom's delta is a factor around 1),
everything else absolute; fields the export does not have keep the preset's own schedules."""
from __future__ import annotations

import math
from typing import Any

from anim.errors import PresetError
from anim.importers.common import Imported, number, whole

# Parseq field -> anim preset path. Motion reads `<field>_delta`.
MOTION = {name: ("motion", name) for name in (
    "angle", "zoom", "translation_x", "translation_y", "translation_z", "rotation_3d_x", "rotation_3d_y",
    "rotation_3d_z")}
ABSOLUTE = {
    "noise": ("noise",), "contrast": ("contrast",), "scale": ("cfg_scale",), "fov": ("motion", "fov"),
    "near": ("motion", "near"), "far": ("motion", "far"), "transform_center_x": ("motion", "transform_center_x"),
    "transform_center_y": ("motion", "transform_center_y"), "aspect_ratio": ("motion", "aspect_ratio"),
    "antiblur_kernel": ("unsharp_kernel",), "antiblur_sigma": ("unsharp_sigma",),
    "antiblur_amount": ("unsharp_amount",), "antiblur_threshold": ("unsharp_threshold",),
    "steps_schedule": ("steps",), "subseed": ("subseed",), "subseed_strength": ("subseed_strength",),
    "clipskip": ("clip_skip",), "noise_multiplier": ("noise_multiplier",), "ddim_eta": ("ddim_eta",),
    "ancestral_eta": ("ancestral_eta",),
    **{f"perspective_flip_{n}": ("motion", f"perspective_flip_{n}") for n in ("theta", "phi", "gamma", "fv")},
}
NOT_CARRIED = ("sampler_schedule", "checkpoint", "pix2pix_img_cfg_scale", "hybrid_comp_alpha", "hybrid_flow_factor")
IGNORED_SUFFIXES = ("_delta", "_pc")


def is_parseq(data: dict) -> bool:
    """A Parseq export has `rendered_frames` (a list) and usually meta.generated_by 'sd_parseq'."""
    return isinstance(data.get("rendered_frames"), list)


def parseq_frames(export: dict, source: str) -> list[tuple[int, dict]]:
    """(frame number, rendered frame) ordered by number (later duplicates win, as in Deforum)."""
    frames = export.get("rendered_frames")
    if not isinstance(frames, list) or not frames or not all(isinstance(f, dict) for f in frames):
        raise PresetError(f"{source}: a Parseq export needs a non-empty 'rendered_frames' list of frame objects")
    by_frame: dict[int, dict] = {}
    for index, frame in enumerate(frames):
        number_ = whole(frame.get("frame"))
        if number_ is None or number_ < 0:
            raise PresetError(f"{source}: rendered_frames[{index}] has no frame number "
                              f"('frame': {frame.get('frame')!r})")
        by_frame[number_] = frame
    return sorted(by_frame.items())


def _per_frame(frames: list[tuple[int, dict]], field: str, source: str) -> dict[int, float]:
    """{frame: value} of one field (a mapping schedule: consecutive numeric keyframes interpolate exactly)."""
    values: dict[int, float] = {}
    for index, frame in frames:
        value = number(frame.get(field))
        if value is None:
            raise PresetError(f"{source}: frame {index}: {field} is {frame.get(field)!r}, not a number")
        values[index] = value
    return values


def from_parseq(export: dict, source: str, n_units: int = 0, use_deltas: bool = True) -> Imported:
    """Preset data (anim keys) that the export sets; `n_units` is how many ControlNet units the preset has
    (their cn_N_* schedules are filled from the export); `use_deltas` off reads motion fields absolute
    (Deforum's parseq_use_deltas)."""
    out = Imported(kind="parseq", data={})
    frames = parseq_frames(export, source)
    first = frames[0][1]
    options = export.get("options") if isinstance(export.get("options"), dict) else {}
    out.put(("max_frames",), len(frames), "rendered_frames")
    fps, cadence = number(options.get("output_fps")), whole(options.get("cadence"))
    if fps:
        out.put(("fps",), fps, "options.output_fps")
    if cadence and cadence >= 1:
        out.put(("cadence",), cadence, "options.cadence")
    used = {"frame", "deforum_prompt"}
    suffix = "_delta" if use_deltas else ""
    for field, path in MOTION.items():
        if f"{field}{suffix}" in first:
            out.put(path, _per_frame(frames, f"{field}{suffix}", source), f"{field}{suffix}")
            used.add(field)
        elif field in first:
            out.note(field, first[field], f"Deforum reads {field}_delta (parseq_use_deltas); ignored")
            used.add(field)
    for field, path in ABSOLUTE.items():
        if field in first:
            out.put(path, _per_frame(frames, field, source), field)
            used.add(field)
    if "strength" in first:
        strength = _per_frame(frames, "strength", source)
        out.put(("denoise",), {f: round(1.0 - v, 12) for f, v in strength.items()}, "strength")
        used.add("strength")
    if "seed" in first:  # Deforum uses int(seed) on every frame, whatever the seed behaviour
        seeds = _per_frame(frames, "seed", source)
        out.put(("seed_behavior",), "schedule", "seed")
        out.put(("seed_schedule",), {f: float(int(v)) for f, v in seeds.items()}, "seed")
        used.add("seed")
        if "subseed" not in first and any(v != int(v) for v in seeds.values()):
            _seed_travel(seeds, out)
    for i in range(n_units):
        for key in ("weight", "guidance_start", "guidance_end"):
            field = f"cn_{i + 1}_{key}"
            if field in first:
                out.put(("controlnet", str(i), key), _per_frame(frames, field, source), field)
                used.add(field)
    if "deforum_prompt" in first:
        _prompts(frames, out)
    for field in sorted(first):
        if field in used or field.endswith(IGNORED_SUFFIXES):
            continue
        reason = "not carried yet" if field in NOT_CARRIED else "not a field anim reads"
        out.note(field, first[field], reason)
    return out


def _seed_travel(seeds: dict[int, float], out: Imported) -> None:
    """Fractional seeds (Parseq's seed travel) as A1111 variation seeds: seed floor(s), subseed floor(s) + 1,
    strength the fraction, so the noise slerps from one seed's toward the next's."""
    out.put(("subseed",), {f: float(math.floor(v) + 1) for f, v in seeds.items()}, "seed")
    out.put(("subseed_strength",), {f: round(v - math.floor(v), 12) for f, v in seeds.items()}, "seed")
    out.put(("seed_schedule",), {f: float(math.floor(v)) for f, v in seeds.items()}, "seed")


def _prompts(frames: list[tuple[int, dict]], out: Imported) -> None:
    """Each frame's deforum_prompt ("positive --neg negative"), kept where it changes; Deforum adds no global
    prompts to Parseq's."""
    prompts: dict[int, Any] = {}
    previous = None
    for index, frame in frames:
        text = frame.get("deforum_prompt")
        text = "" if text is None else str(text)
        if text != previous:
            prompts[index] = text
            previous = text
    out.put(("prompts",), prompts, "deforum_prompt")
    out.put(("positive_prompt",), "", "deforum_prompt")
    out.put(("negative_prompt",), "", "deforum_prompt")
    out.put(("prompt_blend",), 0, "deforum_prompt")


def merge_parseq(data: dict, parseq: Imported, keep: set = frozenset()) -> None:
    """Lay the export's values over preset data: each key the export sets replaces the preset's, except the key
    paths in `keep` (and below them). A section that is not a mapping (or a unit missing from the list) is left
    as it is for the schema to report."""
    for path in parseq.origins:
        if any(path[:cut] in keep for cut in range(1, len(path) + 1)):
            continue
        value = parseq.data
        for part in path:
            value = value[part]
        node: Any = data
        for depth, part in enumerate(path[:-1]):
            node = _child(node, part, create=depth == 0 and part != "controlnet")
            if node is None:
                break
        else:
            _assign(node, path[-1], value)


def _child(node: Any, part: str, create: bool) -> Any:
    """node[part] for a dict (created when asked) or node[int(part)] for a list; None when absent or not a section."""
    if isinstance(node, dict):
        if part not in node and create:
            node[part] = {}
        child = node.get(part)
    elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
        child = node[int(part)]
    else:
        return None
    return child if isinstance(child, (dict, list)) else None


def _assign(node: Any, part: str, value: Any) -> None:
    """node[part] = value for a dict (a list index for a list)."""
    if isinstance(node, dict):
        node[part] = value
    elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
        node[int(part)] = value
