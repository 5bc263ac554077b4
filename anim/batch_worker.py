"""One batch job end to end, and the loop of a local worker process that claims jobs one after another.

`run_job` is shared by both backends (local worker processes and Ray tasks): claim -> open the run ->
skip / disk guard -> render with retries -> record the result -> release. The module imports no torch at
load time, so a worker can set CUDA_VISIBLE_DEVICES before torch first loads.
"""
from __future__ import annotations

import contextlib
import gc
import io
import os
import pickle
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from anim.batch_claims import HEARTBEAT_S, STALE_S, Claim, Heartbeat, try_claim
from anim.batch_jobs import FrameWatch, Job, complete_frames, estimate_bytes, free_bytes, is_finished, missing_frames
from anim.batch_session import Session
from anim.errors import AnimError

_CACHE = None  # this process's ModelCache: kept between jobs that use the same model
_DEFAULT_THREADS: int | None = None  # torch's CPU thread count before the first job changed it
_TERMINATED = threading.Event()  # SIGTERM sent to this worker directly


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
    lockstep: int = 1  # K > 1: groups of up to K compatible jobs share their UNet calls (anim.batch_group)
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


def reset_model_cache() -> None:
    """Drop this process's models (before a low-memory retry) and give the memory back."""
    global _CACHE
    _CACHE = None
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def worker_cache(threads: int | None):
    """This process's ModelCache, with torch's CPU threads set for the next render (a resumed job before
    may have set its recorded count)."""
    global _CACHE, _DEFAULT_THREADS
    import torch

    from anim.makers import ModelCache

    if _DEFAULT_THREADS is None:
        _DEFAULT_THREADS = torch.get_num_threads()
    torch.set_num_threads(threads or _DEFAULT_THREADS)
    if _CACHE is None:
        _CACHE = ModelCache()
    return _CACHE


def engine_render(run, *, should_stop, low_memory: bool, threads: int | None = None) -> None:
    """The real render: anim.engine.render_run with this process's model cache, output kept quiet."""
    from anim.engine import render_run

    cache = worker_cache(threads)
    with contextlib.redirect_stdout(io.StringIO()):
        render_run(run, quiet=True, cache=cache, should_stop=should_stop, low_memory=low_memory)


class StopCheck:
    """The engine's should_stop: batch stop flag, a direct SIGTERM, a lost claim; also watches frames."""

    def __init__(self, session: Session, claim: Claim, watch: FrameWatch) -> None:
        self.session, self.claim, self.watch = session, claim, watch
        self.reason: str | None = None

    def __call__(self) -> bool:
        self.watch.check()  # raises BlackFrameError
        if self.claim.lost():
            self.reason = "lost claim"
        elif _TERMINATED.is_set():
            self.reason = "worker terminated"
        else:
            self.reason = self.session.stopping()
        return self.reason is not None


def run_job(job: Job, opts: Options, worker: str) -> dict | None:
    """Claim and run one job; its result (also written to the session), or None if another worker has it."""
    claim = try_claim(opts.claims_dir, job.name, opts.session.id, worker, opts.stale_after)
    if claim is None:
        return None
    started = time.perf_counter()
    with Heartbeat(claim, opts.heartbeat_s):
        outcome = _claimed(job, opts, claim, worker)
    if outcome is None:  # lost the claim: the new holder reports this job
        claim.release()
        return None
    outcome["seconds"] = round(time.perf_counter() - started, 2)
    opts.session.write_result(job.name, outcome)
    claim.release()
    return outcome


def _claimed(job: Job, opts: Options, claim: Claim, worker: str) -> dict | None:
    """The job under our claim: earlier crashes, open the run, skip when finished, disk guard, render."""
    prepared = prepare(job, opts, claim, worker)
    if isinstance(prepared, dict):
        return prepared
    run, attempts = prepared
    return render_with_retries(job, run, opts, claim, worker, len(complete_frames(run)), attempts=attempts)


def prepare(job: Job, opts: Options, claim: Claim, worker: str, *, skip_finished: bool = True):
    """(run, attempts so far) for a job to render, or its result row: died too often, bad preset, finished,
    or no disk space (which also drains the queue)."""
    from anim.runfolder import open_run

    deaths = claim.deaths(opts.session.id)
    if len(deaths) > opts.retries:
        last = deaths[-1]
        return result(job, "failed", attempts=len(deaths), worker=worker,
                      error=f"worker died while rendering (pid {last.get('pid')} on {last.get('host')}), "
                            f"{len(deaths)} time(s); run the batch again to resume")
    try:
        run = open_run(job.preset, list(opts.overrides), out=opts.root / job.name, force=opts.force)
    except AnimError as exc:
        return result(job, "failed", error=one_line(exc), worker=worker)
    done = complete_frames(run)
    if skip_finished and is_finished(run):
        return result(job, "skipped", frames=len(done), worker=worker)
    need = estimate_bytes(run.preset, run.preset.max_frames - len(done))
    free = opts.free_space(opts.root)
    if need > free:
        reason = f"not started: needs ~{need / 2**20:.0f} MiB, {free / 2**20:.0f} MiB free on {opts.root}"
        opts.session.drain(f"disk nearly full ({reason})")
        return result(job, "skipped", error=reason, frames=len(done), worker=worker)
    return run, len(deaths)


