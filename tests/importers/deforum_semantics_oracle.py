"""What Deforum (deforum-art/sd-webui-deforum) computes per frame from a settings file: a test oracle.

Restated from reading Deforum's scripts/deforum_helpers/ (render.py, seed.py, prompt.py, args.py,
generate.py, webui_sd_pipeline.py, settings.py, deprecation_utils.py); written independently of anim.
Schedule strings go through tests.keyframes.deforum_oracle. Covers the 2D/3D path (render.py
render_animation) plus the Video Input / Interpolation differences that affect these values.
Not modelled: Parseq, guided-image strengths, resume, blank-frame rerolls, Interpolation-mode prompt blending.
"""

from __future__ import annotations

import json
import re

import numexpr
import numpy as np
import pandas as pd

from tests.keyframes.deforum_oracle import deforum_schedule, is_number, sanitize

_Z, _H = "0: (0)", "0: (0.5)"
DEFAULTS = {  # args.py DeforumAnimArgs / LoopArgs defaults, deforum_controlnet.py unit defaults
    "angle": _Z, "zoom": "0: (1.0025+0.002*sin(1.25*3.14*t/30))", "translation_x": _Z,
    "translation_y": _Z, "translation_z": "0: (1.75)", "transform_center_x": _H,
    "transform_center_y": _H, "rotation_3d_x": _Z, "rotation_3d_y": _Z, "rotation_3d_z": _Z,
    "perspective_flip_theta": _Z, "perspective_flip_phi": _Z, "perspective_flip_gamma": _Z,
    "perspective_flip_fv": "0: (53)", "noise_schedule": "0: (0.065)",
    "strength_schedule": "0: (0.65)", "contrast_schedule": "0: (1.0)", "cfg_scale_schedule": "0: (7)",
    "steps_schedule": "0: (25)", "fov_schedule": "0: (70)", "aspect_ratio_schedule": "0: (1)",
    "near_schedule": "0: (200)", "far_schedule": "0: (10000)",
    "seed_schedule": '0:(s), 1:(-1), "max_f-2":(-1), "max_f-1":(s)',
    "pix2pix_img_cfg_scale_schedule": "0:(1.5)", "subseed_schedule": "0: (1)",
    "subseed_strength_schedule": _Z, "clipskip_schedule": "0: (2)",
    "noise_multiplier_schedule": "0: (1.05)", "ddim_eta_schedule": _Z, "ancestral_eta_schedule": "0: (1)",
    "amount_schedule": "0: (0.1)", "kernel_schedule": "0: (5)", "sigma_schedule": "0: (1)",
    "threshold_schedule": _Z, "cadence_flow_factor_schedule": "0: (1)",
    "redo_flow_factor_schedule": "0: (1)", "hybrid_comp_alpha_schedule": "0:(0.5)",
    "hybrid_comp_mask_blend_alpha_schedule": "0:(0.5)", "hybrid_comp_mask_contrast_schedule": "0:(1)",
    "hybrid_comp_mask_auto_contrast_cutoff_high_schedule": "0:(100)",
    "hybrid_comp_mask_auto_contrast_cutoff_low_schedule": "0:(0)", "hybrid_flow_factor_schedule": "0:(1)",
    "image_strength_schedule": "0:(0.75)", "blendFactorMax": "0:(0.35)", "blendFactorSlope": "0:(0.25)",
    "tweening_frames_schedule": "0:(20)", "color_correction_factor": "0:(0.075)",
    **{f"cn_{i}_{k}": v for i in range(1, 6)
       for k, v in (("weight", "0:(1)"), ("guidance_start", "0:(0.0)"), ("guidance_end", "0:(1.0)"))},
}

# A1111 modules/sd_samplers.py samplers_for_img2img of late Nov 2022 (all_samplers minus PLMS, none
# hidden by the user): what a late-2022 Deforum integer `sampler` indexed. Index 0 is stable; the
# rest depends on the A1111 version and on opts.hide_samplers (see the facts report).
SAMPLERS_IMG2IMG_LATE_2022 = [
    "Euler a", "Euler", "LMS", "Heun", "DPM2", "DPM2 a", "DPM++ 2S a", "DPM++ 2M", "DPM++ SDE",
    "DPM fast", "DPM adaptive", "LMS Karras", "DPM2 Karras", "DPM2 a Karras", "DPM++ 2S a Karras",
    "DPM++ 2M Karras", "DPM++ SDE Karras", "DDIM",
]

