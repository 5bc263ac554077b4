"""One batch job end to end, shared by every backend (local worker processes, lockstep groups, Ray tasks):
claim -> open the run -> skip / disk guard -> render with retries -> record the result -> release.
Imports no torch at load time, so a worker can set CUDA_VISIBLE_DEVICES before torch first loads.
"""
from __future__ import annotations

import contextlib
import io
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from anim.batch.claims import HEARTBEAT_S, STALE_S, Claim, Heartbeat, try_claim
from anim.batch.control import CANCELLED, cancel_requested, drop_cancel
from anim.batch.jobs import (
    FrameWatch,
    Job,
    complete_frames,
    estimate_bytes,
    free_bytes,
    is_finished,
    missing_frames,
)
from anim.batch.process import WorkerProcess
from anim.batch.session import Session
from anim.errors import AnimError
from anim.media.png import is_complete_png


@dataclass(frozen=True)
class Options:
    """Everything a job needs besides the job itself; picklable (sent to spawned workers and Ray tasks)."""

    root: Path
    session: Session
    overrides: tuple[str, ...] = ()
    retries: int = 0
    force: bool = False
    threads: int | None = None  # torch CPU threads per worker (None: torch's default)
    free_space: Callable[[Path], int] = free_bytes  # injectable: tests simulate a full disk
    stale_after: float = STALE_S
    heartbeat_s: float = HEARTBEAT_S
    render: Callable | None = None  # injectable: render(run, *, should_stop, low_memory); None = the engine
    lockstep: int = 1  # K > 1: groups of up to K compatible jobs share their UNet calls (anim.batch.group)
    cwd: str = field(default_factory=os.getcwd)  # relative paths in presets resolve against the caller's cwd

    @property
    def claims_dir(self) -> Path:
        return self.root / ".claims"


def result(job: Job, status: str, *, error: str | None = None, frames: int = 0, rendered: int = 0,
           seconds: float = 0.0, attempts: int = 0, worker: str = "") -> dict:
    """One row of batch.json."""
    return {"preset": job.preset, "name": job.name, "status": status, "frames": frames, "rendered": rendered,
            "seconds": round(seconds, 2), "error": error, "attempts": attempts, "worker": worker}


def one_line(exc: BaseException) -> str:
    """`Type: first line of the message` — what batch.json and the summary show."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def is_out_of_memory(exc: BaseException) -> bool:
    """torch.OutOfMemoryError, a 'CUDA out of memory' RuntimeError, or a host MemoryError."""
    torch = sys.modules.get("torch")
    oom_type = getattr(torch, "OutOfMemoryError", None) if torch is not None else None
    if oom_type is not None and isinstance(exc, oom_type):
        return True
    return isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


def engine_render(run, *, should_stop, low_memory: bool, proc: WorkerProcess, threads: int | None = None) -> None:
    """The real render: anim.engine.render_run with this process's model cache, output kept quiet."""
    from anim.engine import render_run

    render_run(run, quiet=True, cache=proc.cache(threads), should_stop=should_stop, low_memory=low_memory)


class StopCheck:
    """The engine's should_stop: batch stop flag, a direct SIGTERM, a lost claim, a cancel file; also watches
    frames."""

    def __init__(self, session: Session, claim: Claim, watch: FrameWatch, terminated: threading.Event) -> None:
        self.session, self.claim, self.watch, self.terminated = session, claim, watch, terminated
        self.reason: str | None = None

    def __call__(self) -> bool:
        self.watch.check()  # raises BlackFrameError
        if self.claim.lost():
            self.reason = "lost claim"
        elif self.terminated.is_set():
            self.reason = "worker terminated"
        elif cancel_requested(self.session.root, self.claim.path.parent.name):
            self.reason = CANCELLED
        else:
            self.reason = self.session.stopping()
        return self.reason is not None


def run_job(job: Job, opts: Options, worker: str, proc: WorkerProcess | None = None) -> dict | None:
    """Claim and run one job; its result (also written to the session), or None if another worker has it.
    `proc` is the calling process's state (a fresh one when not given)."""
    proc = proc or WorkerProcess()
    claim = try_claim(opts.claims_dir, job.name, opts.session.id, worker, opts.stale_after)
    if claim is None:
        return None
    started = time.perf_counter()
    with Heartbeat(claim, opts.heartbeat_s):
        outcome = _claimed(job, opts, claim, worker, proc)
    if outcome is None:  # lost the claim: the new holder reports this job
        claim.release()
        return None
    outcome["seconds"] = round(time.perf_counter() - started, 2)
    opts.session.write_result(job.name, outcome)
    claim.release()
    return outcome


def _claimed(job: Job, opts: Options, claim: Claim, worker: str, proc: WorkerProcess) -> dict | None:
    """The job under our claim: earlier crashes, open the run, skip when finished, disk guard, render."""
    prepared = prepare(job, opts, claim, worker)
    if isinstance(prepared, dict):
        return prepared
    run, attempts = prepared
    try:
        return render_with_retries(job, run, opts, claim, worker, len(complete_frames(run)), attempts, proc)
    finally:
        run.close()