def render_with_retries(job: Job, run, opts: Options, claim: Claim, worker: str, before: int,
                        attempts: int) -> dict | None:
    """Render; retry other errors `retries` times, an out-of-memory once more with low_memory=True."""
    render = opts.render or (lambda r, **kw: engine_render(r, threads=opts.threads, **kw))
    low_memory, retries_left = False, opts.retries
    while True:
        attempts += 1
        watch = FrameWatch(run, missing_frames(run))
        stop = StopCheck(opts.session, claim, watch)
        try:
            with _cwd(opts.cwd):
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
            reset_model_cache()
            _log(worker, f"{job.name}: out of memory, retrying with low_memory")
            continue
        if not isinstance(error, AnimError) and retries_left > 0:
            retries_left -= 1
            if is_out_of_memory(error):
                reset_model_cache()
            _log(worker, f"{job.name}: {one_line(error)}; retrying ({retries_left} retries left)")
            continue
        return ended_row(job, run, stop, error, before, attempts, worker)


def ended_row(job: Job, run, stop: StopCheck, error: BaseException | None, before: int, attempts: int,
              worker: str, seconds: float = 0.0) -> dict | None:
    """The row of a render that will not be retried: done, interrupted or failed; None when the claim was lost
    (its new holder reports the job)."""
    n = len(complete_frames(run))
    common = {"frames": n, "rendered": n - before, "attempts": attempts, "worker": worker, "seconds": seconds}
    if error is None:
        return result(job, "done", **common)
    if stop.reason == "lost claim":
        return None
    if stop.reason is not None:
        return result(job, "interrupted", error=stop.reason, **common)
    return result(job, "failed", error=one_line(error), **common)


@contextlib.contextmanager
def _cwd(path: str):
    """Run in the batch caller's working directory (Ray workers start elsewhere)."""
    old = os.getcwd()
    if path == old or not os.path.isdir(path):
        yield
        return
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def _log(worker: str, text: str) -> None:
    print(f"[{worker}] {text}", flush=True)


def describe(res: dict) -> str:
    """A job's progress line: `name: status (frames, seconds)[: error]`."""
    text = f"{res['name']}: {res['status']} ({res['frames']} frames, {res['seconds']:.1f} s)"
    return f"{text}: {res['error']}" if res.get("error") else text


def stop_requested(opts: Options) -> bool:
    """The batch is stopping or draining, or this worker was sent SIGTERM: claim nothing new."""
    return bool(opts.session.stopping() or opts.session.draining() or _TERMINATED.is_set())


def worker_main(label: str, jobs: list[Job], opts: Options) -> None:
    """A local worker process: claim and run jobs (or lockstep groups) until every job has a result or the
    batch stops."""
    if opts.lockstep > 1:
        from anim.batch_group import run_group as step
    else:
        def step(job, _jobs, opts, label):
            res = run_job(job, opts, label)
            return None if res is None else [res]
    session = opts.session
    while not stop_requested(opts):
        pending = [job for job in jobs if session.read_result(job.name) is None]
        if not pending:
            return
        progressed = False
        for job in pending:
            if stop_requested(opts):
                return
            if session.read_result(job.name) is not None:
                continue
            rows = step(job, jobs, opts, label)
            if rows is not None:
                progressed = True
                for row in rows:
                    _log(label, describe(row))
        if not progressed:
            time.sleep(0.5)  # every pending job is held by a live worker: wait for it to finish or die


def process_main(argv: list[str] | None = None) -> int:
    """Entry of a local worker process: `python -c '...process_main()' WORK_PICKLE LABEL`.

    The parent sets CUDA_VISIBLE_DEVICES in this process's environment, so torch (imported later, by the
    first job) sees only this worker's GPU. SIGINT is ignored (Ctrl-C reaches the whole process group and
    the parent decides); SIGTERM, or the parent dying, stops the job after its current frame.
    """
    work, label = (sys.argv[1:] if argv is None else argv)[:2]
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: _TERMINATED.set())
    _watch_parent(os.getppid())
    with open(work, "rb") as handle:
        jobs, opts = pickle.load(handle)
    worker_main(label, jobs, opts)
    return 0


def _watch_parent(parent: int) -> None:
    """Set the terminate flag when the batch parent goes away (an orphan must not render on alone)."""

    def watch() -> None:
        while not _TERMINATED.wait(1.0):
            if os.getppid() != parent:
                _TERMINATED.set()

    threading.Thread(target=watch, name="anim-parent-watch", daemon=True).start()


def worker_label(gpu: str | None, index: int) -> str:
    """`gpu0`, `cpu1`, ... as shown in progress lines and claims."""
    return f"gpu{gpu}" if gpu else f"cpu{index}"
