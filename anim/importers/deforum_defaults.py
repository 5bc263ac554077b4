"""Deforum settings keys with their defaults as Deforum writes them; the importer lists non-default keys it drops.

Read from deforum-art/sd-webui-deforum (automatic1111-webui) scripts/deforum_helpers/: args.py @ 6e4885fe (DeforumArgs,
DeforumAnimArgs, ...), deforum_controlnet.py @ 01497b7b, deprecation_utils.py @ 80f5e99f, defaults.py, settings.py.
"""

from __future__ import annotations

# ControlNet: one unit's defaults (the gradio widgets in deforum_controlnet.py); units 2..5 share them.
_CN_1: dict[str, object] = {
    "cn_1_overwrite_frames": True,
    "cn_1_vid_path": "",
    "cn_1_mask_vid_path": "",
    "cn_1_enabled": False,
    "cn_1_low_vram": False,
    "cn_1_pixel_perfect": False,
    "cn_1_module": "none",
    "cn_1_model": "None",
    "cn_1_weight": "0:(1)",  # schedules since mid-2023; older files hold a number (see NUMBER_TO_SCHEDULE)
    "cn_1_guidance_start": "0:(0.0)",
    "cn_1_guidance_end": "0:(1.0)",
    "cn_1_processor_res": 64,
    "cn_1_threshold_a": 64,
    "cn_1_threshold_b": 64,
    "cn_1_resize_mode": "Inner Fit (Scale to Fit)",
    "cn_1_control_mode": "Balanced",
    "cn_1_loopback_mode": False,
}

