"""Hybrid video (Deforum's hybrid_motion / hybrid_composite) through the frame loop, on a synthetic video whose
frames are moved by a known homography."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from anim.cli import main
from anim.errors import PresetError
from anim.media.png import read_png_u8

ROOT = Path(__file__).resolve().parents[2]
SMOKE = str(ROOT / "presets" / "smoke.yaml")
SIZE, N = 64, 4
SMALL = [f"width={SIZE}", f"height={SIZE}", "steps=2", f"max_frames={N}", "fps=null"]
MARGIN = 10  # interior pixels compared (the borders are extrapolated differently)


def truth_matrix() -> np.ndarray:
    """The video's motion per frame: 2 degrees about the centre with 3% zoom."""
    return np.vstack([cv2.getRotationMatrix2D((SIZE / 2, SIZE / 2), 2.0, 1.03), [0, 0, 1]])


def homography_video(tmp_path: Path) -> Path:
    """N frames of a smooth random texture, frame t = frame t-1 warped by truth_matrix()."""
    from anim.media.video import encode_video

    rng = np.random.default_rng(0)
    frame = cv2.resize((rng.random((24, 24, 3)) * 255).astype(np.uint8), (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)
    folder = tmp_path / "src"
    folder.mkdir()
    for i in range(N):
        Image.fromarray(frame).save(folder / f"{i:06d}.png")
        frame = cv2.warpPerspective(frame, truth_matrix(), (SIZE, SIZE), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REFLECT_101)
    return encode_video(folder, tmp_path / "homography.mp4", fps=4, crf=1)


@pytest.fixture
def spy_hybrid(monkeypatch):
    """Records (camera-warped previous output, hybrid result) of every frame the render moves."""
    import anim.engine.makers

    calls = []
    original = anim.engine.makers.hybrid_before_diffusion

    def spy(warped, *args, **kwargs):
        out = original(warped, *args, **kwargs)
        calls.append((warped.clone(), out.clone()))
        return out

    monkeypatch.setattr(anim.engine.makers, "hybrid_before_diffusion", spy)
    return calls


def as_u8(image) -> np.ndarray:
    return (image[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255).round().astype(np.uint8)


def test_perspective_motion_moves_the_previous_output_like_the_video(tmp_path, spy_hybrid):
    video = homography_video(tmp_path)
    assert main([SMOKE, *SMALL, f"init_video={video}", "hybrid.motion=perspective", "--out", str(tmp_path / "r"),
                 "--quiet"]) == 0
    assert len(spy_hybrid) == N - 1
    for warped, moved in spy_hybrid:
        truth = cv2.warpPerspective(as_u8(warped), truth_matrix(), (SIZE, SIZE), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REFLECT_101).astype(float)
        inner = (slice(MARGIN, -MARGIN), slice(MARGIN, -MARGIN))
        error = np.abs(as_u8(moved).astype(float)[inner] - truth[inner]).mean()
        unmoved = np.abs(as_u8(warped).astype(float)[inner] - truth[inner]).mean()
        assert error < 2.0 and error < unmoved / 3, (error, unmoved)


def test_normal_composite_at_alpha_1_puts_the_input_frame_into_the_init(tmp_path, monkeypatch):
    import anim.engine.makers
    from anim.control.sources import open_source

    inits = {}
    original = anim.engine.makers.DiffusionMaker.diffuse

    def spy(self, frame, row, init, *args, **kwargs):
        inits[frame] = init.clone()
        return original(self, frame, row, init, *args, **kwargs)

    monkeypatch.setattr(anim.engine.makers.DiffusionMaker, "diffuse", spy)
    video = homography_video(tmp_path)
    assert main([SMOKE, *SMALL, f"init_video={video}", "hybrid.composite=normal", "hybrid.comp_alpha=1", "noise=0",
                 "color_coherence=none", "--out", str(tmp_path / "r"), "--quiet"]) == 0
    source = open_source(str(video), width=SIZE, height=SIZE, resize="crop")
    for frame in range(1, N):
        assert np.array_equal(as_u8(inits[frame]), source.frame(frame)), frame
    source.close()


def test_preview_shows_hybrid_motion(tmp_path):
    """--preview, no camera: each frame is the first input frame carried by the estimated video motion."""
    video = homography_video(tmp_path)
    out = tmp_path / "p"
    assert main([SMOKE, *SMALL, f"init_video={video}", "hybrid.motion=perspective", "motion.mode=none", "--preview",
                 "--out", str(out), "--quiet"]) == 0
    first = read_png_u8(out / "frames" / "000000.png")
    truth = first
    for frame in range(1, N):
        truth = cv2.warpPerspective(truth, truth_matrix(), (SIZE, SIZE), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REFLECT_101)
        ours = read_png_u8(out / "frames" / f"{frame:06d}.png").astype(float)
        inner = (slice(MARGIN, -MARGIN), slice(MARGIN, -MARGIN))
        assert np.abs(ours[inner] - truth[inner].astype(float)).mean() < 3.0, frame


def test_hybrid_without_init_video_is_one_clear_error(tmp_path, capsys):
    from anim.preset.load import load_preset

    with pytest.raises(PresetError, match="hybrid.*init_video"):
        load_preset(SMOKE, ["hybrid.motion=optical_flow"])
    assert main([SMOKE, *SMALL, "hybrid.composite=normal", "--out", str(tmp_path / "r"), "--quiet"]) == 2
    assert "init_video" in capsys.readouterr().err


def test_preview_optical_flow_and_after_generation_composite(tmp_path):
    """--preview: optical-flow hybrid motion also follows the video; after_generation at alpha 1 gives the input
    frames themselves (a preview's 'generation' is its init)."""
    from anim.control.sources import open_source

    video = homography_video(tmp_path)
    flow = tmp_path / "flow"
    assert main([SMOKE, *SMALL, f"init_video={video}", "hybrid.motion=optical_flow", "motion.mode=none", "--preview",
                 "--out", str(flow), "--quiet"]) == 0
    inner = (slice(MARGIN, -MARGIN), slice(MARGIN, -MARGIN))
    first = read_png_u8(flow / "frames" / "000000.png")
    truth = cv2.warpPerspective(first, truth_matrix(), (SIZE, SIZE), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REFLECT_101).astype(float)
    moved = read_png_u8(flow / "frames" / "000001.png").astype(float)
    assert np.abs(moved[inner] - truth[inner]).mean() < np.abs(first.astype(float)[inner] - truth[inner]).mean() / 2
    after = tmp_path / "after"
    assert main([SMOKE, *SMALL, f"init_video={video}", "hybrid.composite=after_generation", "hybrid.comp_alpha=1",
                 "--preview", "--out", str(after), "--quiet"]) == 0
    source = open_source(str(video), width=SIZE, height=SIZE, resize="crop")
    for frame in range(N):
        assert np.array_equal(read_png_u8(after / "frames" / f"{frame:06d}.png"), source.frame(frame)), frame
    source.close()


@pytest.mark.parametrize("extra, words", [("cadence=2 cadence_flow=true", "cadence_flow"),
                                          ("video_blend=0.3", "video_blend"), ("flow_blend=0.5", "flow_blend"),
                                          ("hybrid.composite=normal hybrid.comp_mask=depth", "depth_model")])
def test_hybrid_refuses_what_does_not_go_with_it(extra, words):
    from anim.preset.load import load_preset

    with pytest.raises(PresetError, match=words):
        load_preset(SMOKE, ["init_video=in.mp4", "hybrid.motion=affine", *extra.split()])
    assert load_preset(SMOKE, ["init_video=in.mp4", "hybrid.motion=affine"]).preset.hybrid.active


@pytest.mark.slow
def test_sigkill_then_resume_is_identical_with_hybrid_video(tmp_path):
    """Everything a hybrid frame uses comes from the PNGs and the input video, so a killed render resumes to
    the frames of an uninterrupted one."""
    import yaml

    from tests.batch.util import killed_then_resumed, render_cli

    video = homography_video(tmp_path)
    preset = tmp_path / "hybrid.yaml"
    preset.write_text(yaml.safe_dump({
        "model": "tiny", "width": SIZE, "height": SIZE, "steps": 3, "seed": 4, "max_frames": N, "fps": 4,
        "prompts": {0: "a mossy wall"}, "init_video": str(video), "denoise": 0.5, "noise": 0.0,
        "motion": {"mode": "2d", "zoom": "0:(1.01)"}, "output": {"video": False},
        "hybrid": {"motion": "perspective", "composite": "normal", "comp_alpha": "0:(0.3)"}}))
    assert render_cli(preset, "--out", tmp_path / "whole").returncode == 0
    killed_then_resumed(preset, tmp_path / "killed", kill_at=2, total=N)
    for name in (f"{i:06d}.png" for i in range(N)):
        assert np.array_equal(read_png_u8(tmp_path / "whole" / "frames" / name),
                              read_png_u8(tmp_path / "killed" / "frames" / name))
