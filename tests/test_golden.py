"""Golden pixels: four representative renders must keep their frames through refactors (issue H).

tests/golden/ holds, per case (smoke.yaml, 3D + cadence, video + ControlNet, a lockstep batch), the sha256 of the
decoded pixels of every frame (hashes.json) and 64-px thumbnails of the frames. On the machine that recorded
them a render must match the hash exactly. Another CPU runs other float kernels (AVX-512 vs AVX2, MKL's paths
per vendor), and their rounding differences grow through the loopback by up to ~10 levels at a pixel by the
sixth frame; so where the hash differs, every thumbnail must lie within that drift (DRIFT), which a changed
seed, motion, prompt or order of steps exceeds by far. Each render runs as `render.py` with one torch thread
(CPU results depend on the thread count). Record again only for an intended change of output:
`python -m tests.test_golden --write`.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.batch.util import batch_cli, render_cli, write_preset

ROOT = Path(__file__).resolve().parent.parent
GOLDEN_DIR = Path(__file__).with_name("golden")
GOLDEN = GOLDEN_DIR / "hashes.json"
THUMB = 64  # thumbnail side (px)
DRIFT = {"mean": 1.5, "p99": 12.0}  # worst per-frame thumbnail difference (8-bit levels) allowed across CPUs
SMOKE = ROOT / "presets" / "smoke.yaml"
POSE_TINY = ROOT / "presets" / "pose_video_tiny.yaml"


def pixels_hash(run_dir: Path) -> str:
    """sha256 over the decoded RGB pixels of every frame, in frame order, with the frame count."""
    digest = hashlib.sha256()
    frames = sorted((run_dir / "frames").glob("*.png"))
    digest.update(str(len(frames)).encode())
    for path in frames:
        with Image.open(path) as image:
            digest.update(np.ascontiguousarray(np.asarray(image.convert("RGB"))).tobytes())
    return f"{len(frames)}:{digest.hexdigest()}"


def _input_video(folder: Path) -> Path:
    """A 6-frame 96x96 clip of scikit-image's astronaut, panned (deterministic)."""
    from skimage import data

    from anim.media.video import encode_video

    photo, src = data.astronaut(), folder / "src"
    src.mkdir(parents=True)
    for i in range(6):
        window = photo[60:60 + 360, 30 + 12 * i:30 + 12 * i + 360]
        Image.fromarray(window).resize((96, 96), Image.Resampling.LANCZOS).save(src / f"{i:06d}.png")
    return encode_video(src, folder / "input.mp4", fps=6, crf=12)


def golden_hashes() -> dict[str, str]:
    """The recorded hashes: {case: 'frames:sha256'}."""
    return json.loads(GOLDEN.read_text())