DEFORUM_DEFAULTS: dict[str, object] = {
    # DeforumArgs (Run tab)
    "W": 512,
    "H": 512,
    "show_info_on_ui": True,
    "tiling": False,
    "restore_faces": False,
    "seed_resize_from_w": 0,
    "seed_resize_from_h": 0,
    "seed": -1,
    "sampler": "Euler a",  # late-2022 files store an int index instead (see VALUE_FIXES)
    # Not in args.py @ 6e4885fe: written by later Deforum builds on A1111 >= 1.9 (seen with commit 5d63a339).
    # "Automatic" is A1111's default scheduler label; inferred, not read from Deforum's source.
    "scheduler": "Automatic",
    "steps": 25,
    "batch_name": "Deforum_{timestring}",
    "seed_behavior": "iter",
    "seed_iter_N": 1,
    "use_init": False,
    "strength": 0.8,
    "strength_0_no_init": True,
    "init_image": "https://deforum.github.io/a1/I1.png",  # a run-saved file holds None when use_init is off
    # (init_image_box is an image widget with no value; it is never written to a settings file)
    "use_mask": False,
    "use_alpha_as_mask": False,
    "mask_file": "https://deforum.github.io/a1/M1.jpg",
    "invert_mask": False,
    "mask_contrast_adjust": 1.0,
    "mask_brightness_adjust": 1.0,
    "overlay_mask": True,
    "mask_overlay_blur": 4,
    "fill": 1,  # index into ["fill", "original", "latent noise", "latent nothing"]; UI default "original"
    "full_res_mask": True,
    "full_res_mask_padding": 4,
    "reroll_blank_frames": "ignore",
    "reroll_patience": 10,  # files usually hold 10.0
    "motion_preview_mode": False,
    # prompts (UI-saved names; a run-saved file writes positive_prompts / negative_prompts, see RENAMED)
    "prompts": {
        "0": "tiny cute bunny, vibrant diffraction, highly detailed, intricate, ultra hd, sharp photo, "
        "crepuscular rays, in focus",
        "30": "anthropomorphic clean cat, surrounded by fractals, epic angle and pose, symmetrical, 3d, depth of field",
        "60": "a beautiful coconut --neg photo, realistic",
        "90": "a beautiful durian, award winning photography",
    },
    "animation_prompts_positive": "",
    "animation_prompts_negative": "nsfw, nude",
    # DeforumAnimArgs: animation / motion
    "animation_mode": "2D",
    "max_frames": 120,
    "border": "replicate",
    "angle": "0: (0)",
    "zoom": "0: (1.0025+0.002*sin(1.25*3.14*t/30))",
    "translation_x": "0: (0)",
    "translation_y": "0: (0)",
    "translation_z": "0: (1.75)",
    "transform_center_x": "0: (0.5)",
    "transform_center_y": "0: (0.5)",
    "rotation_3d_x": "0: (0)",
    "rotation_3d_y": "0: (0)",
    "rotation_3d_z": "0: (0)",
    "enable_perspective_flip": False,
    "perspective_flip_theta": "0: (0)",
    "perspective_flip_phi": "0: (0)",
    "perspective_flip_gamma": "0: (0)",
    "perspective_flip_fv": "0: (53)",
    # DeforumAnimArgs: generation schedules
    "noise_schedule": "0: (0.065)",
    "strength_schedule": "0: (0.65)",
    "contrast_schedule": "0: (1.0)",
    "cfg_scale_schedule": "0: (7)",
    "enable_steps_scheduling": False,
    "steps_schedule": "0: (25)",
    "fov_schedule": "0: (70)",
    "aspect_ratio_schedule": "0: (1)",
    "aspect_ratio_use_old_formula": False,
    "near_schedule": "0: (200)",
    "far_schedule": "0: (10000)",
    "seed_schedule": '0:(s), 1:(-1), "max_f-2":(-1), "max_f-1":(s)',
    "pix2pix_img_cfg_scale_schedule": "0:(1.5)",
    "enable_subseed_scheduling": False,
    "subseed_schedule": "0: (1)",
    "subseed_strength_schedule": "0: (0)",
    "enable_sampler_scheduling": False,
    "sampler_schedule": '0: ("Euler a")',
    "use_noise_mask": False,
    "mask_schedule": '0: ("{video_mask}")',
    "noise_mask_schedule": '0: ("{video_mask}")',
    "enable_checkpoint_scheduling": False,
    "checkpoint_schedule": '0: ("model1.ckpt"), 100: ("model2.safetensors")',
    "enable_clipskip_scheduling": False,
    "clipskip_schedule": "0: (2)",
    "enable_noise_multiplier_scheduling": True,
    "noise_multiplier_schedule": "0: (1.05)",
    "resume_from_timestring": False,
    "resume_timestring": "20230129210106",
    "enable_ddim_eta_scheduling": False,
    "ddim_eta_schedule": "0: (0)",
    "enable_ancestral_eta_scheduling": False,
    "ancestral_eta_schedule": "0: (1)",
    # DeforumAnimArgs: anti-blur
    "amount_schedule": "0: (0.1)",
    "kernel_schedule": "0: (5)",
    "sigma_schedule": "0: (1)",
    "threshold_schedule": "0: (0)",
    # DeforumAnimArgs: coherence / cadence / noise
    "color_coherence": "LAB",
    "color_coherence_image_path": "",
    "color_coherence_video_every_N_frames": 1,
    "color_force_grayscale": False,
    "legacy_colormatch": False,  # but a file *without* this key is loaded as True (see IF_MISSING)
    "diffusion_cadence": 1,  # early-2023 files hold a string ("1".."8")
    "optical_flow_cadence": "None",
    "cadence_flow_factor_schedule": "0: (1)",
    "optical_flow_redo_generation": "None",
    "redo_flow_factor_schedule": "0: (1)",
    "diffusion_redo": "0",
    "noise_type": "perlin",
    "perlin_w": 8,  # perlin_w / perlin_h are args but settings.py excludes them when saving
    "perlin_h": 8,
    "perlin_octaves": 4,
    "perlin_persistence": 0.5,
    # DeforumAnimArgs: 3D depth warping
    "use_depth_warping": True,
    "depth_algorithm": "Midas-3-Hybrid",
    "midas_weight": 0.2,
    "padding_mode": "border",
    "sampling_mode": "bicubic",
    "save_depth_maps": False,
    # DeforumAnimArgs: video input
    "video_init_path": "https://deforum.github.io/a1/V1.mp4",
    "extract_nth_frame": 1,
    "extract_from_frame": 0,
    "extract_to_frame": -1,
    "overwrite_extracted_frames": False,
    "use_mask_video": False,
    "video_mask_path": "https://deforum.github.io/a1/VM1.mp4",
    # hybrid video (DeforumAnimArgs)
    "hybrid_comp_alpha_schedule": "0:(0.5)",
    "hybrid_comp_mask_blend_alpha_schedule": "0:(0.5)",
    "hybrid_comp_mask_contrast_schedule": "0:(1)",
    "hybrid_comp_mask_auto_contrast_cutoff_high_schedule": "0:(100)",
    "hybrid_comp_mask_auto_contrast_cutoff_low_schedule": "0:(0)",
    "hybrid_flow_factor_schedule": "0:(1)",
    "hybrid_generate_inputframes": False,
    "hybrid_generate_human_masks": "None",
    "hybrid_use_first_frame_as_init_image": True,
    "hybrid_motion": "None",
    "hybrid_motion_use_prev_img": False,
    "hybrid_flow_consistency": False,
    "hybrid_consistency_blur": 2,
    "hybrid_flow_method": "RAFT",
    "hybrid_composite": "None",  # "None" | "Normal" | "Before Motion" | "After Generation"; was a bool (VALUE_FIXES)
    "hybrid_use_init_image": False,
    "hybrid_comp_mask_type": "None",
    "hybrid_comp_mask_inverse": False,
    "hybrid_comp_mask_equalize": "None",
    "hybrid_comp_mask_auto_contrast": False,
    "hybrid_comp_save_extra_frames": False,
    # Parseq (ParseqArgs)
    "parseq_manifest": "",  # args.py says None; the UI textbox saves ""
    "parseq_use_deltas": True,
    "parseq_non_schedule_overrides": True,
    # loop / guided images (LoopArgs)
    "use_looper": False,
    "init_images": '{\n    "0": "https://deforum.github.io/a1/Gi1.png",\n'
    '    "max_f/4-5": "https://deforum.github.io/a1/Gi2.png",\n'
    '    "max_f/2-10": "https://deforum.github.io/a1/Gi3.png",\n'
    '    "3*max_f/4-15": "https://deforum.github.io/a1/Gi4.jpg",\n'
    '    "max_f-20": "https://deforum.github.io/a1/Gi1.png"\n}',
    "image_strength_schedule": "0:(0.75)",
    "blendFactorMax": "0:(0.35)",
    "blendFactorSlope": "0:(0.25)",
    "tweening_frames_schedule": "0:(20)",
    "color_correction_factor": "0:(0.075)",
    # ControlNet (deforum_controlnet.py, 5 units)
    **_CN_1,
    **{f"cn_{i}_{k[5:]}": v for i in range(2, 6) for k, v in _CN_1.items()},
    # output / video (DeforumOutputArgs)
    "skip_video_creation": False,
    "fps": 15,
    "make_gif": False,
    "delete_imgs": False,
    "delete_input_frames": False,
    "image_path": "C:/SD/20230124234916_%09d.png",  # an arg, but settings.py excludes it when saving
    "add_soundtrack": "None",
    "soundtrack_path": "https://deforum.github.io/a1/A1.mp3",
    "r_upscale_video": False,
    "r_upscale_factor": "x2",
    "r_upscale_model": "realesr-animevideov3",
    "r_upscale_keep_imgs": True,
    "store_frames_in_ram": False,
    "frame_interpolation_engine": "None",
    "frame_interpolation_x_amount": 2,
    "frame_interpolation_slow_mo_enabled": False,
    "frame_interpolation_slow_mo_amount": 2,
    "frame_interpolation_keep_imgs": False,
    "frame_interpolation_use_upscaled": False,
}