_RENAMES = {"flip_2d_perspective": "enable_perspective_flip", "skip_video_for_run_all": "skip_video_creation"}
_VALUE_FIXES = {
    "color_coherence": [("Match Frame 0 HSV", "HSV"), ("Match Frame 0 LAB", "LAB"), ("Match Frame 0 RGB", "RGB")],
    "hybrid_composite": [(False, "None"), (True, "Normal")],
    "optical_flow_redo_generation": [(False, "None"), (True, "DIS Fine")],
    "optical_flow_cadence": [(False, "None"), (True, "DIS Fine")],
    **{f"cn_{i}_resize_mode": [("Envelope (Outer Fit)", "Outer Fit (Shrink to Fit)"),
                               ("Scale to Fit (Inner Fit)", "Inner Fit (Scale to Fit)")] for i in (1, 2, 3)},
}


def migrate(settings: dict) -> dict:
    """A copy with deprecation_utils.handle_deprecated_settings applied, in its map order."""
    s = dict(settings)
    s.setdefault("legacy_colormatch", True)
    for old, new in _RENAMES.items():
        if old in s:
            s[new] = s.pop(old)
    for key, fixes in _VALUE_FIXES.items():
        for old, new in fixes:
            if key in s and s[key] == old:  # plain ==, so 0/1 match False/True as in Deforum
                s[key] = new
    if "use_zoe_depth" in s:
        flag = str(s.pop("use_zoe_depth"))
        if flag in ("True", "False"):
            s["depth_algorithm"] = "Zoe+AdaBins (old)" if flag == "True" else "Midas+AdaBins (old)"
    for i in range(1, 6):
        for k in ("weight", "guidance_start", "guidance_end"):
            if isinstance(s.get(f"cn_{i}_{k}"), (int, float)):
                s[f"cn_{i}_{k}"] = f"0:({s[f'cn_{i}_{k}']})"
    return s


def max_frames(settings: dict) -> int:
    """anim_args.max_frames (a UI int; strings accepted here); Video Input replaces it by the frame count."""
    return int(float(settings.get("max_frames", 120)))


def cadence(settings: dict) -> int:
    """render.py turbo_steps: int(diffusion_cadence), but 1 in Video Input (and Interpolation has none)."""
    if settings.get("animation_mode") in ("Video Input", "Interpolation"):
        return 1
    return int(settings.get("diffusion_cadence", 2))  # int("2.0") raises, as in Deforum


def base_seed(settings: dict, seed: int | None = None) -> int:
    """args.seed after process_args: -1 becomes A1111's random get_fixed_seed draw; `seed` stands in."""
    value = int(float(settings.get("seed", -1)))
    if value != -1:
        return value
    if seed is None:
        raise ValueError("seed -1: Deforum draws a random seed; pass seed= to stand in for it")
    return int(seed)


def unquote_keys(text: str) -> str:
    """Drop the first and last ' and \" of each expression key, as parse_key_frames does."""
    parts = []
    for part in text.split(","):
        key, sep, rest = part.partition(":")
        if not is_number(sanitize(key.strip())):
            key = key.strip().replace("'", "", 1).replace('"', "", 1)[::-1]
            key = key.replace("'", "", 1).replace('"', "", 1)[::-1]
        parts.append(key + sep + rest)
    return ",".join(parts)


def series(settings: dict, key: str, n: int | None = None, seed: int | None = None) -> np.ndarray:
    """Per-frame values of a numeric schedule (args.py default when absent); `s` is the fixed seed."""
    s = migrate(settings)
    text = s[key] if key in s else DEFAULTS[key]
    if not isinstance(text, str):
        raise TypeError(f"{key}: Deforum needs a schedule string, got {text!r}")
    n = max_frames(s) if n is None else n
    s_value = seed if seed is not None else int(float(s.get("seed", -1)))
    values, bad = deforum_schedule(unquote_keys(text), n, s_value)
    if bad:
        raise ValueError(f"{key}: an expression gives a non-finite value")
    return values


def denoise(settings: dict) -> np.ndarray:
    """Per-frame A1111 denoising_strength = 1 - clamp(strength); frame 0 is txt2img (1.0) without init."""
    s = migrate(settings)
    out = 1.0 - np.clip(series(s, "strength_schedule"), 0.0, 1.0)
    mode = s.get("animation_mode", "2D")
    if mode == "Video Input":  # every frame is img2img of its video frame at the scheduled strength
        return out
    has_init = bool(s.get("use_init")) and s.get("init_image") not in (None, "")
    first = 1.0 - min(1.0, max(0.0, float(s.get("strength", 0.8)))) if has_init else 1.0
    if mode == "Interpolation":  # no loopback: every frame is like frame 0
        out[:] = first
    else:
        out[0] = first
    return out


