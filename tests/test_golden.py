"""Golden pixels: four representative renders must keep their exact frames through refactors (issue H).

The hashes in golden_hashes.json (smoke.yaml, 3D + cadence, video + ControlNet, a lockstep batch) were recorded before the code moved into subpackages; a refactor that
changes any decoded pixel of any frame fails here. Each render runs as `render.py` with one torch thread
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
GOLDEN = Path(__file__).with_name("golden_hashes.json")
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


def golden_renders(tmp: Path, smoke: bool = True) -> dict[str, str]:
    """Render the cases into `tmp`; {case: pixels hash}. The smoke case is also checked by
    tests/engine/test_render.py::test_smoke_render_end_to_end (which renders it anyway)."""
    out: dict[str, str] = {}

    def render(name: str, *args) -> None:
        result = render_cli(*args, "--out", tmp / name)
        assert result.returncode == 0, f"{name}: {result.stderr[-2000:]}"
        out[name] = pixels_hash(tmp / name)

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
    out["lockstep_a"], out["lockstep_b"] = pixels_hash(tmp / "batch" / "a"), pixels_hash(tmp / "batch" / "b")
    return out


def test_golden_frames_unchanged(tmp_path):
    pytest.importorskip("skimage")
    expected = {case: value for case, value in golden_hashes().items() if case != "smoke"}
    assert golden_renders(tmp_path, smoke=False) == expected


if __name__ == "__main__":  # python -m tests.test_golden --write
    import tempfile

    if "--write" not in sys.argv:
        raise SystemExit("usage: python -m tests.test_golden --write  (records golden_hashes.json)")
    with tempfile.TemporaryDirectory() as tmp:
        hashes = golden_renders(Path(tmp))
    GOLDEN.write_text(json.dumps(hashes, indent=1) + "\n")
    print(json.dumps(hashes, indent=1))
