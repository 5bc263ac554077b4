"""Issue Q class 10: the batch reports tell the truth about every job, also the broken and the vanished."""
from __future__ import annotations

import json

import numpy as np

from anim.batch.cli import Outcome, _missing, run_batch
from anim.batch.jobs import Job, discover_jobs, estimate_bytes
from anim.media.png import png_bytes
from anim.preset import Preset
from tests.batch.test_batch_e2e import grey_render
from tests.batch.util import write_preset


def _rows(root):
    return {row["name"]: row for row in json.loads((root / "batch.json").read_text())}


def test_a_missing_preset_is_a_failed_job_not_a_lost_batch(tmp_path):
    folder, root = tmp_path / "presets", tmp_path / "out"
    write_preset(folder, "a")
    jobs = discover_jobs([str(folder), str(tmp_path / "gone.yaml")])
    outcome = run_batch(jobs, root, workers=1, render=grey_render)
    rows = _rows(root)
    assert rows["a"]["status"] == "done"
    assert rows["gone"]["status"] == "failed" and "gone.yaml" in rows["gone"]["error"]
    assert rows["gone"]["attempts"] == 1 and outcome.exit_code() == 1


def test_a_deleted_preset_keeps_its_finished_job_in_the_reports(tmp_path):
    folder, root = tmp_path / "presets", tmp_path / "out"
    write_preset(folder, "a")
    write_preset(folder, "b", seed=2)
    run_batch(discover_jobs([str(folder)]), root, workers=1, render=grey_render)
    (folder / "b.yaml").unlink()
    run_batch(discover_jobs([str(folder)]), root, workers=1, render=grey_render)
    rows = _rows(root)
    assert rows["a"]["status"] == "skipped"
    assert rows["b"]["status"] == "done" and "earlier batch" in rows["b"]["error"]


def test_a_lost_worker_reports_the_frames_on_disk(tmp_path):
    job = Job(name="p", preset=str(tmp_path / "p.yaml"))
    frames = tmp_path / "p" / "frames"
    frames.mkdir(parents=True)
    for i in range(2):
        (frames / f"{i:06d}.png").write_bytes(png_bytes(np.zeros((8, 8, 3), np.uint8), "p", {"frame": i}))
    (frames / "000002.png").write_bytes(b"\x89PNG cut short")
    row = _missing(job, Outcome(rows=[]), tmp_path)
    assert (row["status"], row["frames"], row["attempts"]) == ("failed", 2, 1)


def test_the_disk_guard_reserve_fits_small_jobs():
    small = Preset(prompts={0: "a"}, width=64, height=64, max_frames=3)
    assert estimate_bytes(small, 3) < 4 * 2**20


def test_a_yaml_bomb_fails_its_job_and_the_queue_goes_on(tmp_path):
    from tests.test_hostile import bomb_text

    folder, root = tmp_path / "presets", tmp_path / "out"
    folder.mkdir()
    (folder / "a_bomb.yaml").write_text(bomb_text())
    write_preset(folder, "b")
    run_batch(discover_jobs([str(folder)]), root, workers=1, render=grey_render)
    rows = _rows(root)
    assert rows["a_bomb"]["status"] == "failed" and "expands to more than" in rows["a_bomb"]["error"]
    assert rows["b"]["status"] == "done"
