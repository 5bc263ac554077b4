"""Reading a Deforum settings dict key by key: Deforum's default for a missing key, which keys were used,
and the notes for changed settings that were not carried over."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from anim.errors import PresetError, ScheduleError
from anim.importers.common import Imported, is_url, number, whole
from anim.importers.deforum_defaults import DEFORUM_DEFAULTS, METADATA_KEYS, NUMBER_TO_SCHEDULE, OLD_DEFAULTS
from anim.importers.schedule_text import dedupe, drop_past
from anim.keyframes import parse_schedule, parse_text_schedule
from anim.keyframes.schedule import keyframe_spans

# Settings that change where/how Deforum saves files or its UI, not the frames: never reported.
NO_EFFECT_ON_FRAMES = frozenset({
    "batch_name", "outdir", "save_settings", "save_samples", "display_samples", "save_sample_per_step",
    "show_sample_per_step", "filename_format", "timestring", "motion_preview_mode", "store_frames_in_ram",
    "delete_imgs", "delete_input_frames", "skip_video_creation", "make_gif", "ffmpeg_mode", "ffmpeg_outdir",
    "ffmpeg_preset", "ffmpeg_crf", "override_these_with_webui", "n_batch", "make_grid", "grid_rows",
    "frame_interpolation_keep_imgs", "frame_interpolation_use_upscaled", "render_video_every_N_frames",
    "r_upscale_keep_imgs", "sd_model_hash", "deforum_git_commit_id", "prompt", "precision", "C", "f",
    "init_latent", "init_sample", "init_c", "seed_internal", "resume_from_timestring", "resume_timestring",
    "from_img2img_instead_of_link",
    "overwrite_extracted_frames",
})

# A switch and the settings that only act when it is on: with the switch off Deforum ignores them, so are we.
GATED: dict[str, tuple[str, ...]] = {
    "enable_perspective_flip": ("perspective_flip_theta", "perspective_flip_phi", "perspective_flip_gamma",
                                "perspective_flip_fv"),
    "use_mask": ("use_alpha_as_mask", "mask_file", "invert_mask", "mask_contrast_adjust", "mask_brightness_adjust",
                 "overlay_mask", "mask_overlay_blur", "fill", "full_res_mask", "full_res_mask_padding"),
    "use_noise_mask": ("mask_schedule", "noise_mask_schedule"),
    "use_mask_video": ("video_mask_path",),
    "enable_subseed_scheduling": ("subseed_schedule", "subseed_strength_schedule"),
    "enable_sampler_scheduling": ("sampler_schedule",),
    "enable_checkpoint_scheduling": ("checkpoint_schedule",),
    "enable_clipskip_scheduling": ("clipskip_schedule",),
    "enable_noise_multiplier_scheduling": ("noise_multiplier_schedule",),
    "enable_ddim_eta_scheduling": ("ddim_eta_schedule",),
    "enable_ancestral_eta_scheduling": ("ancestral_eta_schedule",),
    "use_looper": ("init_images", "image_strength_schedule", "blendFactorMax", "blendFactorSlope",
                   "tweening_frames_schedule", "color_correction_factor"),
    "r_upscale_video": ("r_upscale_factor", "r_upscale_model"),
    "seed_enable_extras": ("subseed", "subseed_strength", "seed_resize_from_w", "seed_resize_from_h"),
    "reroll_blank_frames": ("reroll_patience",),
    "optical_flow_redo_generation": ("redo_flow_factor_schedule",),
}
OFF = ("false", "none", "0", "", "ignore")
HYBRID_PREFIX = "hybrid_"


class Reader:
    """A Deforum settings dict read through Deforum's defaults; records the keys it used."""

    def __init__(self, settings: dict, out: Imported) -> None:
        self.settings, self.out = settings, out
        self.used: set[str] = set()
        self.keep_past = False  # keyframes past the file's last frame are kept (Video Input ignores max_frames)

    def get(self, key: str) -> Any:
        """The file's value, or (a copy of) Deforum's default when the file does not have the key."""
        self.used.add(key)
        if key in self.settings:
            return self.settings[key]
        return copy.deepcopy(DEFORUM_DEFAULTS.get(key, OLD_DEFAULTS.get(key)))

    def raw(self, key: str) -> Any:
        """The value exactly as the file has it (None when absent)."""
        return self.settings.get(key)

    def take(self, key: str) -> None:
        """Mark a key as dealt with (read elsewhere, or meaningless in this set-up)."""
        self.used.add(key)

    def put(self, path: tuple[str, ...], value: Any, source_key: str) -> None:
        """Set an anim preset key from a Deforum key."""
        self.out.put(path, value, source_key)

    def note(self, key: str, value: Any, reason: str) -> None:
        """Report a setting that was not carried over (or was carried with a change)."""
        self.used.add(key)
        self.out.note(key, value, reason)

    def schedule(self, key: str) -> Any:
        """A schedule as anim reads it with Deforum's meaning: numbers stay numbers; a frame given twice keeps its
        last keyframe and keyframes past the last frame are left out (Deforum's rules; both noted); the text is
        checked now so a malformed one is named by its Deforum key."""
        value = self.get(key)
        if key in NUMBER_TO_SCHEDULE and number(value) is not None and not isinstance(value, str):
            return f"0:({number(value)!r})"
        if not isinstance(value, str):
            return value
        try:
            text = self._deforum_keyframes(key, value)
            parse_schedule(text, key)
        except ScheduleError as exc:
            raise PresetError(str(exc)) from None
        return text

    def text_schedule(self, key: str) -> str:
        """A string-valued schedule (sampler_schedule, checkpoint_schedule) with Deforum's keyframe rules (as
        `schedule`), its syntax checked now (anim.keyframes.texts) so a malformed one is named by its Deforum key."""
        value = self.get(key)
        if not isinstance(value, str):
            raise PresetError(f"{key}: expected a schedule text such as '0: (\"Euler a\")', got {value!r}")
        try:
            keyframe_spans(value, key)  # unbalanced parentheses named by the file's key before the rewrite
            text = self._deforum_keyframes(key, value)
            parse_text_schedule(text, key)
        except ScheduleError as exc:
            raise PresetError(str(exc)) from None
        return text

    def _deforum_keyframes(self, key: str, value: str) -> str:
        """`value` with repeated frames reduced to their last keyframe and keyframes past the end dropped."""
        text, repeated = dedupe(value)
        if repeated:
            self.note(key, value, f"frame(s) {', '.join(map(str, repeated))} given twice: the last keyframe is "
                                  "kept, as Deforum does")
        frames = whole(self.settings.get("max_frames"))
        if frames and not self.keep_past:
            text, dropped = drop_past(text, frames - 1)
            if dropped:
                self.note(key, value, f"keyframe(s) at {', '.join(map(str, dropped))} lie past the last frame "
                                      f"({frames - 1}): left out, as Deforum ignores them")
        return text

    def refuse_url(self, key: str, path: str) -> bool:
        """True (with a note) when `path` is a URL: anim never downloads at render time."""
        if is_url(path):
            self.note(key, path, "a URL: anim never downloads; save the file and give its path")
            return True
        return False

    def skip_switched_off(self) -> None:
        """Settings behind a switch that is off (perspective flip, masks, looper, ...) act in Deforum only when it
        is on: take them silently; hybrid_* likewise when neither hybrid compositing nor hybrid motion is on."""
        for switch, keys in GATED.items():
            value = str(self.settings.get(switch, DEFORUM_DEFAULTS.get(switch, ""))).strip().lower()
            if value in OFF:
                for key in keys:
                    self.take(key)
        hybrid_on = any(str(self.settings.get(k, "None")).strip().lower() not in OFF
                        for k in ("hybrid_composite", "hybrid_motion"))
        if not hybrid_on:
            for key in self.settings:
                if key.startswith(HYBRID_PREFIX):
                    self.take(key)

    def usable_path(self, key: str, path: str) -> bool:
        """False (with a note) for a URL; a local path is carried as written, with a note when this machine does
        not have it (a Windows path from the artist's PC): fix it before rendering."""
        if self.refuse_url(key, path):
            return False
        if not Path(path).exists():
            self.note(key, path, "carried as written, but not found on this machine: fix the path before rendering")
        return True

    def report_unused(self) -> None:
        """Note every key the file changed from Deforum's default that no reader used."""
        self.skip_switched_off()
        for key, value in self.settings.items():
            if key in self.used or key in METADATA_KEYS or key in NO_EFFECT_ON_FRAMES:
                continue
            if key in DEFORUM_DEFAULTS or key in OLD_DEFAULTS:
                default = DEFORUM_DEFAULTS.get(key, OLD_DEFAULTS.get(key))
                if not same_value(value, default):
                    self.out.note(key, value, "not supported by anim yet")
            else:
                self.out.note(key, value, "not a Deforum setting anim knows; ignored")


def same_value(a: Any, b: Any) -> bool:
    """Equal as Deforum would read them: numbers by value ("2" == 2), text without blanks ("0:(0)" == "0: (0)")."""
    if isinstance(a, bool) or isinstance(b, bool):
        return str(a).strip().lower() == str(b).strip().lower()
    na, nb = number(a), number(b)
    if na is not None and nb is not None:
        return na == nb
    if a is None or b is None:
        return (a in (None, "", "None")) and (b in (None, "", "None"))
    if isinstance(a, str) and isinstance(b, str):
        return "".join(a.split()) == "".join(b.split())
    return a == b