# Written by settings.py next to the settings on every save; informational, no default value.
METADATA_KEYS: tuple[str, ...] = ("sd_model_name", "sd_model_hash", "deforum_git_commit_id")

# old key -> new key. From deprecation_utils.py unless noted.
RENAMED: dict[str, str] = {
    "flip_2d_perspective": "enable_perspective_flip",
    "skip_video_for_run_all": "skip_video_creation",
    "use_zoe_depth": "depth_algorithm",  # the value changes too: see VALUE_FIXES["use_zoe_depth"]
    # (animation_prompts is read as prompts, winning over it: done by the importer's upgrade() itself)
    # (positive_prompts / negative_prompts, written by run-saved files, are NOT renames: `prompts` there already
    # holds the combined text and no Deforum loader reads them; the importer ignores them.)
}

# key (as found in the file, i.e. before any rename) -> {old value: new value}. From deprecation_utils.py unless noted.
VALUE_FIXES: dict[str, dict[object, object]] = {
    "color_coherence": {"Match Frame 0 HSV": "HSV", "Match Frame 0 LAB": "LAB", "Match Frame 0 RGB": "RGB"},
    "hybrid_composite": {False: "None", True: "Normal"},
    "optical_flow_redo_generation": {False: "None", True: "DIS Fine"},
    "optical_flow_cadence": {False: "None", True: "DIS Fine"},
    # Deforum lists these for units 1..3 only
    **{
        f"cn_{i}_resize_mode": {
            "Envelope (Outer Fit)": "Outer Fit (Shrink to Fit)",
            "Scale to Fit (Inner Fit)": "Inner Fit (Scale to Fit)",
        }
        for i in range(1, 4)
    },
    # Deforum compares str(value), so both the bool and its string form match; then renamed to depth_algorithm
    "use_zoe_depth": {
        True: "Zoe+AdaBins (old)",
        False: "Midas+AdaBins (old)",
        "True": "Zoe+AdaBins (old)",
        "False": "Midas+AdaBins (old)",
    },
    # settings.py load_video_settings: a bool add_soundtrack means File / None
    "add_soundtrack": {True: "File", False: "None"},
    # settings.py: "fill" may be the choice name; the saved (UI, type=index) form is its index
    "fill": {"fill": 0, "original": 1, "latent noise": 2, "latent nothing": 3},
    # (an int "sampler" is an index into A1111's list of its day: deforum_tables.SAMPLER_INDEX_2022)
}

