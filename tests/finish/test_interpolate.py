"""Frame interpolation: factor x N frames at factor x the fps lasting as long (ffmpeg minterpolate, RIFE)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from anim.errors import ModelError
from anim.finish import finish
from anim.finish.interpolate import source_of
from anim.media.png import is_complete_png, read_png_u8
from anim.media.video import make_test_audio, probe_video
from tests.finish.util import audio_seconds, job, moving_frames


def test_source_of_maps_slots_to_pairs_and_holds_the_last_frame():
    assert [source_of(j, 2, 3) for j in range(6)] == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 0)]
    assert [source_of(j, 3, 2) for j in range(6)] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 0), (1, 0)]


def test_ffmpeg_factor_2_doubles_frames_and_fps_keeps_duration_and_rendered_frames(tmp_path):
    frames = moving_frames(tmp_path / "frames", count=4)
    video = finish(job(tmp_path, frames, fps=4, interpolate={"factor": 2}))
    out = sorted((tmp_path / "frames_interpolated").glob("*.png"))
    assert len(out) == 8  # 2N: the last frame is held for its second slot, so the duration is N / fps
    for index in (0, 2, 4, 6, 7):  # the rendered frames sit in their slots byte for byte
        assert out[index].read_bytes() == frames[min(index // 2, 3)].read_bytes()
    middle = read_png_u8(out[1]).astype(int)
    assert not np.array_equal(middle, read_png_u8(frames[0])) and not np.array_equal(middle, read_png_u8(frames[1]))
    info = probe_video(video)
    assert (info.n_frames, info.fps) == (8, 8.0)
    assert info.duration_s == pytest.approx(4 / 4, abs=0.01)


def test_slow_motion_keeps_fps_and_stretches_the_sound(tmp_path):
    frames = moving_frames(tmp_path / "frames", count=4)
    audio = make_test_audio(tmp_path / "tone.wav", 1.0)  # as long as the 4 frames at 4 fps
    normal = finish(job(tmp_path / "normal", frames, fps=4, interpolate={"factor": 2}, audio_path=audio))
    slow = finish(job(tmp_path / "slow", frames, fps=4, interpolate={"factor": 2, "slow_motion": True},
                      audio_path=audio))
    assert (probe_video(normal).fps, probe_video(slow).fps) == (8.0, 4.0)
    assert probe_video(slow).duration_s == pytest.approx(2.0, abs=0.05)
    assert audio_seconds(normal, tmp_path) == pytest.approx(1.0, abs=0.1)
    assert audio_seconds(slow, tmp_path) == pytest.approx(2.0, abs=0.1)  # stretched (atempo), not cut


def rife_weights(path, prefix: str = "module."):
    """A RIFE 4.25/4.26 IFNet with seeded random weights, saved as Practical-RIFE's trainer does (prefix)."""
    from anim.finish.rife import rife_net

    torch.manual_seed(0)
    state = {prefix + key: value.contiguous() for key, value in rife_net().state_dict().items()}
    if path.suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, str(path))
    return path


def test_rife_with_random_weights_of_the_real_architecture_runs_end_to_end(tmp_path):
    weights = rife_weights(tmp_path / "flownet.safetensors")
    frames = moving_frames(tmp_path / "frames", count=3)
    video = finish(job(tmp_path, frames, fps=4, interpolate={"factor": 3, "engine": "rife", "model": str(weights)},
                       formats=["mp4"]))
    out = sorted((tmp_path / "frames_interpolated").glob("*.png"))
    assert len(out) == 9 and all(is_complete_png(path) for path in out)
    assert out[3].read_bytes() == frames[1].read_bytes() and out[8].read_bytes() == frames[2].read_bytes()
    assert read_png_u8(out[1]).shape == (64, 64, 3)
    info = probe_video(video)
    assert (info.n_frames, info.fps) == (9, 12.0)


def test_rife_pickle_needs_allow_pickle_and_other_weights_are_refused(tmp_path):
    frames = moving_frames(tmp_path / "frames", count=2)
    pkl = rife_weights(tmp_path / "flownet.pkl")
    spec = {"factor": 2, "engine": "rife", "model": str(pkl)}
    with pytest.raises(ModelError, match=r"output.interpolate.model: .*flownet.pkl is a Python pickle"):
        finish(job(tmp_path / "a", frames, interpolate=spec))
    finish(job(tmp_path / "b", frames, interpolate=spec, allow_pickle=True))  # trusted: read weights-only
    assert len(list((tmp_path / "b" / "frames_interpolated").glob("*.png"))) == 4
    save_file({"conv.weight": torch.zeros(3, 3, 3, 3)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ModelError, match=r"not RIFE 4.25/4.26 \(IFNet\) weights"):
        finish(job(tmp_path / "c", frames, interpolate={**spec, "model": str(tmp_path / "other.safetensors")}))
    with pytest.raises(ModelError, match=r"output.interpolate.model: .*absent.pkl: weights file not found"):
        finish(job(tmp_path / "d", frames, interpolate={**spec, "model": str(tmp_path / "absent.pkl")}))
