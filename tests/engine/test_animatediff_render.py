"""engine: animatediff through render.py: windows cover every frame once, memory is bounded by the window, prompt
keyframes and ControlNet units work, a resumed render (split, or killed with SIGKILL) makes exactly the frames of
an uninterrupted one, batches render it, and what it cannot do is refused in one message."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import yaml

from anim.engine.group import lockstep_key
from anim.plan import window_layout
from anim.preset import Preset
from tests.batch.util import batch_cli, killed_then_resumed, render_cli
from tests.engine.test_fusion_render import panning_video, pixels

AD = {"engine": "animatediff", "motion_adapter": "tiny", "animatediff": {"context": 4, "overlap": 2}}


def preset_file(tmp_path, frames: int = 9, **changes):
    video, _ = panning_video(tmp_path / "pan.mp4", frames=frames)
    base = {"model": "tiny", "width": 64, "height": 64, "seed": 5, "steps": 4, "init_video": str(video),
            "prompts": {0: "a mossy stone wall", 5: "a brick wall"}, "denoise": 0.6, "noise": 0.0,
            "color_coherence": "none", "output": {"video": False}, **AD}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({**base, **changes}, sort_keys=False))
    return path


@pytest.mark.parametrize("frames,context,overlap", [(9, 4, 2), (16, 16, 4), (5, 16, 4), (40, 16, 4), (7, 3, 0)])
def test_windows_cover_every_frame_once_with_the_overlap_fixed(frames, context, overlap):
    layout = window_layout(frames, context, overlap)
    assert [f for _, new, stop in layout for f in range(new, stop)] == list(range(frames))
    for i, (start, new, stop) in enumerate(layout):
        assert stop - start <= context and start <= new < stop
        assert new - start == (0 if i == 0 else max(overlap, new - start))  # the last one is moved back
        assert stop - start == min(context, frames)
    print(frames, context, overlap, layout)


def test_split_render_equals_the_whole_and_prompts_follow_keyframes(tmp_path):
    from anim.cli import main

    preset = str(preset_file(tmp_path))
    assert main([preset, "--out", str(tmp_path / "whole"), "--quiet"]) == 0
    assert main([preset, "--out", str(tmp_path / "split"), "--frames", "0:3", "--quiet"]) == 0
    assert len(pixels(tmp_path / "split")) == 4  # the window that holds frame 2 ends at frame 3
    assert main([preset, "--out", str(tmp_path / "split"), "--quiet"]) == 0
    whole, split = pixels(tmp_path / "whole"), pixels(tmp_path / "split")
    assert len(whole) == 9 and all(np.array_equal(a, b) for a, b in zip(whole, split))
    rows = list(csv.DictReader(open(tmp_path / "whole" / "schedule.csv", newline="")))
    assert rows[4]["prompt"] == "a mossy stone wall" and rows[5]["prompt"] == "a brick wall"
    log = (tmp_path / "whole" / "log.txt").read_text()
    assert log.count("frame 8/8") == 1


def test_controlnet_units_render_in_windows(tmp_path):
    from anim.cli import main

    video = tmp_path / "pan.mp4"
    preset = preset_file(tmp_path, frames=6, controlnet=[{"model": "tiny", "input": str(video),
                                                        "annotator": "canny", "weight": "0:(1), 3:(0.5)"}])
    assert main([str(preset), "--out", str(tmp_path / "cn"), "--quiet"]) == 0
    assert main([str(preset), "controlnet=[]", "--out", str(tmp_path / "plain"), "--quiet"]) == 0
    cn, plain = pixels(tmp_path / "cn"), pixels(tmp_path / "plain")
    assert len(cn) == 6 and not all(np.array_equal(a, b) for a, b in zip(cn, plain))


@pytest.mark.slow
def test_sigkill_then_resume_is_identical_with_animatediff(tmp_path):
    preset = preset_file(tmp_path, frames=12)
    assert render_cli(preset, "--out", tmp_path / "whole").returncode == 0
    out = tmp_path / "killed"
    killed_then_resumed(preset, out, kill_at=5, total=12)
    assert all(np.array_equal(a, b) for a, b in zip(pixels(tmp_path / "whole"), pixels(out)))


def test_a_batch_renders_animatediff_jobs_alone(tmp_path):
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    preset = preset_file(jobs, frames=5)
    preset.rename(jobs / "ad.yaml")
    result = batch_cli(jobs, "--out", tmp_path / "out", "--workers", "1", "--lockstep", "2")
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(pixels(tmp_path / "out" / "ad")) == 5
    assert lockstep_key(Preset.model_validate(yaml.safe_load((jobs / "ad.yaml").read_text()))) is None


def test_what_animatediff_cannot_do_is_refused_in_one_message(tmp_path):
    result = render_cli(preset_file(tmp_path, frames=3, cadence=2, flow_blend=0.5, motion_adapter=None,
                                    init_video=None), "--out", tmp_path / "bad")
    assert result.returncode == 2
    text = result.stderr
    for part in ("engine animatediff", "needs motion_adapter", "needs init_video", "cadence 2", "flow_blend"):
        assert part in text, text
    from anim.models.tiny import tiny_sdxl_dir

    sdxl = render_cli(preset_file(tmp_path, frames=3, model=str(tiny_sdxl_dir())), "--out", tmp_path / "xl")
    assert sdxl.returncode == 2 and "is SDXL" in sdxl.stderr, sdxl.stderr
    assert not list((tmp_path / "xl").glob("frames/*.png"))
