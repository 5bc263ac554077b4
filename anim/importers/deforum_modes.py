"""Deforum's animation modes and extras that reshape an imported preset: Video Input, Interpolation, a Parseq
export pasted into parseq_manifest, and settings that act by default with no anim equivalent (noted)."""
from __future__ import annotations

import json

from anim.errors import PresetError
from anim.importers.common import flag, is_url
from anim.importers.parseq import from_parseq, merge_parseq
from anim.importers.reader import Reader


def video_input_frames(r: Reader) -> None:
    """Video Input renders every extracted frame (max_frames is ignored) and Deforum keeps no previous image
    there, so no noise, contrast, anti-blur or colour matching is applied to the input frames."""
    r.out.data.pop("max_frames", None)
    for path, value in ((("noise",), 0.0), (("contrast",), 1.0), (("unsharp_amount",), 0.0),
                        (("color_coherence",), "none")):
        r.put(path, value, "animation_mode")


def import_parseq_manifest(r: Reader) -> None:
    """A Parseq export pasted into parseq_manifest drives the render (Deforum's parseq adapter): its fields
    replace the settings' schedules (motion as deltas unless parseq_use_deltas is off)."""
    text = str(r.get("parseq_manifest") or "").strip()
    use_deltas, overrides = flag(r.get("parseq_use_deltas")), flag(r.get("parseq_non_schedule_overrides"))
    if not text:
        return
    if is_url(text):
        r.note("parseq_manifest", text, "a URL: anim never downloads; save the export and set parseq: PATH")
        return
    try:
        export = json.loads(text)
    except ValueError:
        raise PresetError(f"parseq_manifest: not a Parseq export (JSON with rendered_frames): {text[:60]!r}") from None
    if not isinstance(export, dict):
        raise PresetError("parseq_manifest: not a Parseq export (a JSON object with rendered_frames)")
    units = r.out.data.get("controlnet", [])
    parseq = from_parseq(export, "parseq_manifest", n_units=len(units), use_deltas=use_deltas)
    keep = set() if overrides else {("max_frames",), ("fps",), ("cadence",)}
    merge_parseq(r.out.data, parseq, keep)
    for path in parseq.origins:
        r.out.origins[path] = "parseq_manifest"
    r.out.notes.extend(parseq.notes)


def interpolation_as_blends(r: Reader) -> None:
    """Deforum's Interpolation mode renders each frame from noise with the prompts' conditioning blended
    between keyframes: anim does the same with denoise 1 and prompt_blend across each gap (seeds as set)."""
    prompts = r.out.data["prompts"]
    literal = sorted(k for k in prompts if isinstance(k, int))
    gaps = [b - a for a, b in zip(literal, literal[1:])] or [0]
    r.put(("denoise",), 1.0, "animation_mode")
    r.put(("prompt_blend",), max(gaps), "animation_mode")
    r.put(("color_coherence",), "none", "animation_mode")
    r.put(("noise",), 0.0, "animation_mode")
    r.note("animation_mode", "Interpolation", "mapped to frames made from noise with prompt blends across each "
                                              "keyframe gap (an approximation of Deforum's interpolation)")

