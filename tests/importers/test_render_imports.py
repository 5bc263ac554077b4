"""4-frame tiny renders of real Deforum files (2D and 3D, as a batch of a folder) and the Parseq export, end
to end with video: the importer's output runs through the whole engine.

The 2D file is ai-samples' (its three ControlNet units, soundtrack and hybrid video read a video on the author's
Windows PC, so they are overridden away in the batch, and the hybrid video is given a made-up video in its own
test). Files whose prompts carry A1111 weights are not rendered here: the tiny model's random
text encoder has embeddings of mean ~0, which A1111's emphasis mean-restore (kept exactly) divides by."""
from __future__ import annotations

import shutil
from pathlib import Path

import imageio_ffmpeg

from tests.batch.util import batch_cli, render_cli, rows

DATA = Path(__file__).parent / "data"
TINY = ["model=tiny", "width=128", "height=128", "max_frames=4", "steps=2", "motion.depth_model=tiny", "seed=3"]


def video_frames(run: Path) -> int:
    return imageio_ffmpeg.count_frames_and_secs(str(run / "video.mp4"))[0]


def test_a_folder_of_deforum_settings_is_a_batch(tmp_path):
    folder = tmp_path / "settings"
    folder.mkdir()
    for name in ("ai-samples__deforum_settings.json", "sd-webui-deforum__default_settings.json"):
        shutil.copy(DATA / name, folder / name.replace(".json", "_settings.txt"))
    (folder / "notes.json").write_text('{"not": "a preset"}')  # other files in the folder are left alone
    result = batch_cli(folder, "--out", tmp_path / "out", *TINY, "controlnet=[]", "output.audio=null",
                       "init_video=null", "hybrid.motion=none", "hybrid.composite=none")
    assert result.returncode == 0, result.stderr
    jobs = rows(tmp_path / "out")
    assert set(jobs) == {"ai-samples__deforum_settings_settings", "sd-webui-deforum__default_settings_settings"}
    for name in jobs:
        run = tmp_path / "out" / name
        assert jobs[name]["status"] == "done", jobs[name]
        assert len(list((run / "frames").glob("*.png"))) == 4 and video_frames(run) == 4
    resolved = (tmp_path / "out" / "sd-webui-deforum__default_settings_settings" / "preset.resolved.yaml").read_text()
    assert "mode: 3d" in resolved and "projection: deforum" in resolved


def test_the_hybrid_video_file_renders_with_a_video(tmp_path):
    """ai-samples' file: 2D, cadence 2, hybrid optical-flow motion with a Normal composite, on a made-up video."""
    from tests.engine.test_hybrid_render import homography_video

    video = homography_video(tmp_path)
    result = render_cli(DATA / "ai-samples__deforum_settings.json", *TINY, "controlnet=[]", "output.audio=null",
                        f"init_video={video}", "--out", tmp_path / "run")
    assert result.returncode == 0, result.stderr
    resolved = (tmp_path / "run" / "preset.resolved.yaml").read_text()
    assert "motion: optical_flow" in resolved and "composite: normal" in resolved and "cadence: 2" in resolved
    assert video_frames(tmp_path / "run") == 4


def test_the_parseq_export_renders_directly(tmp_path):
    result = render_cli(DATA / "parseq__sd-webui-deforum_testdata_parseq.json", *TINY, "--out", tmp_path / "run")
    assert result.returncode == 0, result.stderr
    assert video_frames(tmp_path / "run") == 4
    assert "subseed" not in result.stderr  # carried now: Parseq's seed travel as A1111 variation seeds
    import csv
    import json

    rows = list(csv.DictReader(open(tmp_path / "run" / "schedule.csv", newline="")))
    export = json.loads((DATA / "parseq__sd-webui-deforum_testdata_parseq.json").read_text())["rendered_frames"]
    for row, frame in zip(rows, sorted(export, key=lambda f: f["frame"])):
        assert (int(row["seed"]), int(row["subseed"])) == (int(frame["seed"]), int(frame["subseed"]))
        assert abs(float(row["subseed_strength"]) - frame["subseed_strength"]) < 1e-9
