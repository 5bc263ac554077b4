"""Hybrid video beyond the plain composite, through the frame loop in --preview (no diffusion): comp masks,
a depth comp mask in 2D, and cadence in-betweens that follow the input video's motion."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from anim.cli import main
from anim.control.sources import open_source
from anim.media.png import read_png_u8
from tests.engine.test_hybrid_render import SIZE, SMALL, SMOKE, homography_video, truth_matrix

INNER = (slice(10, -10), slice(10, -10))


def frames(out, n: int) -> list[np.ndarray]:
    return [read_png_u8(out / "frames" / f"{f:06d}.png") for f in range(n)]


def test_preview_blend_mask_composite_keeps_bright_pixels_of_the_image(tmp_path):
    """comp_mask blend at mask alpha 1 is the input frame's grey: the composite keeps the previous frame where the
    input is bright and takes the input where it is dark (Deforum's Image.composite), blended at comp_alpha 1."""
    video = homography_video(tmp_path)
    out = tmp_path / "p"
    assert main([SMOKE, *SMALL, f"init_video={video}", "motion.mode=none", "hybrid.composite=normal",
                 "hybrid.comp_mask=blend", "hybrid.comp_mask_alpha=1", "hybrid.comp_alpha=1", "--preview",
                 "--out", str(out), "--quiet"]) == 0
    made = frames(out, 2)
    source = open_source(str(video), width=SIZE, height=SIZE, resize="crop")
    input1 = source.frame(1)
    source.close()
    mask = np.asarray(ImageOps.grayscale(Image.fromarray(input1)), float)[..., None] / 255.0
    want = input1 + (made[0].astype(float) - input1) * mask
    assert np.abs(made[1].astype(float) - want).max() <= 1.0


class RampDepth:
    """A depth model whose depth grows from left (near) to right (far), whatever the picture."""

    model = object()

    def predict(self, image, near, far):
        width = image.shape[-1]
        ramp = torch.linspace(near, far, width, dtype=torch.float32, device=image.device)
        return ramp.expand(1, 1, image.shape[-2], width).clone()


def test_preview_video_depth_mask_in_2d_keeps_the_far_side(tmp_path, monkeypatch):
    """2D with a video_depth comp mask: the depth model is loaded (2D has none otherwise); the near (black) side
    takes the input frame, the far (white) side keeps the camera-moved previous frame."""
    import anim.engine.makers

    loaded = []
    monkeypatch.setattr(anim.engine.makers, "load_depth_model", lambda spec, **kw: loaded.append(spec) or RampDepth())
    video = homography_video(tmp_path)
    runs = {}
    for name, extra in (("plain", []), ("depth", ["hybrid.comp_mask=video_depth", "motion.depth_model=tiny"])):
        out = tmp_path / name
        assert main([SMOKE, *SMALL, f"init_video={video}", "motion.mode=2d", "motion.translation_x=12",
                     "motion.zoom=1", "motion.angle=0", "hybrid.composite=normal", "hybrid.comp_alpha=1", *extra,
                     "--preview", "--out", str(out), "--quiet"]) == 0
        runs[name] = frames(out, 2)
    assert loaded == ["tiny"]
    moved = np.roll(runs["plain"][0], 12, axis=1).astype(float)  # frame 0 moved 12 px right
    plain, depth = runs["plain"][1].astype(float), runs["depth"][1].astype(float)  # plain: the input frame
    mask = np.floor(np.linspace(0, 255, SIZE)) / 255.0  # the ramp as an 8-bit mask: 0 near (left), 1 far
    want = plain + (moved - plain) * mask[None, :, None]
    inside = slice(12, SIZE)  # np.roll wraps where the camera replicates the edge
    assert np.abs(depth[:, inside] - want[:, inside]).mean() < 1.5
    assert np.abs(depth[:, -4:] - moved[:, -4:]).mean() < 0.2 * np.abs(plain[:, -4:] - moved[:, -4:]).mean()


@pytest.mark.parametrize("motion", ["perspective", "optical_flow"])
def test_cadence_in_betweens_follow_the_video(tmp_path, motion):
    """cadence 2: frame 1 is made from keys 0 and 2 moved by the input video's motion to frame 1, so it lies where
    the video's one-frame motion takes key 0; a plain crossfade of the keys does not."""
    video = homography_video(tmp_path)
    out = tmp_path / "p"
    assert main([SMOKE, *SMALL, f"init_video={video}", "motion.mode=none", f"hybrid.motion={motion}", "cadence=2",
                 "--preview", "--out", str(out), "--quiet"]) == 0
    made = frames(out, 3)
    truth = cv2.warpPerspective(made[0], truth_matrix(), (SIZE, SIZE), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REFLECT_101).astype(float)  # frame 0 moved as the video moves
    made = [f.astype(float) for f in made]
    error = np.abs(made[1][INNER] - truth[INNER]).mean()
    crossfade = np.abs((made[0][INNER] + made[2][INNER]) / 2 - truth[INNER]).mean()
    assert error < 4.0 and error < crossfade / 2, (error, crossfade)


def test_split_render_equals_whole_with_cadence_comp_mask_and_video_colours(tmp_path):
    """Everything these use comes from the PNGs and the input video, so a render stopped after frame 1 and
    resumed makes the same frames bit for bit."""
    from pathlib import Path

    from tests.batch.util import split_render_equals_whole

    video = homography_video(tmp_path)
    split_render_equals_whole(Path(SMOKE), tmp_path, *SMALL, "max_frames=5", f"init_video={video}",
                              "hybrid.motion=affine", "hybrid.composite=normal", "hybrid.comp_mask=difference",
                              "hybrid.comp_mask_auto_contrast=true", "cadence=2", "color_coherence=video_input",
                              "color_coherence_every_n=2", first="0:3", total=5)
