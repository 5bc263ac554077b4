"""Deforum import rules on small hand-made settings: values as real files store them, bad input, notes."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from anim.cli import main
from anim.errors import PresetError
from anim.importers import import_file, sniff
from anim.plan import build_table, load_preset

BASE = {"animation_mode": "2D", "max_frames": 10, "W": 256, "H": 256, "prompts": {"0": "a cat"},
        "strength_schedule": "0: (0.65)", "diffusion_cadence": "1", "seed": 5}


def write(tmp_path, name="s_settings.txt", **changes):
    path = tmp_path / name
    path.write_text(json.dumps({**BASE, **changes}, indent=4), encoding="utf-8")
    return path


def test_recognised_by_content_whatever_the_extension(tmp_path):
    assert sniff(write(tmp_path, "a.txt")) == "deforum"
    assert sniff(write(tmp_path, "b.json")) == "deforum"
    yaml = tmp_path / "p.yaml"
    yaml.write_text("prompts: {0: cat}\n")
    assert sniff(yaml) == "yaml"


def test_a_json_file_that_is_neither_is_one_line_naming_the_file(tmp_path, capsys):
    other = tmp_path / "package.json"
    other.write_text('{"name": "x", "version": "1.0"}')
    assert main([str(other), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(other) in err and "Deforum settings file" in err and "Parseq" in err
    broken = tmp_path / "broken.json"
    broken.write_text('{"animation_mode": "2D", ')
    with pytest.raises(PresetError, match="broken.json: not a JSON object"):
        sniff(broken)


def test_numbers_as_text_quoted_paths_and_none_values(tmp_path):
    video = tmp_path / "in.mp4"
    video.write_bytes(b"")
    path = write(tmp_path, diffusion_cadence="3", max_frames="12", W="512", H="384", seed="42",
                 init_image="None", use_init=True, cn_1_enabled="true", cn_1_model="control_v11p_sd15_canny [d14c016b]",
                 cn_1_module="canny", cn_1_vid_path=f'"{video}"', cn_1_weight=0.5, cn_1_threshold_a=50,
                 cn_1_threshold_b=150, cn_1_resize_mode="Just Resize")
    preset = load_preset(path).preset
    assert (preset.cadence, preset.max_frames, preset.width, preset.height, preset.seed) == (3, 12, 512, 384, 42)
    assert preset.init_image is None
    unit = preset.controlnet[0]
    assert (unit.model, unit.input, unit.annotator, unit.resize) == ("lllyasviel/control_v11p_sd15_canny", str(video),
                                                                     "canny", "stretch")
    assert unit.weight == "0:(0.5)" and (unit.threshold_a, unit.threshold_b, unit.annotator_options) == (50, 150, {})


def test_strength_becomes_denoise_for_numbers_and_expressions(tmp_path):
    path = write(tmp_path, strength_schedule="0: (0.6), 4: (0.2), 6: (0.5+0.1*sin(t))")
    table = build_table(load_preset(path))
    t = np.arange(10)
    at_6 = 1 - (0.5 + 0.1 * np.sin(6.0))  # a numeric keyframe runs linearly to the next key's value (Deforum)
    expected = np.concatenate([1 - np.linspace(0.6, 0.2, 5)[:4], [0.8, (0.8 + at_6) / 2],
                               1 - (0.5 + 0.1 * np.sin(t[6:]))])
    np.testing.assert_allclose(table.column("denoise"), expected, atol=1e-12)


def test_repeated_keyframes_keep_the_last_with_a_note(tmp_path):
    path = write(tmp_path, noise_schedule="0: (0.1), 5: (0.2), 5: (0.4)")
    loaded = load_preset(path)
    table = build_table(loaded)
    assert table.column("noise")[5] == pytest.approx(0.4)
    assert any(line.startswith("noise_schedule") and "given twice" in line for line in loaded.notes)


def test_unknown_and_unsupported_keys_are_listed_never_fatal(tmp_path):
    path = write(tmp_path, my_studio_key=3, use_looper=True, image_strength_schedule="0:(0.5)",
                 use_mask=False, mask_file="mask.png", hybrid_motion="None", hybrid_flow_method="Farneback")
    imported = import_file(path)
    keys = {note.key: note.reason for note in imported.notes}
    assert "not a Deforum setting" in keys["my_studio_key"]
    assert "not supported" in keys["use_looper"] and "not supported" in keys["image_strength_schedule"]
    assert "mask_file" not in keys and "hybrid_flow_method" not in keys  # their switches are off: Deforum ignores them


def test_a_bad_value_names_the_key_and_its_line(tmp_path):
    path = write(tmp_path, noise_schedule="0: (0.1), 5: (0.2 +)")
    with pytest.raises(PresetError) as info:
        load_preset(path)
    message = str(info.value)
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if '"noise_schedule"' in text)
    assert message.startswith(f"{path}:{line}: noise_schedule:") and "0.2 +" in message
    with pytest.raises(PresetError, match="animation_mode: 'Sideways'"):
        load_preset(write(tmp_path, animation_mode="Sideways"))


def test_out_of_range_after_import_names_the_deforum_key(tmp_path):
    path = write(tmp_path, cfg_scale_schedule="0: (500)")
    with pytest.raises(PresetError, match=r"cfg_scale \(from cfg_scale_schedule\): is 500 at frame 0"):
        build_table(load_preset(path))


def test_strength_is_clamped_as_deforum_does(tmp_path):
    table = build_table(load_preset(write(tmp_path, strength_schedule="0: (1.5), 5: (0.5 + t/10)")))
    np.testing.assert_allclose(table.column("denoise"), 1 - np.clip([1.5] * 5 + [0.5 + t / 10 for t in range(5, 10)],
                                                                     0, 1))


def test_global_prompts_of_ui_saved_files_and_backticks(tmp_path):
    path = write(tmp_path, prompts={"0": "a cat --neg dog", "max_f-4": "a `t*2` fox"},
                 animation_prompts_positive="oil", animation_prompts_negative="blurry --neg")
    rows = build_table(load_preset(path)).prompts
    assert (rows[0].prompt, rows[0].negative_prompt) == ("oil a cat", "dog  blurry")
    assert (rows[6].prompt, rows[6].negative_prompt) == ("oil a 12 fox", "blurry")


def test_seed_behaviours_advance_once_per_diffused_frame(tmp_path):
    def seeds(**changes):
        table = build_table(load_preset(write(tmp_path, **changes)))
        return [int(s) for s in table.column("seed")]
    assert seeds(diffusion_cadence=2)[0:10:2] == [5, 6, 7, 8, 9]
    assert seeds(seed_iter_N=2)[:6] == [5, 6, 6, 7, 7, 8]
    assert seeds(seed_behavior="ladder", diffusion_cadence=2)[0:10:2] == [5, 7, 6, 8, 7]
    assert seeds(seed_behavior="alternate")[:4] == [5, 6, 5, 6]
    assert seeds(seed_behavior="fixed", diffusion_cadence=3)[::3] == [5, 5, 5, 5]


def test_3d_reads_padding_mode_and_aspect_ratio(tmp_path):
    preset = load_preset(write(tmp_path, animation_mode="3D", padding_mode="reflection", sampling_mode="nearest",
                               zoom="0: (0)", depth_algorithm="AdaBins", aspect_ratio_schedule="0: (1.5)")).preset
    assert (preset.motion.border, preset.motion.sampling, preset.motion.aspect_ratio) == ("reflect", "nearest",
                                                                                           "0: (1.5)")
    assert preset.motion.depth_model == "flat"  # AdaBins is not available: noted
    old = load_preset(write(tmp_path, animation_mode="3D", W=512, H=256)).preset  # no aspect_ratio_schedule: W/H
    assert old.motion.aspect_ratio == 2.0


def test_video_input_and_interpolation_modes(tmp_path):
    video = tmp_path / "clip.mp4"
    path = write(tmp_path, animation_mode="Video Input", video_init_path=f'"{video}"', extract_nth_frame=2,
                 diffusion_cadence=3)
    imported = import_file(path)
    assert imported.data["init_video"] == str(video) and imported.data["extract_nth_frame"] == 2
    assert imported.data["cadence"] == 1 and "max_frames" not in imported.data  # every extracted frame
    with pytest.raises(PresetError, match="URL"):
        import_file(write(tmp_path, animation_mode="Video Input", video_init_path="https://x/v.mp4"))
    blends = load_preset(write(tmp_path, animation_mode="Interpolation", prompts={"0": "a", "6": "b"})).preset
    assert (blends.motion.mode, blends.denoise, blends.prompt_blend, blends.seed_behavior) == ("none", 1.0, 6, "iter")


def test_video_input_cuts_by_source_frame_numbers_like_deforum(tmp_path):
    """Deforum keeps source frames from..to (inclusive) whose own index is a multiple of nth: 4..13 every 3rd
    of a 20-frame video is frames 6, 9, 12."""
    from anim.media.video import write_test_video
    from anim.media.videosource import VideoSource

    levels = [np.full((64, 64, 3), 10 * k, np.uint8) for k in range(20)]
    video = write_test_video(tmp_path / "count.mp4", levels, fps=10)
    path = write(tmp_path, animation_mode="Video Input", video_init_path=str(video), extract_nth_frame=3,
                 extract_from_frame=4, extract_to_frame=13, W=64, H=64)
    preset = load_preset(path).preset
    source = VideoSource(video, 64, 64, "crop", "init_video", nth=preset.extract_nth_frame,
                         start_s=preset.video_start, end_s=preset.video_end)
    try:
        means = [float(source.frame(i).mean()) for i in range(source.n_frames)]
    finally:
        source.close()
    assert preset.max_frames == 3 and means == pytest.approx([60, 90, 120], abs=3)


def test_sampler_schedules_of_a1111_1_9(tmp_path):
    def sampler(**changes):
        loaded = load_preset(write(tmp_path, **changes))
        keys = [line.split(" = ")[0] for line in loaded.notes]
        return loaded.preset.sampler, [key for key in keys if key in ("sampler", "scheduler")]
    assert sampler(sampler="DPM++ 2M", scheduler="Automatic") == ("dpmpp_2m_karras", [])  # its own default: Karras
    assert sampler(sampler="Euler a", scheduler="Automatic") == ("euler_a", [])
    assert sampler(sampler="DPM++ 2M", scheduler="Karras") == ("dpmpp_2m_karras", [])
    assert sampler(sampler="Euler a", scheduler="Karras") == ("euler_a", ["scheduler"])  # no such sampler: noted
    assert sampler(sampler=7) == ("dpmpp_2m", ["sampler"])  # an old index other than 0: read, and noted


def test_seed_behaviour_unknown_is_random_and_missing_noise_type_is_gaussian(tmp_path):
    preset = load_preset(write(tmp_path, seed_behavior="bogus", diffusion_cadence=2)).preset
    assert preset.seed_behavior == "random"
    assert preset.noise_type == "gaussian"  # files from before Deforum's perlin default have no noise_type
    assert load_preset(write(tmp_path, noise_type="perlin")).preset.noise_type == "perlin"


def test_video_input_frames_get_no_loopback_processing(tmp_path):
    imported = import_file(write(tmp_path, animation_mode="Video Input", video_init_path=str(tmp_path / "v.mp4"),
                                 noise_schedule="0: (0.1)", color_coherence="LAB", translation_x="0:(0), 200:(5)"))
    data = imported.data
    assert (data["noise"], data["contrast"], data["unsharp_amount"], data["color_coherence"]) == (0.0, 1.0, 0.0, "none")


def test_controlnet_names_and_origins(tmp_path):
    video = tmp_path / "in.mp4"
    video.write_bytes(b"")
    loaded = load_preset(write(tmp_path, cn_1_enabled=True, cn_1_model="control_v11p_sd15_canny_fp16 [b18e0966]",
                               cn_1_module="canny", cn_1_vid_path=str(video), cn_2_enabled=True,
                               cn_2_model="diffusers_xl_canny_mid [112a778d]", cn_2_module="invert",
                               cn_2_vid_path=str(video), cn_3_enabled=True, cn_3_model="t2i_style [1]",
                               cn_3_module="none", cn_3_vid_path=str(video), cn_3_weight="0:(20)"))
    units = loaded.preset.controlnet
    assert [u.model for u in units] == ["lllyasviel/control_v11p_sd15_canny", "t2i_style"]
    assert any(line.startswith("cn_2_module") for line in loaded.notes)  # invert: not carried
    assert any(line.startswith("cn_3_model") for line in loaded.notes)  # not a lllyasviel name: noted
    with pytest.raises(PresetError, match=r"controlnet\.1\.weight \(from cn_3_weight\)"):
        build_table(loaded)


def test_a_parseq_manifest_inside_the_settings_drives_them(tmp_path):
    export = json.loads((Path(__file__).parent / "data" / "parseq__sd-webui-deforum_testdata_parseq.json").read_text())
    table = build_table(load_preset(write(tmp_path, parseq_manifest=json.dumps(export), angle="0:(99)")))
    frames = sorted(export["rendered_frames"], key=lambda f: f["frame"])
    np.testing.assert_allclose(table.column("angle"), [f["angle_delta"] for f in frames])
    absolute = build_table(load_preset(write(tmp_path, parseq_manifest=json.dumps(export), parseq_use_deltas=False)))
    np.testing.assert_allclose(absolute.column("angle"), [f["angle"] for f in frames])


def test_odd_parseq_values_are_errors_or_left_to_the_schema(tmp_path):
    export = tmp_path / "e.json"
    export.write_text(json.dumps({"options": {}, "rendered_frames": [
        {"frame": 0, "angle_delta": 0, "deforum_prompt": "a"}, {"frame": "1.0", "angle_delta": 1}]}))
    assert load_preset(export).preset.max_frames == 2
    preset = tmp_path / "p.yaml"
    for section in ("motion: null", "motion: x", "motion: [1]", "controlnet: [x]"):
        preset.write_text(f"parseq: {export}\nprompts: {{0: a}}\n{section}\n")
        with pytest.raises(PresetError, match="p.yaml"):
            load_preset(preset)


def test_an_anim_preset_written_as_json_still_loads(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"model": "tiny", "prompts": {"0": "a cat"}, "max_frames": 4}')
    assert sniff(path) == "yaml" and load_preset(path).preset.max_frames == 4