# deprecation_utils.py: a plain number in these keys becomes the schedule f"0:({value})".
NUMBER_TO_SCHEDULE: tuple[str, ...] = tuple(
    f"cn_{i}_{k}" for i in range(1, 6) for k in ("weight", "guidance_start", "guidance_end")
)

# deprecation_utils.py: when the key is absent from a file, Deforum sets it to this (backward compatibility).
IF_MISSING: dict[str, object] = {"legacy_colormatch": True}

# Keys that only appear in older settings files (late-2022 / early-2023 layouts; args.py and
# deforum_controlnet.py of that time) with the value that Deforum wrote for them then. Deforum ignores them now.
OLD_DEFAULTS: dict[str, object] = {
    # late-2022 DeforumArgs (webui / sampling / batch / init)
    "enable_hr": False,
    "firstphase_width": 0,
    "firstphase_height": 0,
    "seed_enable_extras": False,
    "subseed": -1,
    "subseed_strength": 0,
    "scale": 7,  # the CFG scale before cfg_scale_schedule
    "ddim_eta": 0.0,
    "n_batch": 1,
    "make_grid": False,
    "grid_rows": 1,  # args.py said 2, but the UI widget was initialised from n_batch, so files hold 1
    "save_settings": True,
    "save_samples": True,
    "display_samples": False,  # args.py True; the (disabled) UI checkbox saved False
    "save_sample_per_step": False,
    "show_sample_per_step": False,
    "override_these_with_webui": False,
    "filename_format": "{timestring}_{index}_{prompt}.png",
    "from_img2img_instead_of_link": False,
    "precision": "autocast",
    "C": 4,
    "f": 8,
    "prompt": "",
    "timestring": "",
    "init_latent": None,
    "init_sample": None,
    "init_c": None,
    # late-2022 DeforumAnimArgs: scalar camera before fov/near/far schedules; removed "Interpolation" options
    "near_plane": 200,
    "far_plane": 10000,
    "fov": 40,
    "interpolate_key_frames": False,
    "interpolate_x_frames": 4,
    "histogram_matching": True,  # Dec 2022 default; deprecation_utils.py marks it removed (value discarded)
    # early-2023 output args (then saved in a separate video settings file)
    "ffmpeg_crf": "17",
    "ffmpeg_preset": "slow",
    # early-2023 single-unit ControlNet block (before cn_1..cn_5)
    "controlnet_enabled": False,
    "controlnet_scribble_mode": False,
    "controlnet_rgbbgr_mode": False,
    "controlnet_lowvram": False,
    "controlnet_module": "none",
    "controlnet_model": "None",
    "controlnet_weight": 1.0,
    "controlnet_guidance_strength": 1.0,
    "controlnet_processor_res": 64,
    "controlnet_threshold_a": 64,
    "controlnet_threshold_b": 64,
    "controlnet_resize_mode": "Scale to Fit (Inner Fit)",
}
