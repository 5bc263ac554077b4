"""The dashboard's read side (anim.serve.scan) over batch roots and run folders made on the spot (no model)."""
from __future__ import annotations

import json
import os

import numpy as np

from anim.batch import control
from anim.batch.claims import try_claim
from anim.batch.cli import run_batch
from anim.batch.jobs import discover_jobs
from anim.batch.session import Session
from anim.media.png import png_bytes
from anim.serve.scan import frame_rate, scan
from tests.batch.test_batch_e2e import grey_render
from tests.batch.util import write_preset


def write_frames(run_dir, indices, *, total, start_s=1000.0, step_s=0.5):
    """Grey PNG frames with write times start_s + i*step_s, and a state.json naming `total` frames."""
    (run_dir / "frames").mkdir(parents=True, exist_ok=True)
    for n, i in enumerate(indices):
        path = run_dir / "frames" / f"{i:06d}.png"
        path.write_bytes(png_bytes(np.full((8, 8, 3), 100, np.uint8), "p", {"frame": i}))
        os.utime(path, (start_s + n * step_s, start_s + n * step_s))
    (run_dir / "state.json").write_text(json.dumps({"max_frames": total, "last_frame": indices[-1]}))


def by_name(state):
    return {job["name"]: job for job in state["jobs"]}


def test_finished_batch_shows_done_frames_video_and_the_failure(tmp_path):
    folder, root = tmp_path / "presets", tmp_path / "out"
    write_preset(folder, "a", max_frames=5)
    write_preset(folder, "b", init_image=str(tmp_path / "missing.png"))
    (folder / "c.yaml").write_text((folder / "a.yaml").read_text() + "zoom_typo: 1\n")
    run_batch(discover_jobs([str(folder)]), root, workers=1, render=grey_render)
    state = scan(root)
    jobs = by_name(state)
    assert state["batch"] and state["running_batches"] == 0 and list(jobs) == ["a", "b", "c"]
    a = jobs["a"]
    assert (a["status"], a["frames"], a["total"], a["actions"]) == ("done", 5, 5, [])
    assert a["picks"] == ["a/frames/000000.png", "a/frames/000002.png", "a/frames/000004.png"]
    assert a["video"] == "a/video.mp4" and a["latest"] == "a/frames/000004.png" and a["error"] is None
    assert jobs["c"]["status"] == "failed" and "zoom_typo" in jobs["c"]["error"]
    assert jobs["c"]["actions"] == ["requeue"] and jobs["c"]["picks"] == [] and jobs["c"]["video"] is None


def test_failed_job_with_a_log_shows_its_tail(tmp_path):
    root = tmp_path / "out"
    (root / "j").mkdir(parents=True)
    (root / "j" / "log.txt").write_text("".join(f"line {i}\n" for i in range(100)) + "ERROR stopped: boom\n")
    (root / "batch.json").write_text(json.dumps([{"name": "j", "status": "failed", "error": "InputError: boom"}]))
    (root / "j" / "frames").mkdir()
    job = by_name(scan(root))["j"]
    assert job["status"] == "failed" and job["error"] == "InputError: boom"
    assert job["log_tail"].splitlines()[-1] == "ERROR stopped: boom" and len(job["log_tail"].splitlines()) == 30


def test_running_batch_queued_running_done_paused_and_requeued(tmp_path):
    root = tmp_path / "out"
    root.mkdir()
    session = Session.create(root)  # this process plays the batch parent: its pid is alive
    session.write_jobs(["done1", "busy", "waiting", "broken"])
    session.write_result("done1", {"name": "done1", "status": "done", "error": None})
    session.write_result("broken", {"name": "broken", "status": "failed", "error": "InputError: x"})
    write_frames(root / "done1", [0, 1], total=2)
    write_frames(root / "busy", [0, 1, 2, 3], total=12)
    assert try_claim(root / ".claims", "busy", session.id, "w") is not None  # held by a live pid
    jobs = by_name(scan(root))
    assert {n: j["status"] for n, j in jobs.items()} == {"done1": "done", "busy": "running", "waiting": "queued",
                                                         "broken": "failed"}
    busy = jobs["busy"]
    assert (busy["frames"], busy["total"], busy["fps"], busy["eta_s"]) == (4, 12, 2.0, 4.0)
    assert busy["actions"] == ["cancel"] and jobs["waiting"]["actions"] == ["cancel"]
    control.pause(root)
    control.requeue(root, "broken")
    control.cancel(root, "busy")
    state = scan(root)
    jobs = by_name(state)
    assert state["paused"] and state["running_batches"] == 1
    assert jobs["waiting"]["status"] == "paused" and jobs["broken"]["status"] == "queued"
    assert jobs["busy"]["status"] == "running" and jobs["busy"]["cancel_requested"]


def test_frame_rate_from_write_times(tmp_path):
    write_frames(tmp_path, list(range(20)), total=40, step_s=0.25)
    assert frame_rate(tmp_path, list(range(20))) == 4.0  # the last 8 frames: 7 intervals of 0.25 s
    assert frame_rate(tmp_path, [0]) is None


def test_single_run_folder(tmp_path):
    run = tmp_path / "tunnel"
    write_frames(run, [0, 1, 2], total=6)
    state = scan(run)
    (job,) = state["jobs"]
    assert not state["batch"] and job["name"] == "tunnel" and job["actions"] == []
    assert (job["status"], job["frames"], job["total"], job["latest"]) == ("interrupted", 3, 6, "frames/000002.png")
    (run / ".lock").write_text(str(os.getpid()))  # a render.py process holds the folder
    assert scan(run)["jobs"][0]["status"] == "running"
    (run / ".lock").unlink()
    write_frames(run, list(range(6)), total=6)
    assert scan(run)["jobs"][0]["status"] == "done"
