"""Flow-guided latent fusion through render.py on a panning input video: weight 0 renders today's frames, fusion
makes the output steadier along the input's motion (warp error printed), a resumed render (split with cadence, or
killed with SIGKILL) gives the frames of an uninterrupted one, and it needs a video."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import yaml
from PIL import Image

from anim.engine.group import lockstep_key
from anim.errors import PresetError
from anim.media.video import write_test_video
from anim.metrics import warp_error
from anim.preset import Preset
from tests.batch.util import killed_then_resumed, render_cli, split_render_equals_whole

ON = ["coherence.fusion.weight=1", "coherence.fusion.end=1"]


def panning_video(path, frames: int = 6, side: int = 64):
    """A smooth random texture moving 2 px right per frame; returns the path and the frames."""
    rng = np.random.default_rng(4)
    big = cv2.resize(rng.random((side // 4, side // 2, 3)), (2 * side, side), interpolation=cv2.INTER_CUBIC)
    big = np.round(255 * (big - big.min()) / (big.max() - big.min())).astype(np.uint8)
    source = [np.ascontiguousarray(big[:, 2 * t:2 * t + side]) for t in range(frames)]
    return write_test_video(path, source, fps=8), source


def preset_file(tmp_path, **changes):
    video, _ = panning_video(tmp_path / "pan.mp4")
    base = {"model": "tiny", "width": 64, "height": 64, "seed": 5, "steps": 4, "init_video": str(video),
            "prompts": {0: "a mossy stone wall"}, "motion": {"mode": "none"}, "denoise": 0.6, "noise": 0.0,
            "color_coherence": "none", "output": {"video": False}}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({**base, **changes}, sort_keys=False))
    return path


def pixels(run):
    return [np.asarray(Image.open(p).convert("RGB")) for p in sorted((run / "frames").glob("*.png"))]


def test_weight_zero_is_todays_frames_and_fusion_steadies_the_video(tmp_path):
    from anim.cli import main

    preset = str(preset_file(tmp_path))
    for name, extra in (("plain", []), ("zero", ["coherence.fusion.weight=0"]), ("fused", ON)):
        assert main([preset, *extra, "--out", str(tmp_path / name), "--quiet"]) == 0
    plain, zero, fused = (pixels(tmp_path / n) for n in ("plain", "zero", "fused"))
    assert len(plain) == 6 and all(np.array_equal(a, b) for a, b in zip(plain, zero))
    _, source = panning_video(tmp_path / "again.mp4")
    before, after = warp_error(plain, source)[0], warp_error(fused, source)[0]
    print(f"warp error along the input's flow: plain {before:.4f}, fusion 1.0 {after:.4f}")
    assert after < 0.9 * before


def test_split_render_with_cadence_equals_the_whole(tmp_path):
    split_render_equals_whole(preset_file(tmp_path, cadence=2, max_frames=5), tmp_path, *ON, first="0:3", total=5)


@pytest.mark.slow
def test_sigkill_then_resume_is_identical_with_fusion(tmp_path):
    preset = preset_file(tmp_path)
    assert render_cli(preset, *ON, "--out", tmp_path / "whole").returncode == 0
    out = tmp_path / "killed"
    killed_then_resumed(preset, out, *ON, kill_at=3, total=6)
    assert all(np.array_equal(a, b) for a, b in zip(pixels(tmp_path / "whole"), pixels(out)))


def test_fusion_needs_a_video_and_renders_alone_in_a_batch(tmp_path):
    base = {"model": "tiny", "prompts": {0: "x"}}
    with pytest.raises((PresetError, ValueError), match="coherence.fusion .* needs init_video"):
        Preset.model_validate({**base, "coherence": {"fusion": {"weight": 0.5}}})
    with pytest.raises((PresetError, ValueError), match="start .* is after end"):
        Preset.model_validate({**base, "coherence": {"fusion": {"start": 0.8, "end": 0.2}}})
    on = Preset.model_validate({**base, "init_video": "v.mp4", "coherence": {"fusion": {"weight": "0:(1)"}}})
    assert lockstep_key(on) is None
    assert lockstep_key(Preset.model_validate({**base, "init_video": "v.mp4"})) is not None