def thumbnails(run_dir: Path) -> list[np.ndarray]:
    """Each frame box-averaged to THUMB px on its long side, as float 8-bit levels."""
    out = []
    for path in sorted((run_dir / "frames").glob("*.png")):
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
        step = max(1, max(pixels.shape[:2]) // THUMB)
        h, w = pixels.shape[0] // step, pixels.shape[1] // step
        out.append(pixels[:h * step, :w * step].reshape(h, step, w, step, 3).mean(axis=(1, 3)))
    return out


def thumb_path(case: str, index: int) -> Path:
    return GOLDEN_DIR / case / f"{index:03d}.png"


def drift(case: str, run_dir: Path) -> list[tuple[float, float]]:
    """(mean, 99th percentile) absolute difference per frame between the run's thumbnails and the recorded."""
    got = thumbnails(run_dir)
    recorded = sorted((GOLDEN_DIR / case).glob("*.png"))
    assert len(got) == len(recorded), f"{case}: {len(got)} frames, recorded {len(recorded)}"
    out = []
    for thumb, path in zip(got, recorded):
        with Image.open(path) as image:
            diff = np.abs(np.round(thumb) - np.asarray(image.convert("RGB"), dtype=np.float64))
        out.append((float(diff.mean()), float(np.percentile(diff, 99))))
    return out


def check_golden(case: str, run_dir: Path) -> str:
    """Assert the run's frames are the golden ones: exactly (same hash), else within DRIFT; says which."""
    if pixels_hash(run_dir) == golden_hashes()[case]:
        return f"{case}: exact"
    per_frame = drift(case, run_dir)
    worst = (max(m for m, _ in per_frame), max(p for _, p in per_frame))
    text = f"{case}: not bit-exact (another CPU?); worst frame mean {worst[0]:.3f}, p99 {worst[1]:.1f} levels"
    print(text)
    assert worst[0] <= DRIFT["mean"] and worst[1] <= DRIFT["p99"], f"{text}: beyond float drift {DRIFT}"
    return text


def record(case: str, run_dir: Path) -> None:
    """Write the case's thumbnails (--write)."""
    folder = GOLDEN_DIR / case
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    for index, thumb in enumerate(thumbnails(run_dir)):
        Image.fromarray(np.round(thumb).astype(np.uint8)).save(thumb_path(case, index))


def golden_renders(tmp: Path, smoke: bool = True) -> dict[str, Path]:
    """Render the cases into `tmp`; {case: run folder}. The smoke case is also checked by
    tests/engine/test_render.py::test_smoke_render_end_to_end (which renders it anyway)."""
    out: dict[str, Path] = {}

    def render(name: str, *args) -> None:
        result = render_cli(*args, "--out", tmp / name)
        assert result.returncode == 0, f"{name}: {result.stderr[-2000:]}"
        out[name] = tmp / name

    if smoke:
        render("smoke", SMOKE)
    render("3d_cadence", SMOKE, "width=64", "height=64", "steps=3", "max_frames=6", "cadence=2", "motion.mode=3d",
           "motion.depth_model=tiny", "motion.translation_z=3", "motion.rotation_3d_y=1.5", "noise=0.03",
           "unsharp_amount=0.3", "contrast=1.01")
    video = _input_video(tmp / "video_in")
    render("video_controlnet", POSE_TINY, f"init_video={video}", f"controlnet.0.input={video}",
           "controlnet.0.annotator=canny", 'controlnet.0.weight="0:(1.0), 3:(0.5)"', "max_frames=null", "fps=null",
           "width=64", "height=64", "steps=3", "video_blend=0.2", "flow_blend=0.5", "seed_behavior=iter")
    jobs = tmp / "jobs"
    write_preset(jobs, "a", seed=11, prompts={0: "a cabin, take 1"})
    write_preset(jobs, "b", seed=12, max_frames=4, cadence=2, prompts={0: "a lake at dawn"})
    result = batch_cli(jobs, "--out", tmp / "batch", "--workers", "1", "--lockstep", "2")
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((tmp / "batch" / "a" / "lockstep.json").read_text())["members"] == ["a", "b"]
    out["lockstep_a"], out["lockstep_b"] = tmp / "batch" / "a", tmp / "batch" / "b"
    return out


def test_golden_frames_unchanged(tmp_path):
    pytest.importorskip("skimage")
    runs = golden_renders(tmp_path, smoke=False)
    assert set(runs) == set(golden_hashes()) - {"smoke"}
    for case, run_dir in runs.items():
        print(check_golden(case, run_dir))


def test_a_real_change_is_beyond_the_drift(tmp_path):
    """The tolerance still catches a change of output: the smoke frames of another seed are far outside it."""
    result = render_cli(SMOKE, "seed=43", "max_frames=2", "--out", tmp_path / "other")
    assert result.returncode == 0, result.stderr[-2000:]
    recorded = [np.asarray(Image.open(thumb_path("smoke", i)).convert("RGB"), dtype=np.float64) for i in range(2)]
    means = [float(np.abs(np.round(a) - b).mean()) for a, b in zip(thumbnails(tmp_path / "other"), recorded)]
    print(f"another seed: thumbnail mean difference per frame {means}")
    assert min(means) > 5 * DRIFT["mean"], means


if __name__ == "__main__":  # python -m tests.test_golden --write
    import tempfile

    if "--write" not in sys.argv:
        raise SystemExit("usage: python -m tests.test_golden --write  (records tests/golden/)")
    with tempfile.TemporaryDirectory() as tmp:
        runs = golden_renders(Path(tmp))
        hashes = {case: pixels_hash(run_dir) for case, run_dir in runs.items()}
        for case, run_dir in runs.items():
            record(case, run_dir)
    GOLDEN.write_text(json.dumps(hashes, indent=1) + "\n")
    print(json.dumps(hashes, indent=1))