def _next_seed(behavior: str, seed: int, internal: int, iter_n: int) -> tuple[int | None, int]:
    """seed.py next_seed: (new seed, new root.seed_internal)."""
    if behavior == "iter":
        return seed + (1 if internal % iter_n == 0 else 0), internal + 1
    if behavior in ("ladder", "alternate"):
        step = (2 if behavior == "ladder" else 1) if internal == 0 else -1
        return seed + step, 1 if internal == 0 else 0
    if behavior == "fixed":
        return seed, internal
    return None, internal  # random (and the discarded draw under 'schedule'): not reproducible


def diffused_frames(settings: dict) -> list[int]:
    """Frames render.py sends to generate(): 0, c, 2c, ... < max_frames."""
    return list(range(0, max_frames(settings), cadence(settings)))


def seeds(settings: dict, seed: int | None = None) -> dict[int, int | None]:
    """{diffused frame: seed}, following render.py's loop (next_seed once per diffused frame)."""
    s = migrate(settings)
    behavior = s.get("seed_behavior", "iter")
    if s.get("use_looper") and s.get("animation_mode", "2D") in ("2D", "3D"):
        behavior = "schedule"  # guided images force it (render.py)
    current = base_seed(s, seed)
    iter_n, internal, out = int(s.get("seed_iter_N", 1)), 0, {}
    schedule = None
    if behavior == "schedule":  # Interpolation mode builds its keys without the seed, so s = -1
        s_value = -1 if s.get("animation_mode") == "Interpolation" else current
        schedule = series(s, "seed_schedule", seed=s_value)
    for frame in diffused_frames(s):
        if schedule is not None:
            current = int(schedule[frame])  # -1 here: A1111 draws a random seed for that frame
        out[frame] = current
        if current is not None:
            current, internal = _next_seed(behavior, current, internal, iter_n)
    return out


def keyframe_prompts(settings: dict) -> dict:
    """The prompt dict: `animation_prompts` wins over `prompts` (settings.py load_all_settings)."""
    raw = settings.get("animation_prompts", settings.get("prompts"))
    return json.loads(raw) if isinstance(raw, str) else dict(raw)


def global_prompts(settings: dict) -> tuple[str, str]:
    """UI-saved animation_prompts_positive/negative; run-saved files already have them baked in `prompts`."""
    if "animation_prompts_positive" in settings or "animation_prompts_negative" in settings:
        return settings.get("animation_prompts_positive", ""), settings.get("animation_prompts_negative", "")
    return "", ""  # positive_prompts / negative_prompts of run-saved files: informational only


def with_globals(text: str, positive: str, negative: str) -> str:
    """args.py process_args: '{pos} {prompt} {--neg unless present} {neg}' (--neg removed from neg)."""
    negative = negative.replace("--neg", "")
    return f"{positive} {text} {'' if '--neg' in text else '--neg'} {negative}"


def eval_backticks(text: str, frame: int, max_f: int) -> str:
    """prompt.py prepare_prompt: each `expr` -> str(numexpr(expr with every 't' -> frame, max_f))."""
    for match in re.finditer(r"`.*?`", text):
        found = match.group(0)
        expr = found.replace("t", str(frame)).replace("max_f", str(max_f)).replace("`", "")
        text = text.replace(found, str(numexpr.evaluate(expr, local_dict={})))
    return text


def split_negative(text: str) -> tuple[str, str]:
    """prompt.py prepare_prompt + split_weighted_subprompts: (positive, negative), both stripped."""
    first, *rest = text.strip().split("--neg")
    return first.strip(), "".join(rest).strip()


def prompt_frames(settings: dict) -> list[str]:
    """render.py: keyframe prompts (with globals) placed at int(key) and held (ffill, then bfill)."""
    s = migrate(settings)
    n = max_frames(s)
    positive, negative = global_prompts(s)
    table = pd.Series([np.nan] * n, dtype=object)
    for key, text in keyframe_prompts(s).items():
        key = str(key)
        frame = int(key) if key.isdigit() else int(numexpr.evaluate(key, local_dict={"max_f": n - 1}))
        table[frame] = with_globals(text, positive, negative)
    return list(table.ffill().bfill())[:n]


def prompts(settings: dict) -> list[tuple[str, str]]:
    """Per-frame (positive, negative) as handed to A1111 in 2D/3D/Video Input modes."""
    n = max_frames(settings)
    return [split_negative(eval_backticks(text, f, n - 1)) for f, text in enumerate(prompt_frames(settings))]


def sampler(settings: dict) -> str:
    """Sampler name; a late-2022 integer is an index into samplers_for_img2img of that time."""
    value = settings.get("sampler", "Euler a")
    if isinstance(value, int) and not isinstance(value, bool):
        return SAMPLERS_IMG2IMG_LATE_2022[value]
    return str(value)
