"""Each format probes as what it claims: codec, pixel format, frame count, sound."""
from __future__ import annotations

from pathlib import Path

import pytest

from anim.finish import finish
from anim.finish.formats import atempo_chain, encode_args, gif_size
from anim.media.video import encode_args as render_encode_args
from anim.media.video import make_test_audio, probe_codecs, probe_video
from anim.preset.schema import Output
from tests.finish.util import job, moving_frames


def test_atempo_chain_and_gif_size():
    assert atempo_chain(1.0) == [] and atempo_chain(0.5) == ["atempo=0.5"]
    assert atempo_chain(0.25) == ["atempo=0.5", "atempo=0.5"]
    assert atempo_chain(1 / 3) == ["atempo=0.5", "atempo=0.666667"]
    assert gif_size(1024, 576, 512) == (512, 288) and gif_size(64, 64, 512) == (64, 64)


def test_mp4_h264_arguments_are_the_renders_own():
    """A finished mp4 is encoded exactly as the streamed video.mp4 would be (same x264 settings, same sound)."""
    video_input = ["-framerate", "12", "-start_number", "0", "-i", "in/%06d.png"]
    ours = encode_args("mp4", pattern="in/%06d.png", n_frames=8, fps=12, size=(64, 64), output=Output(crf=20),
                       audio=Path("a.wav"), audio_start_s=1.5, speed=1.0, out_name="out.mp4")
    assert ours == render_encode_args(video_input, 8, 12, 20, Path("a.wav"), 1.5, "out.mp4")


@pytest.mark.parametrize("fmt, codec, file, expected", [
    ("mp4", "h264", "video.mp4", ("h264", "yuv420p", "aac")),
    ("mp4", "h265", "video.mp4", ("hevc", "yuv420p", "aac")),
    ("webm", "h264", "video.webm", ("vp9", "yuv420p", "opus")),
    ("gif", "h264", "video.gif", ("gif", "bgra", None)),
    ("prores", "h264", "video.mov", ("prores", "yuv422p10le", "pcm_s16le")),
])
def test_each_format_probes_as_it_claims(tmp_path, fmt, codec, file, expected):
    frames = moving_frames(tmp_path / "frames", count=6)
    audio = make_test_audio(tmp_path / "tone.wav", 2.0)
    video = finish(job(tmp_path, frames, fps=6, formats=[fmt], codec=codec, audio_path=audio))
    assert video == tmp_path / file
    codecs = probe_codecs(video)
    assert (codecs.video, codecs.pix_fmt, codecs.audio) == expected
    info = probe_video(video)
    assert (info.width, info.height, info.n_frames) == (64, 64, 6)
    if fmt == "mp4":
        assert video.read_bytes().find(b"moov") < video.read_bytes().find(b"mdat")  # faststart: index first


def test_gif_is_capped_to_its_max_side(tmp_path):
    frames = moving_frames(tmp_path / "frames", count=3)
    video = finish(job(tmp_path, frames, formats=["gif", "mp4"], gif_max_side=32))
    assert video == tmp_path / "video.gif"
    info = probe_video(video)
    assert (info.width, info.height, info.n_frames) == (32, 32, 3)
    assert probe_video(tmp_path / "video.mp4").width == 64
