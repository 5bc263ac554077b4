"""ffmpeg round trips on tiny generated frames (a few seconds in all)."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anim.errors import InputError
from anim.media.video import (
    VideoInfo,
    encode_video,
    ffmpeg_exe,
    fps_rational,
    last_meaningful_line,
    make_test_audio,
    probe_video,
    read_frames,
)


def write_frames(folder: Path, count: int, width: int = 64, height: int = 64, start: int = 0) -> list[Path]:
    """Frames with a moving bright square on a gradient, so each one differs."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        img = np.zeros((height, width, 3), dtype=np.uint8)
        img[..., 0] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
        img[..., 2] = 128
        img[8:24, 4 + 4 * i : 20 + 4 * i] = 255
        path = folder / f"{start + i:06d}.png"
        Image.fromarray(img).save(path)
        paths.append(path)
    return paths


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_ffmpeg_exe_exists():
    assert Path(ffmpeg_exe()).is_file()


def test_fps_rational():
    assert fps_rational(12) == "12"
    assert fps_rational(30000 / 1001) == "30000/1001"
    assert fps_rational(12.5) == "25/2"
    with pytest.raises(InputError):
        fps_rational(0)


def test_last_meaningful_line():
    stderr = "[in#0 @ 0x55d] moov atom not found\nError opening input file x.mp4.\nConversion failed!\n"
    assert last_meaningful_line(stderr) == "moov atom not found"
    assert last_meaningful_line("") == "ffmpeg gave no message"


def test_encode_probe_read_round_trip(tmp_path):
    write_frames(tmp_path / "frames", 8)
    out = encode_video(tmp_path / "frames", tmp_path / "out" / "video.mp4", fps=12)
    assert out == tmp_path / "out" / "video.mp4" and out.is_file()
    info = probe_video(out)
    assert isinstance(info, VideoInfo)
    assert (info.width, info.height, info.n_frames, info.has_audio) == (64, 64, 8, False)
    assert info.fps == pytest.approx(12)
    assert info.duration_s == pytest.approx(8 / 12, abs=0.05)
    frames = list(read_frames(out))
    assert len(frames) == 8 and frames[0].shape == (64, 64, 3) and frames[0].dtype == np.uint8
    original = np.asarray(Image.open(tmp_path / "frames" / "000003.png"), dtype=np.float64)
    assert np.abs(frames[3].astype(np.float64) - original).mean() < 6  # crf 18 is close to lossless
    assert leftovers(tmp_path / "out") == []


def test_read_frames_nth_and_time_range(tmp_path):
    write_frames(tmp_path / "frames", 8)
    out = encode_video(tmp_path / "frames", tmp_path / "v.mp4", fps=8)
    assert len(list(read_frames(out, nth=3))) == 3  # frames 0, 3, 6
    assert len(list(read_frames(out, start_s=0.5))) == 4
    assert len(list(read_frames(out, start_s=0.25, end_s=0.75))) == 4
    assert list(read_frames(out, start_s=0.5, end_s=0.5)) == []


def test_sub_range_by_start_number_and_by_list(tmp_path):
    paths = write_frames(tmp_path / "frames", 8)
    by_start = encode_video(tmp_path / "frames", tmp_path / "a.mp4", fps=10, start_number=5)
    assert probe_video(by_start).n_frames == 3
    by_list = encode_video(tmp_path / "frames", tmp_path / "b.mp4", fps=10, frames=paths[2:6])
    assert probe_video(by_list).n_frames == 4
    assert leftovers(tmp_path) == []


def test_custom_pattern(tmp_path):
    folder = tmp_path / "frames"
    for i, path in enumerate(write_frames(folder, 4)):
        path.rename(folder / f"f{i:03d}.png")
    out = encode_video(folder, tmp_path / "v.mp4", fps=24, pattern="f%03d.png")
    assert probe_video(out).n_frames == 4


