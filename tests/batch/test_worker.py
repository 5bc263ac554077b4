"""run_job with a fake renderer: skip, disk guard, retries, out of memory, stop, black frames, lost claims."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from anim.batch.claims import try_claim
from anim.batch.jobs import Job
from anim.batch.run import Options, run_job
from anim.batch.session import Session
from anim.errors import InputError
from anim.media.png import png_bytes
from tests.batch.util import write_preset


class StoppedForTest(Exception):
    """What the engine raises when should_stop() says yes."""


class FakeRender:
    """Writes grey frames like the engine (asking should_stop before each); raises the queued errors first."""

    def __init__(self, *errors, value=90, on_frame=None):
        self.errors, self.value, self.on_frame = list(errors), value, on_frame
        self.calls: list[bool] = []  # low_memory of each call

    def __call__(self, run, *, should_stop, low_memory):
        self.calls.append(low_memory)
        if self.errors:
            raise self.errors.pop(0)
        run.write_plan()  # as the engine does before its first frame
        for f in range(run.preset.max_frames):
            if run.frame_path(f).exists():
                continue
            if should_stop():
                raise StoppedForTest(f"stopped before frame {f}")
            image = np.full((run.preset.height, run.preset.width, 3), self.value, np.uint8)
            run.frame_path(f).parent.mkdir(parents=True, exist_ok=True)
            run.frame_path(f).write_bytes(png_bytes(image, "p", {"frame": f}))
            if self.on_frame:
                self.on_frame(f)
        (run.dir / "video.mp4").write_bytes(b"video")


def oom():
    return RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB")


@pytest.fixture
def setup(tmp_path):
    root = tmp_path / "out"
    root.mkdir()
    job = Job("p", str(write_preset(tmp_path / "presets", "p")))
    session = Session.create(root)

    def options(render, **kw):
        return Options(root=root, session=session, render=render, heartbeat_s=0.05, **kw)

    return job, session, options


def test_done_then_skipped(setup):
    job, session, options = setup
    render = FakeRender()
    res = run_job(job, options(render), "w")
    assert (res["status"], res["frames"], res["rendered"], res["error"]) == ("done", 3, 3, None)
    assert session.read_result("p") == res
    again = run_job(job, options(render), "w")
    assert again["status"] == "skipped" and again["frames"] == 3 and len(render.calls) == 1
    claim = json.loads((session.root / ".claims" / "p" / "1.json").read_text())
    assert claim["released"] and claim["pid"] == os.getpid()


def test_out_of_memory_retries_once_with_low_memory(setup):
    job, _, options = setup
    render = FakeRender(oom())
    res = run_job(job, options(render), "w")
    assert res["status"] == "done" and render.calls == [False, True] and res["attempts"] == 2


def test_out_of_memory_twice_fails_without_retries(setup):
    job, _, options = setup
    render = FakeRender(oom(), oom())
    res = run_job(job, options(render), "w")
    assert res["status"] == "failed" and "out of memory" in res["error"] and render.calls == [False, True]


def test_other_errors_are_retried_n_times(setup):
    job, _, options = setup
    render = FakeRender(RuntimeError("flaky driver"), RuntimeError("flaky driver"))
    assert run_job(job, options(render, retries=1), "w")["status"] == "failed"
    assert render.calls == [False, False]
    render = FakeRender(RuntimeError("flaky driver"), RuntimeError("flaky driver\nsecond line"))
    res = run_job(job, options(render, retries=2), "w")
    assert res["status"] == "done" and res["attempts"] == 3


def test_user_errors_fail_at_once(setup, tmp_path):
    job, _, options = setup
    render = FakeRender(InputError("init_image: file not found: x.png"))
    res = run_job(job, options(render, retries=3), "w")
    assert res["status"] == "failed" and res["error"] == "InputError: init_image: file not found: x.png"
    assert render.calls == [False]
    bad = Job("bad", str(write_preset(tmp_path / "presets", "bad", denoise="0:(0.5), 3:(oops(")))
    res = run_job(bad, options(FakeRender(), retries=3), "w")
    assert res["status"] == "failed" and res["error"].startswith(("ScheduleError", "PresetError"))


def test_stop_between_frames_is_interrupted_and_resumes(setup):
    job, session, options = setup
    render = FakeRender(on_frame=lambda f: session.stop("interrupted by SIGTERM") if f == 0 else None)
    res = run_job(job, options(render), "w")
    assert (res["status"], res["frames"], res["error"]) == ("interrupted", 1, "interrupted by SIGTERM")
    fresh = Session.create(session.root)
    res = run_job(job, Options(root=session.root, session=fresh, render=FakeRender()), "w")
    assert (res["status"], res["rendered"]) == ("done", 2)


def test_black_frame_fails_the_job(setup):
    job, _, options = setup
    res = run_job(job, options(FakeRender(value=0)), "w")
    assert res["status"] == "failed" and "entirely black" in res["error"]
    frames = sorted(p.name for p in (setup[1].root / "p" / "frames").iterdir())
    assert frames == ["000000.black.png"]  # stopped after the first frame; never counts as finished


def test_disk_guard_drains_the_queue(setup):
    job, session, options = setup
    render = FakeRender()
    res = run_job(job, options(render, free_space=lambda root: 1000), "w")
    assert res["status"] == "skipped" and res["error"].startswith("not started: needs ~")
    assert "disk nearly full" in session.draining() and render.calls == []


def test_busy_job_is_left_alone(setup):
    job, session, options = setup
    assert try_claim(session.root / ".claims", "p", "other", "x") is not None  # this (live) process holds it
    assert run_job(job, options(FakeRender()), "w") is None and session.read_result("p") is None


def test_lost_claim_stops_without_reporting(setup):
    job, session, options = setup
    claims = session.root / ".claims" / "p"

    def steal(f):
        if f == 0:
            (claims / "1.json").write_text(json.dumps({"pid": os.getpid(), "host": "x", "session": "other"}))

    assert run_job(job, options(FakeRender(on_frame=steal)), "w") is None
    assert session.read_result("p") is None


@pytest.mark.parametrize("retries, status", [(0, "failed"), (1, "done")])
def test_a_worker_death_counts_as_a_failed_attempt(setup, retries, status):
    job, session, options = setup
    claims = session.root / ".claims" / "p"
    claims.mkdir(parents=True)
    dead = {"pid": 2**22 + 1, "host": os.uname().nodename, "session": session.id, "released": False}
    (claims / "0.json").write_text(json.dumps(dead))  # a worker of this batch died holding the job
    res = run_job(job, options(FakeRender(), retries=retries), "w")
    assert res["status"] == status
    assert status == "done" or "worker died" in res["error"]
