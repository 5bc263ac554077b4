"""ROOT/.control (anim.batch.control): cancel, requeue and pause, as the batch workers read them (no dashboard)."""
from __future__ import annotations

import threading
import time

import pytest

from anim.batch import control
from anim.batch.cli import run_batch
from anim.batch.jobs import Job, discover_jobs
from anim.batch.report import counts
from anim.batch.run import Options, run_job
from anim.batch.session import Session
from anim.batch.worker import worker_main
from anim.errors import InputError
from tests.batch.test_batch_e2e import grey_render
from tests.batch.test_worker import FakeRender
from tests.batch.util import write_preset


@pytest.fixture
def batch(tmp_path):
    """(root, session, options(render)) for in-process run_job / worker_main calls."""
    root = tmp_path / "out"
    root.mkdir()
    session = Session.create(root)

    def options(render):
        return Options(root=root, session=session, render=render, heartbeat_s=0.05)

    return root, session, options


def n_frames(run_dir):
    return len(list((run_dir / "frames").glob("[0-9]*.png")))


def test_cancel_stops_after_the_current_frame_and_requeue_resumes(batch, tmp_path):
    root, session, options = batch
    job = Job("p", str(write_preset(tmp_path / "presets", "p", max_frames=5)))
    render = FakeRender(on_frame=lambda f: control.cancel(root, "p") if f == 1 else None)
    res = run_job(job, options(render), "w")
    assert (res["status"], res["frames"], res["error"]) == ("cancelled", 2, control.CANCELLED)
    assert n_frames(root / "p") == 2  # frames kept
    again = FakeRender()
    res = run_job(job, options(again), "w")  # still cancelled: not even opened
    assert res["status"] == "cancelled" and res["frames"] == 2 and again.calls == []
    session.write_result("p", res)
    control.requeue(root, "p")
    assert control.take_requeues(root, ["other", "p"], session.forget_result) == ["p"]
    assert session.read_result("p") is None and not control.cancel_requested(root, "p")
    assert not control.requeue_requested(root, "p")
    res = run_job(job, options(FakeRender()), "w")
    assert (res["status"], res["frames"], res["rendered"]) == ("done", 5, 3)


def test_running_batch_takes_a_requeue_before_its_workers_exit(batch, tmp_path):
    """b fails (its init image is missing); while a renders, the image appears and b is requeued: the same
    worker renders b after a, in the same session."""
    root, session, options = batch
    folder = tmp_path / "presets"
    init = tmp_path / "init.png"
    jobs = [Job("b", str(write_preset(folder, "b", init_image=str(init)))), Job("a", str(write_preset(folder, "a")))]

    def fix_and_requeue(frame):
        if frame == 0 and session.read_result("b") is not None:
            init.write_bytes(b"an image")
            control.requeue(root, "b")

    class NeedsInit(FakeRender):
        def __call__(self, run, **kw):
            if run.preset.init_image and not init.exists():
                raise InputError(f"init_image: file not found: {init}")
            return super().__call__(run, **kw)

    worker_main("w", jobs, options(NeedsInit(on_frame=fix_and_requeue)))
    assert session.read_result("a")["status"] == "done"
    assert session.read_result("b")["status"] == "done" and n_frames(root / "b") == 3
    assert not control.requeue_requested(root, "b")


def test_wait_while_paused_polls_until_resumed_or_given_up(tmp_path):
    control.pause(tmp_path)
    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        if len(sleeps) == 3:
            control.resume(tmp_path)

    assert control.wait_while_paused(tmp_path, lambda: False, poll_s=0.25, sleep=sleep) is True
    assert sleeps == [0.25] * 3
    control.pause(tmp_path)
    assert control.wait_while_paused(tmp_path, lambda: True, sleep=sleep) is False
    assert len(sleeps) == 3  # gave up before sleeping


def test_paused_worker_starts_nothing_until_resumed(batch, tmp_path):
    root, session, options = batch
    job = Job("p", str(write_preset(tmp_path / "presets", "p")))
    control.pause(root)
    resumed_at = []

    def resume_later():
        time.sleep(0.8)
        resumed_at.append(time.time())
        control.resume(root)

    thread = threading.Thread(target=resume_later)
    thread.start()
    worker_main("w", [job], options(FakeRender()))
    thread.join()
    assert session.read_result("p")["status"] == "done"
    assert (root / "p" / "frames" / "000000.png").stat().st_mtime >= resumed_at[0] - 0.05


def test_paused_worker_leaves_when_the_batch_stops(batch, tmp_path):
    root, session, options = batch
    control.pause(root)
    session.stop("interrupted by SIGINT")
    render = FakeRender()
    worker_main("w", [Job("p", str(write_preset(tmp_path / "presets", "p")))], options(render))
    assert render.calls == [] and session.read_result("p") is None


def test_a_later_batch_honours_cancel_until_requeued(tmp_path):
    folder, root = tmp_path / "presets", tmp_path / "out"
    write_preset(folder, "a")
    write_preset(folder, "b", seed=2)
    control.cancel(root, "b")  # before any batch ran: the dashboard need not be running
    first = run_batch(discover_jobs([str(folder)]), root, workers=1, render=grey_render)
    status = {r["name"]: r["status"] for r in first.rows}
    assert status == {"a": "done", "b": "cancelled"} and not (root / "b" / "frames").exists()
    assert counts(first.rows) == "1 done, 1 cancelled" and first.exit_code() == 0
    control.requeue(root, "b")
    second = run_batch(discover_jobs([str(folder)]), root, workers=1, render=grey_render)
    assert {r["name"]: r["status"] for r in second.rows} == {"a": "skipped", "b": "done"}
    assert not control.requeue_requested(root, "b") and not control.cancel_requested(root, "b")


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "a\\b", ".hidden", "nul\0"])
def test_job_names_that_are_paths_are_refused(tmp_path, name):
    with pytest.raises(InputError, match="not a job name"):
        control.cancel(tmp_path, name)
    assert not (tmp_path / ".control" / "cancel").exists() or not any((tmp_path / ".control" / "cancel").iterdir())


def test_a_cancel_after_the_last_frame_is_dropped(tmp_path):
    """A cancel that arrives once the job has rendered its last frame cannot stop it: the job is done and the
    cancel file goes, so a later batch skips it as finished instead of calling it cancelled."""
    from functools import partial

    folder, root = tmp_path / "presets", tmp_path / "out"
    write_preset(folder, "a")
    first = run_batch(discover_jobs([str(folder)]), root, workers=1, render=partial(render_then_cancel, root))
    assert [r["status"] for r in first.rows] == ["done"] and not control.cancel_requested(root, "a")
    second = run_batch(discover_jobs([str(folder)]), root, workers=1, render=grey_render)
    assert [r["status"] for r in second.rows] == ["skipped"]


def render_then_cancel(root, run, **kwargs):
    """grey_render, then a cancel request for the job: too late, every frame is on disk."""
    grey_render(run, **kwargs)
    control.cancel(root, run.dir.name)