@pytest.mark.parametrize("suffix", [".wav", ".m4a"])
def test_audio_is_muxed_and_cut_to_the_shorter(tmp_path, suffix):
    write_frames(tmp_path / "frames", 8)
    audio = make_test_audio(tmp_path / f"tone{suffix}", seconds=3.0)
    out = encode_video(tmp_path / "frames", tmp_path / "v.mp4", fps=8, audio=audio)  # 1 s of video
    info = probe_video(out)
    assert info.has_audio and info.n_frames == 8
    assert info.duration_s == pytest.approx(1.0, abs=0.15)


def test_audio_shorter_than_video(tmp_path):
    write_frames(tmp_path / "frames", 8)
    audio = make_test_audio(tmp_path / "tone.wav", seconds=0.5)
    info = probe_video(encode_video(tmp_path / "frames", tmp_path / "v.mp4", fps=4, audio=audio))  # 2 s video
    assert info.has_audio and info.duration_s < 1.2


def test_odd_size_raises_naming_the_size(tmp_path):
    write_frames(tmp_path / "frames", 2, width=63, height=64)
    with pytest.raises(InputError, match="63x64"):
        encode_video(tmp_path / "frames", tmp_path / "v.mp4", fps=12)
    assert not (tmp_path / "v.mp4").exists() and leftovers(tmp_path) == []


def test_mixed_sizes_raise(tmp_path):
    write_frames(tmp_path / "frames", 2)
    write_frames(tmp_path / "frames", 1, width=32, height=32, start=2)
    with pytest.raises(InputError, match="000002.png"):
        encode_video(tmp_path / "frames", tmp_path / "v.mp4", fps=12)


def test_missing_inputs_raise_naming_the_path(tmp_path):
    with pytest.raises(InputError, match="nowhere"):
        encode_video(tmp_path / "nowhere", tmp_path / "v.mp4", fps=12)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="000000.png"):
        encode_video(tmp_path / "empty", tmp_path / "v.mp4", fps=12)
    paths = write_frames(tmp_path / "frames", 2)
    with pytest.raises(InputError, match="ghost.png"):
        encode_video(tmp_path / "frames", tmp_path / "v.mp4", fps=12, frames=[paths[0], tmp_path / "ghost.png"])
    with pytest.raises(InputError, match="missing.wav"):
        encode_video(tmp_path / "frames", tmp_path / "v.mp4", fps=12, audio=tmp_path / "missing.wav")
    with pytest.raises(InputError, match="absent.mp4"):
        probe_video(tmp_path / "absent.mp4")
    with pytest.raises(InputError, match="absent.mp4"):
        next(read_frames(tmp_path / "absent.mp4"))


def test_corrupt_inputs_raise_naming_the_path(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"definitely not a video" * 10)
    with pytest.raises(InputError, match="bad.mp4"):
        probe_video(bad)
    with pytest.raises(InputError, match="bad.mp4"):
        list(read_frames(bad))
    write_frames(tmp_path / "frames", 2)
    (tmp_path / "frames" / "000001.png").write_bytes(b"broken png")
    with pytest.raises(InputError, match="000001.png"):
        encode_video(tmp_path / "frames", tmp_path / "v.mp4", fps=12)


def test_ffmpeg_failure_leaves_no_temp_file_and_keeps_old_output(tmp_path):
    write_frames(tmp_path / "frames", 2)
    bad_audio = tmp_path / "noise.wav"
    bad_audio.write_bytes(b"not audio at all" * 8)
    target = tmp_path / "out" / "v.mp4"
    target.parent.mkdir()
    target.write_bytes(b"previous render")
    with pytest.raises(InputError, match="noise.wav has no sound track"):  # refused before ffmpeg starts
        encode_video(tmp_path / "frames", target, fps=12, audio=bad_audio)
    assert target.read_bytes() == b"previous render"
    assert leftovers(target.parent) == []
