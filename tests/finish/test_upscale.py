"""Upscaling: Lanczos and an ESRGAN-family model (spandrel, random weights of the real architectures), in tiles."""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from anim.errors import ModelError
from anim.finish import finish
from anim.finish.upscale import load_spandrel, run_tiled, tile_spans
from anim.media.png import read_png_u8
from anim.media.video import probe_video
from tests.finish.util import job, moving_frames


def esrgan_file(path, scale: int = 2):
    """A small ESRGAN (RRDBNet: 8 filters, 1 block) with seeded random weights, as a .safetensors."""
    from spandrel.architectures.ESRGAN import ESRGAN

    torch.manual_seed(0)
    state = ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=scale).state_dict()
    save_file({key: value.contiguous() for key, value in state.items()}, str(path))
    return path


def compact_file(path, scale: int = 2):
    """A small Real-ESRGAN Compact (SRVGGNetCompact: 8 features, 2 convs) with seeded random weights."""
    from spandrel.architectures.Compact import Compact

    torch.manual_seed(1)
    state = Compact(num_feat=8, num_conv=2, upscale=scale).state_dict()
    save_file({key: value.contiguous() for key, value in state.items()}, str(path))
    return path


def test_tile_spans_cover_the_side_once():
    assert tile_spans(64, 0) == [(0, 64)] and tile_spans(64, 64) == [(0, 64)]
    assert tile_spans(70, 32) == [(0, 32), (32, 64), (64, 70)]


def test_lanczos_x2_doubles_both_sides_and_video_is_made_from_them(tmp_path):
    frames = moving_frames(tmp_path / "frames", count=3)
    video = finish(job(tmp_path, frames, upscale={"factor": 2}))
    upscaled = sorted((tmp_path / "frames_upscaled").glob("*.png"))
    assert len(upscaled) == 3 and read_png_u8(upscaled[0]).shape == (128, 128, 3)
    info = probe_video(video)
    assert (info.width, info.height, info.n_frames) == (128, 128, 3)


@pytest.mark.parametrize("maker", [esrgan_file, compact_file])
def test_model_x2_doubles_both_sides(tmp_path, maker):
    weights = maker(tmp_path / "upscaler.safetensors")
    frames = moving_frames(tmp_path / "frames", count=2)
    video = finish(job(tmp_path, frames, upscale={"factor": 2, "model": str(weights), "tile": 32}, formats=["mp4"]))
    out = read_png_u8(tmp_path / "frames_upscaled" / "000001.png")
    assert out.shape == (128, 128, 3)
    assert (probe_video(video).width, probe_video(video).height) == (128, 128)


def test_4x_model_for_factor_2_is_resized_down_and_2x_model_for_factor_4_refused(tmp_path):
    frames = moving_frames(tmp_path / "frames", count=1)
    x4 = compact_file(tmp_path / "x4.safetensors", scale=4)
    finish(job(tmp_path / "a", frames, upscale={"factor": 2, "model": str(x4)}, formats=["mp4"]))
    assert read_png_u8(tmp_path / "a" / "frames_upscaled" / "000000.png").shape == (128, 128, 3)
    x2 = compact_file(tmp_path / "x2.safetensors", scale=2)
    with pytest.raises(ModelError, match=r"output.upscale.model: .*x2.safetensors upscales 2x, less than"):
        finish(job(tmp_path / "b", frames, upscale={"factor": 4, "model": str(x2)}))


def test_tiles_with_context_give_the_whole_frame_result(tmp_path):
    """Compact's receptive field (4 3x3 convs) is inside the 16 px of context: tiles stitch without seams."""
    model = load_spandrel(compact_file(tmp_path / "c.safetensors"), allow_pickle=False, device="cpu", factor=2)
    image = torch.rand(1, 3, 64, 80, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        whole, tiled = model(image), run_tiled(model, image, 2, 24)
    assert tiled.shape == (1, 3, 128, 160)
    assert torch.allclose(whole, tiled, atol=1e-5)


def test_pickled_upscaler_needs_allow_pickle_and_unknown_file_is_refused(tmp_path):
    frames = moving_frames(tmp_path / "frames", count=1)
    torch.save({"params_ema": dict(torch.nn.Conv2d(3, 3, 3).state_dict())}, str(tmp_path / "net.pth"))
    with pytest.raises(ModelError, match=r"output.upscale.model: .*net.pth is a Python pickle"):
        finish(job(tmp_path / "a", frames, upscale={"model": str(tmp_path / "net.pth")}))
    with pytest.raises(ModelError, match=r"spandrel does not recognise this model"):
        finish(job(tmp_path / "b", frames, upscale={"model": str(tmp_path / "net.pth")}, allow_pickle=True))
