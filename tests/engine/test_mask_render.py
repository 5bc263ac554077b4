"""Masks through the frame loop on the tiny model: the acceptance render (`{everywhere} & !{box}` keeps the box
exactly with the overlay on, the rest changes), each frame's expression in schedule.csv, latent fills through the
engine, the preview's mask view, a human mask handed in as a fake, and a split render equal to the whole one."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

import anim.engine.mask_frames as mask_frames
from anim.cli import main
from anim.media.png import read_png_u8
from tests.batch.util import split_render_equals_whole

SIZE = 64
BOX = (slice(16, 48), slice(16, 48))
INNER = (slice(20, 44), slice(20, 44))  # the box less the overlay blur's reach (blur 1 px: kernel radius 4)


def inputs(folder: Path) -> None:
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((SIZE, SIZE, 3)) * 255).astype(np.uint8)).save(folder / "init.png")
    box = np.zeros((SIZE, SIZE), dtype=np.uint8)
    box[BOX] = 255
    Image.fromarray(box).save(folder / "box.png")


def preset(folder: Path, **mask) -> Path:
    inputs(folder)
    data = {"model": "tiny", "width": SIZE, "height": SIZE, "max_frames": 3, "fps": 4, "seed": 1, "steps": 3,
            "prompts": {0: "a cabin"}, "init_image": str(folder / "init.png"), "init_denoise": 0.8, "denoise": 0.8,
            "noise": 0.0, "color_coherence": "none", "motion": {"mode": "none"},
            "mask": {"named": {"box": str(folder / "box.png")}, "schedule": "0: ({everywhere} & !{box})",
                     "blur_px": 1, "overlay_blur_px": 1, **mask}}
    path = folder / "p.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def frames(run: Path) -> list[np.ndarray]:
    return [read_png_u8(p).astype(int) for p in sorted((run / "frames").glob("*.png"))]


def test_the_box_is_kept_exactly_and_the_rest_changes(tmp_path):
    assert main([str(preset(tmp_path)), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    init = np.asarray(Image.open(tmp_path / "init.png")).astype(int)
    for image in frames(tmp_path / "run"):
        assert np.array_equal(image[INNER], init[INNER])  # unchanged through each denoise step
        outside = np.ones((SIZE, SIZE), dtype=bool)
        outside[BOX] = False
        assert np.abs(image - init).max(-1)[outside].mean() > 20  # the masked area changed
    with open(tmp_path / "run" / "schedule.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["mask"] for row in rows] == ["{everywhere} & !{box}"] * 3
    assert [row["noise_mask"] for row in rows] == ["{everywhere} & !{box}"] * 3


def test_without_overlay_the_box_changes_only_by_the_vae(tmp_path):
    assert main([str(preset(tmp_path, overlay=False)), "max_frames=1", "--out", str(tmp_path / "run"),
                 "--quiet"]) == 0
    assert main([str(preset(tmp_path, overlay=False)), "max_frames=1", "mask=null", "--out",
                 str(tmp_path / "plain"), "--quiet"]) == 0
    init = np.asarray(Image.open(tmp_path / "init.png")).astype(int)
    (masked,), (plain,) = frames(tmp_path / "run"), frames(tmp_path / "plain")
    assert not np.array_equal(masked[INNER], init[INNER])  # no overlay: the VAE's decoding, not the init
    assert np.abs(masked - plain)[INNER].mean() > 1  # ... of latents that differ from the unmasked render's


def test_latent_nothing_fill_through_the_engine(tmp_path):
    assert main([str(preset(tmp_path, fill="latent_nothing")), "max_frames=1", "--out", str(tmp_path / "a"),
                 "--quiet"]) == 0
    assert main([str(preset(tmp_path)), "max_frames=1", "--out", str(tmp_path / "b"), "--quiet"]) == 0
    (nothing,), (original,) = frames(tmp_path / "a"), frames(tmp_path / "b")
    assert np.array_equal(nothing[INNER], original[INNER])  # both keep the box
    assert np.abs(nothing - original).max(-1)[:8].mean() > 5  # what the masked area starts from differs


def test_preview_shows_the_kept_area_grey(tmp_path):
    assert main([str(preset(tmp_path)), "--preview", "--out", str(tmp_path / "run"), "--quiet"]) == 0
    init = np.asarray(Image.open(tmp_path / "init.png")).astype(int)
    first = frames(tmp_path / "run")[0]
    assert np.array_equal(first[:8, :8], init[:8, :8])  # where the render would change: the image itself ...
    kept = first[INNER]
    assert np.abs(kept[..., 0] - kept[..., 1]).max() <= 1  # ... and grey where it would keep the init (the box)
    assert np.abs(init[INNER][..., 0] - init[INNER][..., 1]).max() > 50


def test_a_human_mask_handed_in(tmp_path, monkeypatch):
    made = []

    class Fake:
        def __init__(self, model):
            made.append(model)

        def __call__(self, image_u8):
            mask = np.zeros(image_u8.shape[:2], dtype=np.float32)
            mask[:, :SIZE // 2] = 0.9  # "a person" on the left half
            return mask

    monkeypatch.setattr(mask_frames, "make_human_masker", Fake)
    path = preset(tmp_path, schedule="0: ({human_mask})", human_model=1)
    assert main([str(path), "max_frames=1", "--out", str(tmp_path / "run"), "--quiet"]) == 0
    init = np.asarray(Image.open(tmp_path / "init.png")).astype(int)
    (image,) = frames(tmp_path / "run")
    assert made == [1]
    assert np.array_equal(image[:, 40:], init[:, 40:]) and np.abs(image[:, :24] - init[:, :24]).mean() > 20


def test_split_render_equals_whole(tmp_path):
    split_render_equals_whole(preset(tmp_path, noise_schedule="0: ({box})"), tmp_path, "noise=0.05",
                              "motion.mode=2d", "motion.zoom=0:(1.02)", first="0:2", total=3)


def test_noise_mask_keeps_noise_inside(tmp_path, monkeypatch):
    """Step 3's noise with a noise mask reaches the diffusion only inside it."""
    import anim.engine.makers as makers

    seen = []
    original = makers.prepare_init
    monkeypatch.setattr(makers, "prepare_init", lambda image, *a, **k: (seen.append((image, original(image, *a, **k))),
                                                                         seen[-1][1])[1])
    path = preset(tmp_path, noise_schedule="0: ({box})")
    assert main([str(path), "noise=0.3", "max_frames=2", "--out", str(tmp_path / "run"), "--quiet"]) == 0
    before, after = seen[-1]
    inside = torch.zeros(1, 3, SIZE, SIZE, dtype=torch.bool)
    inside[:, :, BOX[0], BOX[1]] = True
    assert torch.equal(before[~inside], after[~inside]) and (before[inside] - after[inside]).abs().mean() > 0.05