def prepare(job: Job, opts: Options, claim: Claim, worker: str, *, skip_finished: bool = True):
    """(run, attempts so far) for a job to render, or its result row: cancelled, died too often, bad preset,
    finished, or no disk space (which also drains the queue)."""
    from anim.runfolder import open_run

    if cancel_requested(opts.root, job.name):
        frames = [p for p in (opts.root / job.name / "frames").glob("[0-9]*.png") if is_complete_png(p)]
        return result(job, "cancelled", error=f"not started: {CANCELLED}", frames=len(frames), worker=worker)
    deaths = claim.deaths(opts.session.id)
    if len(deaths) > opts.retries:
        last = deaths[-1]
        return result(job, "failed", attempts=len(deaths), worker=worker,
                      error=f"worker died while rendering (pid {last.get('pid')} on {last.get('host')}), "
                            f"{len(deaths)} time(s); run the batch again to resume")
    try:
        run = open_run(job.preset, list(opts.overrides), out=opts.root / job.name, force=opts.force)
    except AnimError as exc:
        return result(job, "failed", error=one_line(exc), worker=worker, attempts=1)
    done = complete_frames(run)
    if skip_finished and is_finished(run):
        run.close()
        return result(job, "skipped", frames=len(done), worker=worker)
    need = estimate_bytes(run.preset, run.preset.max_frames - len(done))
    free = opts.free_space(opts.root)
    if need > free:
        run.close()
        reason = f"not started: needs ~{need / 2**20:.0f} MiB, {free / 2**20:.0f} MiB free on {opts.root}"
        opts.session.drain(f"disk nearly full ({reason})")
        return result(job, "skipped", error=reason, frames=len(done), worker=worker)
    return run, len(deaths)


def render_with_retries(job: Job, run, opts: Options, claim: Claim, worker: str, before: int,
                        attempts: int, proc: WorkerProcess) -> dict | None:
    """Render; retry other errors `retries` times, an out-of-memory once more with low_memory=True."""
    render = opts.render or (lambda r, **kw: engine_render(r, proc=proc, threads=opts.threads, **kw))
    low_memory, retries_left = False, opts.retries
    while True:
        attempts += 1
        watch = FrameWatch(run, missing_frames(run))
        stop = StopCheck(opts.session, claim, watch, proc.terminated)
        try:
            with quiet_in(opts.cwd):
                render(run, should_stop=stop, low_memory=low_memory)
            watch.check(final=True)
        except Exception as exc:  # noqa: BLE001 - every failure becomes one line in batch.json
            error = exc.with_traceback(None)  # drop the frames' tensors before a low-memory retry
        else:
            return ended_row(job, run, stop, None, before, attempts, worker)
        if stop.reason is not None:  # the engine raised Stopped because we asked it to
            return ended_row(job, run, stop, error, before, attempts, worker)
        if is_out_of_memory(error) and not low_memory:
            low_memory = True
            proc.reset_cache()
            log_line(worker, f"{job.name}: out of memory, retrying with low_memory")
            continue
        if not isinstance(error, AnimError) and retries_left > 0:
            retries_left -= 1
            if is_out_of_memory(error):
                proc.reset_cache()
            log_line(worker, f"{job.name}: {one_line(error)}; retrying ({retries_left} retries left)")
            continue
        return ended_row(job, run, stop, error, before, attempts, worker)


def ended_row(job: Job, run, stop: StopCheck, error: BaseException | None, before: int, attempts: int,
              worker: str, seconds: float = 0.0) -> dict | None:
    """The row of a render that will not be retried: done, interrupted or failed; None when the claim was lost
    (its new holder reports the job)."""
    n = len(complete_frames(run))
    common = {"frames": n, "rendered": n - before, "attempts": attempts, "worker": worker, "seconds": seconds}
    if error is None:
        drop_cancel(stop.session.root, job.name)  # a cancel that came after the last frame
        return result(job, "done", **common)
    if stop.reason == "lost claim":
        return None
    if stop.reason is not None:
        return result(job, "cancelled" if stop.reason == CANCELLED else "interrupted", error=stop.reason, **common)
    return result(job, "failed", error=one_line(error), **common)


@contextlib.contextmanager
def quiet_in(path: str):
    """Run a render in the batch caller's working directory (Ray workers start elsewhere) with its stdout
    swallowed (the batch prints its own progress lines)."""
    old = os.getcwd()
    move = path != old and os.path.isdir(path)
    if move:
        os.chdir(path)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        if move:
            os.chdir(old)


def log_line(worker: str, text: str) -> None:
    print(f"[{worker}] {text}", flush=True)


def describe(res: dict) -> str:
    """A job's progress line: `name: status (frames, seconds)[: error]`."""
    text = f"{res['name']}: {res['status']} ({res['frames']} frames, {res['seconds']:.1f} s)"
    return f"{text}: {res['error']}" if res.get("error") else text


