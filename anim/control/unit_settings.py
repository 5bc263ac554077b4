"""A1111 ControlNet unit settings for annotators: resolution (`processor_res`, `pixel_perfect`) and the two
threshold sliders (`threshold_a`, `threshold_b`), with the sd-webui-controlnet extension's meaning.

Read from Mikubill/sd-webui-controlnet: scripts/controlnet.py runs a unit's preprocessor on the unit's input image
at `resolution=unit.processor_res` (the short side, px, the image is brought to) with `slider_1=threshold_a`,
`slider_2=threshold_b`; with Pixel Perfect it first replaces processor_res by
internal_controlnet/external_code.py pixel_perfect_resolution(input, render H, render W, resize mode) (read at
4ac716a6e81553f0ac935cac2c1fcd9cece838c3): k = render size / input size per axis, estimate = k * the input's short
side with k the smaller of the two for "Resize and Fill" and the larger otherwise, rounded: the input's short side
at the scale the input has in the render. The sliders' meaning per preprocessor (scripts/processor.py
preprocessor_sliders_config): canny "Canny Low Threshold" / "Canny High Threshold" (100, 200), mlsd "MLSD Value
Threshold" / "MLSD Distance Threshold" (0.1, 0.1); openpose, depth (MiDaS), lineart, softedge (HED), scribble and
normal (BAE) have none.

anim hands an annotator the input already fitted to the render size (crop = "Crop and Resize", fit = "Resize and
Fill", stretch = "Just Resize"), so:
- pixel_perfect: the annotator works at the fitted frame's own short side. For crop and fit that is exactly the
  extension's scale (its estimate is the input's short side at render scale, and the fitted frame is the input at
  render scale); for stretch the extension detects at the larger of the two axis scales, anim at each axis' own.
- processor_res: the fitted frame's short side is brought to processor_res. The extension measures the input's
  own short side; the two agree whenever the input's short side becomes the render's short side (e.g. crop with
  the same orientation) and differ by that ratio of sides otherwise.
"""
from __future__ import annotations

from anim.errors import PresetError

# annotator -> the options A1111's threshold_a / threshold_b set on it
THRESHOLDS = {"canny": ("low_threshold", "high_threshold"), "mlsd": ("thr_v", "thr_d")}


def working_side(frame_w: int, frame_h: int, *, processor_res: int | None, pixel_perfect: bool,
                 default: int) -> int:
    """The short side (px) an annotator works at on a (frame_w x frame_h) frame fitted to the render size: the
    frame's own with pixel_perfect, else processor_res, else the annotator's `default`."""
    if pixel_perfect:
        return min(int(frame_w), int(frame_h))
    if processor_res is not None:
        return int(processor_res)
    return int(default)


def threshold_options(annotator: str, options: dict | None, threshold_a: float | None,
                      threshold_b: float | None) -> dict:
    """The annotator options with threshold_a / threshold_b set as A1111 sets them (canny: low/high threshold,
    mlsd: value/distance threshold); PresetError for a threshold the annotator does not have, or one given twice."""
    merged = dict(options or {})
    given = [(key, value) for key, value in (("threshold_a", threshold_a), ("threshold_b", threshold_b))
             if value is not None]
    if not given:
        return merged
    names = THRESHOLDS.get(annotator)
    if names is None:
        which = "; ".join(f"{name}: {a}, {b}" for name, (a, b) in THRESHOLDS.items())
        raise PresetError(f"{given[0][0]}: annotator {annotator} has no threshold sliders in A1111 (they are "
                          f"{which}); remove it")
    for key, value in given:
        option = names[0] if key == "threshold_a" else names[1]
        if option in merged:
            raise PresetError(f"{key} and annotator_options.{option} set the same thing; keep one")
        merged[option] = value
    return merged
