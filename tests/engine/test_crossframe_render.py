"""Cross-frame attention through render.py: weight 0 renders today's frames, a resumed render (split, or killed
with SIGKILL) gives the frames of an uninterrupted one, and such runs render alone in a batch.

On a static-camera input, frames with cross-frame attention are closer to each other (lower warp error) than
without, but on the tiny model only by ~0.1%: its random VAE encodes every image to latents of std ~0.03, so its
frames are mostly the decoder's response to the UNet's noise, and attention barely moves them. What it does with
real weights is measured by bench/coherence.py on a GPU."""
from __future__ import annotations

import numpy as np
import pytest
import yaml
from PIL import Image

from anim.engine.group import has_cross_frame, lockstep_key
from anim.preset import Preset
from tests.batch.util import killed_then_resumed, render_cli, split_render_equals_whole

STATIC = {"model": "tiny", "width": 64, "height": 64, "fps": 8, "max_frames": 6, "seed": 5, "steps": 3,
          "prompts": {0: "a cabin in a snowy forest"}, "motion": {"mode": "none"}, "denoise": 0.4, "noise": 0.0,
          "color_coherence": "none"}
ON = ["coherence.cross_frame.weight=1"]


def preset_file(tmp_path, **changes):
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({**STATIC, **changes}, sort_keys=False))
    return path


def pixels(run):
    return [np.asarray(Image.open(p).convert("RGB")) for p in sorted((run / "frames").glob("*.png"))]


@pytest.mark.slow  # the default suite checks this on the diffuser (tests/diffusion/test_crossframe.py)
def test_weight_zero_renders_todays_frames(tmp_path):
    preset = preset_file(tmp_path, max_frames=3)
    assert render_cli(preset, "--out", tmp_path / "plain").returncode == 0
    assert render_cli(preset, "coherence.cross_frame.weight=0", "--out", tmp_path / "zero").returncode == 0
    assert all(np.array_equal(a, b) for a, b in zip(pixels(tmp_path / "plain"), pixels(tmp_path / "zero")))


def test_static_camera_frames_are_closer_with_cross_frame_attention(tmp_path):
    from anim.cli import main
    from anim.media.video import write_test_video
    from anim.metrics import warp_error
    from tests.engine.test_fusion_render import panning_video

    _, moving = panning_video(tmp_path / "pan.mp4")
    still = [moving[0]] * 6  # a static camera: the same input frame six times, a new seed each frame
    video = write_test_video(tmp_path / "still.mp4", still, fps=8)
    errors = {}
    for weight in (0.0, 1.0):
        preset = preset_file(tmp_path, init_video=str(video), denoise=0.9, max_frames=None, steps=4,
                             coherence={"cross_frame": {"weight": weight, "anchors": ["first"]}})
        assert main([str(preset), "--out", str(tmp_path / f"w{weight}"), "--quiet"]) == 0
        errors[weight] = warp_error(pixels(tmp_path / f"w{weight}"), still)[0]
    print(f"static camera, warp error between frames: plain {errors[0.0]:.5f}, cross-frame 1.0 {errors[1.0]:.5f} "
          f"({100 * (1 - errors[1.0] / errors[0.0]):.2f}% lower)")
    assert errors[1.0] < errors[0.0]


def test_split_render_with_cadence_equals_the_whole(tmp_path):
    """In this process (the three renders share its torch threads): the second half reads its anchors back."""
    preset = preset_file(tmp_path, max_frames=5, cadence=2, motion={"mode": "2d", "zoom": "0:(1.03)"})
    split_render_equals_whole(preset, tmp_path, *ON, first="0:3", total=5)


@pytest.mark.slow
def test_sigkill_then_resume_is_identical_with_cross_frame_attention(tmp_path):
    preset = preset_file(tmp_path, max_frames=8, motion={"mode": "2d", "zoom": "0:(1.03)"})
    assert render_cli(preset, *ON, "--out", tmp_path / "whole").returncode == 0
    out = tmp_path / "killed"
    killed_then_resumed(preset, out, *ON, kill_at=3, total=8)
    assert all(np.array_equal(a, b) for a, b in zip(pixels(tmp_path / "whole"), pixels(out)))


def test_cross_frame_runs_render_alone_in_a_batch():
    plain = Preset.model_validate({**STATIC})
    on = Preset.model_validate({**STATIC, "coherence": {"cross_frame": {"weight": "0:(0), 4:(1)"}}})
    assert not has_cross_frame(plain) and lockstep_key(plain) is not None
    assert has_cross_frame(on) and lockstep_key(on) is None
