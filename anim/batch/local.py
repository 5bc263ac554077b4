"""The local backend: one worker process per GPU (or N CPU workers), supervised by the batch parent.

Workers are fresh interpreters (spawned like multiprocessing's 'spawn', but with subprocess so the
caller's __main__ is never re-imported; render.py has no __main__ guard). Each gets CUDA_VISIBLE_DEVICES
in its environment before torch loads, the job list by pickle, and claims jobs itself (anim.batch.claims).
The parent only watches: it turns SIGINT/SIGTERM into the session's stop flag, replaces a worker that died
while jobs remain, and collects the results.
"""
from __future__ import annotations

import contextlib
import os
import pickle
import signal
import subprocess
import sys
import time
from typing import Callable

from anim.batch.jobs import Job
from anim.batch.run import Options
from anim.batch.session import Session
from anim.batch.worker import worker_label
from anim.media.files import atomic_write_bytes

POLL_S = 0.2
WORKER_ENTRY = "import sys; from anim.batch.worker import process_main; sys.exit(process_main())"


@contextlib.contextmanager
def stop_on_signals(session: Session, force: Callable[[], None]):
    """First SIGINT/SIGTERM: stop after the current frame. Second: `force()` (kill the workers)."""
    count = 0

    def handle(signum, _frame):
        nonlocal count
        count += 1
        name = signal.Signals(signum).name
        if count == 1:
            session.stop(f"interrupted by {name}")
            print(f"\nbatch: {name}: stopping after the current frame (again to kill the workers)",
                  file=sys.stderr, flush=True)
        else:
            print(f"batch: {name} again: killing the workers; finished frames are kept", file=sys.stderr, flush=True)
            force()

    old = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def threads_per_worker(n_workers: int, gpus: list[str]) -> int | None:
    """CPU workers share the cores; one worker (or GPU workers) keep torch's default."""
    if n_workers <= 1 or any(gpus):
        return None
    return max(1, (os.cpu_count() or 1) // n_workers)


class Pool:
    """The worker processes, one slot per device; a slot is restarted when its process dies early."""

    def __init__(self, jobs: list[Job], opts: Options, gpus: list[str]) -> None:
        self.jobs, self.opts, self.gpus = jobs, opts, gpus
        self.work = opts.session.dir / "work.pickle"
        atomic_write_bytes(self.work, pickle.dumps((jobs, opts)))
        self.procs: dict[int, subprocess.Popen] = {}
        self.restarts_left = len(jobs)

    def start(self, slot: int) -> None:
        """Start the worker of `slot` in a fresh interpreter with its own CUDA_VISIBLE_DEVICES."""
        env = dict(os.environ, CUDA_VISIBLE_DEVICES=self.gpus[slot],
                   PYTHONPATH=os.pathsep.join(p for p in sys.path if p))  # the parent's imports, as spawn does
        command = [sys.executable, "-c", WORKER_ENTRY, str(self.work), self.label(slot)]
        self.procs[slot] = subprocess.Popen(command, env=env)

    def label(self, slot: int) -> str:
        return worker_label(self.gpus[slot], slot)

    def kill(self) -> None:
        """SIGKILL every worker (the second Ctrl-C); frames on disk stay valid, claims go stale."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()

    def supervise(self) -> None:
        """Wait for the workers; restart one that died while jobs are left and the batch is not stopping."""
        running = set(self.procs)
        while running:
            time.sleep(POLL_S)
            for slot in sorted(running):
                code = self.procs[slot].poll()
                if code is None:
                    continue
                running.discard(slot)
                if code != 0 and self._should_restart():
                    print(f"batch: worker {self.label(slot)} died (exit {code}); starting a new one",
                          file=sys.stderr, flush=True)
                    self.restarts_left -= 1
                    self.start(slot)
                    running.add(slot)

    def _should_restart(self) -> bool:
        session = self.opts.session
        if self.restarts_left <= 0 or session.stopping() or session.draining():
            return False
        return any(session.read_result(job.name) is None for job in self.jobs)


def run_local(jobs: list[Job], opts: Options, gpus: list[str]) -> dict[str, dict]:
    """Render `jobs` on one worker per entry of `gpus` (a CUDA id, or '' for a CPU worker)."""
    pool = Pool(jobs, opts, gpus)
    with stop_on_signals(opts.session, pool.kill):
        for slot in range(len(gpus)):
            pool.start(slot)
        pool.supervise()
    return {job.name: res for job in jobs if (res := opts.session.read_result(job.name)) is not None}