def test_an_init_mask_and_a_mask_video_together(tmp_path):
    """mask.file (an image: {init_mask}) beside mask.video ({video_mask}, one frame per frame): the expression
    `{init_mask} & {video_mask}` changes only where both are white (the preview greys the rest)."""
    from anim.media.video import encode_video

    inputs(tmp_path)
    frames_dir = tmp_path / "maskframes"
    frames_dir.mkdir()
    left = np.zeros((SIZE, SIZE, 3), dtype=np.uint8)
    left[:, : SIZE // 2] = 255  # the video's mask: the left half, every frame
    for i in range(3):
        Image.fromarray(left).save(frames_dir / f"{i:06d}.png")
    video = encode_video(frames_dir, tmp_path / "mask.mp4", fps=4, crf=1)
    path = preset(tmp_path, file=str(tmp_path / "box.png"), video=str(video),
                  schedule="0: ({init_mask} & {video_mask})")
    assert main([str(path), "--preview", "--out", str(tmp_path / "run"), "--quiet"]) == 0
    shown = frames(tmp_path / "run")[1]
    init = np.asarray(Image.open(tmp_path / "init.png")).astype(int)
    changing = (slice(20, 44), slice(20, 28))  # inside the box and the left half
    kept = [(slice(20, 44), slice(36, 44)), (slice(0, 12), slice(0, 12))]  # box right half; left half outside box
    assert np.array_equal(shown[changing], init[changing])
    for area in kept:
        assert not np.array_equal(shown[area], init[area])


@pytest.mark.slow
def test_sigkill_then_resume_is_identical_with_masks(tmp_path):
    """A masked render (box kept, noise only in the box, latent_noise fill, camera moving) killed after 2 of 5
    frames resumes to the frames of an uninterrupted one."""
    from tests.batch.util import killed_then_resumed, render_cli

    path = preset(tmp_path, noise_schedule="0: ({box})", fill="latent_noise")
    data = yaml.safe_load(path.read_text())
    data.update(max_frames=5, noise=0.05, motion={"mode": "2d", "zoom": "0:(1.02)"}, output={"video": False})
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    assert render_cli(path, "--out", tmp_path / "whole").returncode == 0
    killed_then_resumed(path, tmp_path / "killed", kill_at=2, total=5)
    assert all(np.array_equal(a, b) for a, b in zip(frames(tmp_path / "whole"), frames(tmp_path / "killed")))
    assert len(frames(tmp_path / "killed")) == 5
