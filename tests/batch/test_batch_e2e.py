"""End to end through `render.py batch` on the tiny model: skip, resume, failures, workers, kills, disk guard."""
from __future__ import annotations

import json
import os
import signal
import time

import pytest

from anim.batch.cli import run_batch
from anim.batch.jobs import discover_jobs
from tests.batch.util import (
    batch_cli,
    batch_popen,
    frame_bytes,
    mtimes,
    render_cli,
    render_starts,
    rows,
    six_presets,
    write_preset,
)

LONG = {"max_frames": 24, "width": 128, "height": 128, "seed": 5}  # ~0.07 s a frame: 1.7 s to catch it mid-job


@pytest.fixture(scope="module")
def long_reference(tmp_path_factory):
    """The `long` preset and the frames of one uninterrupted render.py run of it."""
    folder = tmp_path_factory.mktemp("long")
    preset = write_preset(folder, "long", **LONG)
    out = folder / "reference"
    result = render_cli(preset, "--out", out)
    assert result.returncode == 0, result.stderr
    return preset, frame_bytes(out)


def wait_for(predicate, process, timeout_s=120):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def n_frames(run_dir):
    return len(list((run_dir / "frames").glob("*.png")))


def test_six_jobs_one_broken_then_nothing_new(tmp_path):
    folder, root = six_presets(tmp_path / "presets"), tmp_path / "out"
    first = batch_cli(folder, "--out", root)  # default workers: one on a CPU-only machine
    assert first.returncode == 1, first.stderr
    table = rows(root)
    assert {n: r["status"] for n, r in table.items()} == {"p1": "done", "p2": "done", "p3": "done",
                                                          "p4": "failed", "p5": "done", "p6": "done"}
    assert "zoom_typo" in table["p4"]["error"] and table["p4"]["error"].startswith("PresetError")
    assert all(table[n]["frames"] == 3 and (root / n / "video.mp4").exists() for n in table if n != "p4")
    assert (root / "contact_sheet.png").exists() and "| [p4](p4/) | failed |" in (root / "batch.md").read_text()
    assert "p4      failed" in first.stdout and "5 done, 1 failed" in first.stdout
    before = mtimes(root)
    second = batch_cli(folder, "--out", root)
    assert second.returncode == 1
    assert {n: r["status"] for n, r in rows(root).items()} == {"p1": "skipped", "p2": "skipped", "p3": "skipped",
                                                               "p4": "failed", "p5": "skipped", "p6": "skipped"}
    assert mtimes(root) == before and len(before) == 5 * 4
    assert all(render_starts(root / n) == 1 for n in ("p1", "p2", "p3", "p5", "p6"))


def test_two_workers_render_every_job_exactly_once(tmp_path):
    folder, root = six_presets(tmp_path / "presets"), tmp_path / "out"
    result = batch_cli(folder, "--out", root, "--workers", "2")
    assert result.returncode == 1, result.stderr
    table = rows(root)
    done = [n for n, r in table.items() if r["status"] == "done"]
    assert len(done) == 5 and table["p4"]["status"] == "failed"
    assert {table[n]["worker"] for n in done} == {"cpu0", "cpu1"}
    for name in table:  # one claim per job, and the engine started once per rendered job
        assert sorted(p.name for p in (root / ".claims" / name).iterdir()) == ["0.json"]
    assert [render_starts(root / n) for n in done] == [1] * 5


@pytest.mark.slow  # ~60 s with its reference render; the default suite keeps the damaged-folder fuzz
def test_sigterm_then_sigkill_then_resume_is_byte_identical(tmp_path, long_reference):
    """One job, three batch calls: stopped by SIGTERM, its worker SIGKILLed, finished; frames as uninterrupted."""
    preset, expected = long_reference
    root, run_dir = tmp_path / "out", tmp_path / "out" / "long"
    # 1. SIGTERM to the batch: the worker finishes its frame, the job is `interrupted`, exit 130.
    process = batch_popen(preset, "--out", root, "--workers", "1")
    assert wait_for(lambda: n_frames(run_dir) >= 2, process), "the batch never got going"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 130
    row = rows(root)["long"]
    assert row["status"] == "interrupted" and "SIGTERM" in row["error"] and 2 <= row["frames"] < 24
    assert not (root / ".batch").exists()  # the session folder is cleaned up
    # 2. SIGKILL to the worker mid-job: the parent's new worker reclaims it, counts the death, reports it.
    stopped_at = n_frames(run_dir)
    process = batch_popen(preset, "--out", root, "--workers", "1")
    assert wait_for(lambda: n_frames(run_dir) > stopped_at, process), "the resumed job never got going"
    claim = max((root / ".claims" / "long").glob("*.json"), key=lambda p: int(p.stem))
    os.kill(json.loads(claim.read_text())["pid"], signal.SIGKILL)  # the worker, not the batch parent
    assert process.wait(timeout=120) == 1
    assert n_frames(run_dir) < 24, "the job finished before the worker could be killed"
    row = rows(root)["long"]
    assert row["status"] == "failed" and "worker died" in row["error"]
    # 3. The next call resumes the job from what is on disk.
    again = batch_cli(preset, "--out", root, "--workers", "1")
    assert again.returncode == 0, again.stderr
    assert rows(root)["long"]["status"] == "done"
    assert frame_bytes(run_dir) == expected


def fake_free_space(root):
    """A disk with 100 MiB free (module level: the worker process unpickles it by name)."""
    return 100 * 2**20


def grey_render(run, *, should_stop, low_memory):
    """A stand-in for the engine (no model): grey frames and a video file."""
    from tests.batch.test_worker import FakeRender

    FakeRender()(run, should_stop=should_stop, low_memory=low_memory)


def test_disk_guard_stops_the_queue(tmp_path):
    folder, root = tmp_path / "presets", tmp_path / "out"
    write_preset(folder, "a_small")
    write_preset(folder, "b_huge", width=4096, height=4096, max_frames=10)  # ~330 MiB
    write_preset(folder, "c_small", seed=3)
    outcome = run_batch(discover_jobs([str(folder)]), root, workers=1, free_space=fake_free_space,
                        render=grey_render)
    status = {r["name"]: (r["status"], r["error"] or "") for r in outcome.rows}
    assert status["a_small"] == ("done", "")
    assert status["b_huge"][0] == "skipped" and status["b_huge"][1].startswith("not started: needs ~")
    assert status["c_small"][0] == "skipped" and "disk nearly full" in status["c_small"][1]
    assert outcome.exit_code() == 1 and not (root / "b_huge" / "frames").exists()
    assert [r["name"] for r in json.loads((root / "batch.json").read_text())] == ["a_small", "b_huge", "c_small"]
