"""The loop of a local worker process: claim jobs (or lockstep groups) one after another until each has a
result or the batch stops. The job itself runs in anim.batch.run; this process's state is a WorkerProcess.
"""
from __future__ import annotations

import os
import pickle
import signal
import sys
import threading
import time

from anim.batch.control import take_requeues, wait_while_paused
from anim.batch.jobs import Job
from anim.batch.process import WorkerProcess
from anim.batch.run import Options, describe, log_line, run_job


def stop_requested(opts: Options, proc: WorkerProcess) -> bool:
    """The batch is stopping or draining, or this worker was sent SIGTERM: claim nothing new."""
    return bool(opts.session.stopping() or opts.session.draining() or proc.terminated.is_set())


def worker_main(label: str, jobs: list[Job], opts: Options, proc: WorkerProcess | None = None) -> None:
    """A local worker process: claim and run jobs (or lockstep groups) until every job has a result or the
    batch stops. Honours ROOT/.control (anim.batch.control): waits while paused, takes requeue requests."""
    proc = proc or WorkerProcess()
    if opts.lockstep > 1:
        from anim.batch.group import run_group as step
    else:
        def step(job, _jobs, opts, label, proc):
            res = run_job(job, opts, label, proc)
            return None if res is None else [res]
    session = opts.session
    while not stop_requested(opts, proc):
        take_requeues(opts.root, [job.name for job in jobs], session.forget_result)
        pending = [job for job in jobs if session.read_result(job.name) is None]
        if not pending:
            return
        progressed = False
        for job in pending:
            if not wait_while_paused(opts.root, lambda: stop_requested(opts, proc)) or stop_requested(opts, proc):
                return
            if session.read_result(job.name) is not None:
                continue
            rows = step(job, jobs, opts, label, proc)
            if rows is not None:
                progressed = True
                for row in rows:
                    log_line(label, describe(row))
        if not progressed:
            time.sleep(0.5)  # every pending job is held by a live worker: wait for it to finish or die


def process_main(argv: list[str] | None = None) -> int:
    """Entry of a local worker process: `python -c '...process_main()' WORK_PICKLE LABEL`.

    The parent sets CUDA_VISIBLE_DEVICES in this process's environment, so torch (imported later, by the
    first job) sees only this worker's GPU. SIGINT is ignored (Ctrl-C reaches the whole process group and
    the parent decides); SIGTERM, or the parent dying, stops the job after its current frame.
    """
    work, label = (sys.argv[1:] if argv is None else argv)[:2]
    proc = WorkerProcess()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: proc.terminated.set())
    _watch_parent(os.getppid(), proc.terminated)
    with open(work, "rb") as handle:
        jobs, opts = pickle.load(handle)  # written by our own parent (anim.batch.local), never user data
    worker_main(label, jobs, opts, proc)
    return 0


def _watch_parent(parent: int, terminated: threading.Event) -> None:
    """Set the terminate flag when the batch parent goes away (an orphan must not render on alone)."""

    def watch() -> None:
        while not terminated.wait(1.0):
            if os.getppid() != parent:
                terminated.set()

    threading.Thread(target=watch, name="anim-parent-watch", daemon=True).start()


def worker_label(gpu: str | None, index: int) -> str:
    """`gpu0`, `cpu1`, ... as shown in progress lines and claims."""
    return f"gpu{gpu}" if gpu else f"cpu{index}"
