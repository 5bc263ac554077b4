"""StreamEncoder: frames fed in any order while rendering give the same file as encoding the PNGs afterwards."""
from __future__ import annotations

import numpy as np
import pytest
import yaml

from anim.errors import InputError
from anim.media.png import read_png_u8
from anim.media.stream import StreamEncoder
from anim.media.video import encode_video, make_test_audio
from tests.media.test_video import leftovers, write_frames


def _encoder(tmp_path, frames, delivered, **kwargs):
    return StreamEncoder(tmp_path / "stream.mp4", width=64, height=64, fps=8, crf=20, n_frames=len(frames),
                         delivered=delivered, read_frame=lambda i: read_png_u8(frames[i]), **kwargs)


@pytest.mark.parametrize("with_audio", [False, True])
def test_out_of_order_frames_give_the_same_bytes_as_encoding_the_pngs(tmp_path, with_audio):
    frames = write_frames(tmp_path / "frames", 7)
    audio = make_test_audio(tmp_path / "tone.wav", seconds=2.0) if with_audio else None
    expected = encode_video(tmp_path / "frames", tmp_path / "png.mp4", fps=8, crf=20, audio=audio,
                            audio_start_s=0.25).read_bytes()
    encoder = _encoder(tmp_path, frames, {1, 2, 4, 5, 6}, audio=audio, audio_start_s=0.25)
    for index in (4, 1, 6, 2, 5):  # cadence order; 0 and 3 are read back from disk
        encoder.add(index, read_png_u8(frames[index]))
    assert not (tmp_path / "stream.mp4").exists()  # nothing at the target before the last frame
    assert encoder.finish().read_bytes() == expected
    assert leftovers(tmp_path) == []


def test_abort_leaves_nothing(tmp_path):
    frames = write_frames(tmp_path / "frames", 4)
    encoder = _encoder(tmp_path, frames, {0, 1, 2, 3})
    encoder.add(0, read_png_u8(frames[0]))
    encoder.abort()
    assert not (tmp_path / "stream.mp4").exists() and leftovers(tmp_path) == []


def test_a_wrong_frame_fails_with_its_index(tmp_path):
    frames = write_frames(tmp_path / "frames", 3)
    encoder = _encoder(tmp_path, frames, {0, 1, 2})
    encoder.add(0, read_png_u8(frames[0]))
    encoder.add(1, np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(InputError, match="frame 1"):  # from the next add if the writer got there first, else finish
        encoder.add(2, read_png_u8(frames[2]))
        encoder.finish()
    assert not (tmp_path / "stream.mp4").exists() and leftovers(tmp_path) == []


def test_render_streams_its_video_and_a_resume_reads_earlier_frames_back(tmp_path):
    """Cadence (in-betweens after their keys) and a resume with frames on disk: video == encode of the PNGs."""
    from anim.engine.loop import render_run
    from anim.runfolder import open_run

    preset = tmp_path / "p.yaml"
    preset.write_text(yaml.safe_dump({
        "model": "tiny", "width": 64, "height": 64, "fps": 4, "max_frames": 7, "seed": 1, "steps": 2,
        "cadence": 3, "prompts": {0: "a cabin"}, "motion": {"mode": "2d", "zoom": "0:(1.03)"}}))
    out = tmp_path / "run"
    render_run(open_run(str(preset), [], out=out), quiet=True)
    for f in (4, 5, 6):
        (out / "frames" / f"{f:06d}.png").unlink()
    (out / "video.mp4").unlink()
    render_run(open_run(str(preset), [], out=out), quiet=True)
    frames = sorted((out / "frames").glob("*.png"))
    assert len(frames) == 7
    expected = encode_video(out / "frames", tmp_path / "check.mp4", fps=4, crf=18).read_bytes()
    assert (out / "video.mp4").read_bytes() == expected
    assert leftovers(out) == [] or all(not name.startswith(".video") for name in leftovers(out))
