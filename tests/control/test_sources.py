"""Frame sources: videos at any fps, nth / start / end, folders, single images, resize modes, errors."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from anim.control.sources import open_source
from anim.errors import InputError
from anim.media.frames import resize_frame, resize_transform
from anim.media.video import source_audio
from tests.control.conftest import CLIP_FRAMES, index_of, write_levels


@pytest.mark.parametrize("fps", [2, 30])
def test_video_every_frame_at_its_fps(clip, fps):
    source = open_source(clip(fps), width=32, height=32)
    assert source.n_frames == CLIP_FRAMES and source.fps == pytest.approx(fps)
    assert [index_of(source.frame(i)) for i in range(source.n_frames)] == list(range(CLIP_FRAMES))
    assert source.frame(0).shape == (32, 32, 3) and source.frame(0).dtype == np.uint8


@pytest.mark.parametrize("fps", [2, 30])
def test_video_nth_start_end(clip, fps):
    nth = open_source(clip(fps), width=32, height=32, nth=3)
    assert nth.n_frames == 4 and nth.fps == pytest.approx(fps / 3)
    assert [index_of(nth.frame(i)) for i in range(4)] == [0, 3, 6, 9]
    span = open_source(clip(fps), width=32, height=32, start_s=2 / fps, end_s=6 / fps)
    assert [index_of(span.frame(i)) for i in range(span.n_frames)] == [2, 3, 4, 5]
    both = open_source(clip(fps), width=32, height=32, start_s=2 / fps, nth=2)
    assert [index_of(both.frame(i)) for i in range(both.n_frames)] == [2, 4, 6, 8, 10]


def test_video_clamps_and_goes_back(clip):
    source = open_source(clip(2), width=32, height=32)
    assert index_of(source.frame(7)) == 7
    assert index_of(source.frame(3)) == 3  # earlier frame: the decoder restarts
    assert index_of(source.frame(500)) == CLIP_FRAMES - 1
    assert not source.frame(3).flags.writeable
    source.close()


def test_video_audio_flag(clip):
    assert source_audio(clip(2)) is False
    assert source_audio(clip(2, audio=True)) is True


def test_folder_sorted_by_name_and_single_image(tmp_path):
    folder = write_levels(tmp_path / "frames", ["b.png", "a.png", "c.jpg"], [50, 10, 90])
    (folder / "notes.txt").write_text("ignored")
    source = open_source(folder, width=16, height=16)
    assert source.n_frames == 3 and source.fps is None
    assert [int(round(source.frame(i).mean())) for i in range(3)] == [10, 50, pytest.approx(90, abs=2)]
    assert source.frame(9).mean() == source.frame(2).mean()
    still = open_source(folder / "b.png", width=24, height=8)
    assert still.n_frames == 1 and still.frame(0).shape == (8, 24, 3)
    assert np.array_equal(still.frame(0), still.frame(41))


def _halves(width=64, height=48) -> np.ndarray:
    """Left half red, right half blue."""
    image = np.zeros((height, width, 3), np.uint8)
    image[:, : width // 2, 0] = 255
    image[:, width // 2:, 2] = 255
    return image


@pytest.mark.parametrize("mode", ["crop", "fit", "stretch"])
@pytest.mark.parametrize("size", [(40, 24), (64, 64), (24, 56)])
def test_resize_modes_give_exact_sizes(tmp_path, mode, size):
    Image.fromarray(_halves()).save(tmp_path / "halves.png")
    source = open_source(tmp_path / "halves.png", width=size[0], height=size[1], resize=mode)
    assert source.frame(0).shape == (size[1], size[0], 3)


def test_resize_mode_geometry():
    image = _halves()  # 64x48
    fit = resize_frame(image, 64, 64, "fit")  # letterbox: 8 black rows above and below
    assert fit[:8].max() == 0 and fit[-8:].max() == 0 and fit[8:56, 0, 0].min() == 255
    crop = resize_frame(image, 48, 48, "crop")  # cover: centre 48 columns, the split stays central
    assert crop[:, :20, 0].min() > 200 and crop[:, 28:, 2].min() > 200
    stretch = resize_frame(image, 32, 64, "stretch")
    assert stretch.shape == (64, 32, 3) and stretch[:, :12, 0].min() > 200 and stretch[:, 20:, 2].min() > 200
    assert resize_transform(64, 48, 64, 64, "fit") == (1.0, 1.0, 0.0, 8.0)
    assert resize_transform(64, 48, 48, 48, "crop") == (1.0, 1.0, -8.0, 0.0)  # 8 columns cut each side
    assert resize_transform(64, 48, 32, 32, "crop") == pytest.approx((43 / 64, 32 / 48, -5.0, 0.0))


def test_missing_input_names_the_path(tmp_path):
    with pytest.raises(InputError, match="nowhere.mp4"):
        open_source(tmp_path / "nowhere.mp4", width=32, height=32, what="controlnet.0.input")


def test_corrupt_video_names_the_path(tmp_path):
    bad = tmp_path / "noise.mp4"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(InputError, match="noise.mp4.*not a readable video"):
        open_source(bad, width=32, height=32)


def test_zero_frame_video_and_empty_range(tmp_path, clip):
    import subprocess

    from anim.media.video import ffmpeg_exe

    empty = tmp_path / "empty.mp4"
    subprocess.run([ffmpeg_exe(), "-v", "quiet", "-y", "-f", "lavfi", "-i", "color=c=black:s=64x64:d=1",
                    "-frames:v", "0", "-c:v", "libx264", str(empty)], check=False)
    with pytest.raises(InputError, match="empty.mp4"):
        open_source(empty, width=32, height=32)
    with pytest.raises(InputError, match="no frames after 60 s"):
        open_source(clip(2), width=32, height=32, start_s=60)
    with pytest.raises(InputError, match="not after start"):
        open_source(clip(2), width=32, height=32, start_s=2, end_s=1)


def test_mixed_size_folder_names_folder_and_sizes(tmp_path):
    folder = write_levels(tmp_path / "mixed", ["000.png"], [10])
    write_levels(folder, ["001.png"], [20], size=(32, 32))
    with pytest.raises(InputError, match=r"mixed.*64x48.*32x32"):
        open_source(folder, width=32, height=32)


def test_empty_folder(tmp_path):
    (tmp_path / "none").mkdir()
    with pytest.raises(InputError, match="no images"):
        open_source(tmp_path / "none", width=32, height=32)
