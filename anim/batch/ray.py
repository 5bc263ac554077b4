"""The Ray backend: one Ray task per job (num_gpus=1, or num_cpus=1 on a cluster without GPUs).

Each task runs the same `run_job` as a local worker (claims, skip, disk guard, retries, results), so ROOT
must be on a filesystem every node shares. Ray is imported only here and only when asked for
(`pip install 'anim[cluster]'`). Tasks in one worker process share its model cache between jobs.
"""
from __future__ import annotations

import functools
import os
import socket
import sys
import time

from anim.batch.control import wait_while_paused
from anim.batch.jobs import Job
from anim.batch.local import stop_on_signals
from anim.batch.process import WorkerProcess
from anim.batch.run import Options, describe, one_line, result, run_job
from anim.errors import AnimError


class ClusterError(AnimError):
    """Ray is missing or the cluster cannot be reached."""


def import_ray():
    """The ray module, or a one-line error naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise ClusterError("batch --ray needs Ray, which is not installed: pip install 'anim[cluster]'") from None
    return ray


def connect(ray, address: str) -> bool:
    """Join (or start) a Ray instance; True when this call did, so it also shuts it down.

    `auto`: the running cluster (RAY_ADDRESS or the local one) if there is one, else a new local instance.
    `local`: always a new local instance. Anything else: a cluster address (ray://host:10001, host:6379).
    """
    if ray.is_initialized():
        return False
    quiet = {"include_dashboard": False, "log_to_driver": True}
    try:
        if address == "local":
            ray.init(**quiet)
        elif address == "auto":
            try:
                ray.init(address="auto", log_to_driver=True)
            except ConnectionError:
                ray.init(**quiet)
        else:
            ray.init(address=address, log_to_driver=True)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ClusterError(f"batch --ray {address}: cannot reach the Ray cluster ({str(exc).splitlines()[0]})") from None
    return True


@functools.cache
def ray_process() -> WorkerProcess:
    """The state of this Ray worker process, made on its first task: Ray owns the process and reuses it for
    later tasks, which then find the models already loaded."""
    return WorkerProcess()


def ray_task(job: Job, opts: Options) -> dict | None:
    """Body of one Ray task: run the job once it can be claimed; None if the batch stopped first."""
    worker = f"ray:{socket.gethostname()}:{os.getpid()}"
    while True:
        wait_while_paused(opts.root, lambda: bool(opts.session.stopping() or opts.session.draining()))
        if opts.session.stopping() or opts.session.draining():
            return None
        res = run_job(job, opts, worker, ray_process())
        if res is not None:
            return res
        time.sleep(1.0)  # another live worker holds this job: wait for it to finish or die


def run_ray(jobs: list[Job], opts: Options, address: str) -> dict[str, dict]:
    """Submit every job as a Ray task and gather the results as they finish."""
    ray = import_ray()
    started_here = connect(ray, address)
    try:
        gpus = ray.cluster_resources().get("GPU", 0)
        remote = ray.remote(ray_task).options(num_gpus=1 if gpus else 0, num_cpus=1, max_retries=0)
        print(f"batch: {len(jobs)} job(s) on Ray ({'1 GPU' if gpus else '1 CPU'} per task)", flush=True)
        pending = {remote.remote(job, opts): job for job in jobs}
        with stop_on_signals(opts.session, lambda: [ray.cancel(ref, force=True) for ref in pending]):
            return _gather(ray, pending)
    finally:
        if started_here:
            ray.shutdown()


def _gather(ray, pending: dict) -> dict[str, dict]:
    """Wait for the tasks (in short slices, so a Ctrl-C is handled at once); a crashed task is a failure."""
    results: dict[str, dict] = {}
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
        for ref in ready:
            job = pending.pop(ref)
            try:
                res = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - a task or worker crash: record it, go on
                res = result(job, "failed", error=one_line(exc), worker="ray")
            if res is not None:
                results[job.name] = res
                print(f"[{res['worker']}] {describe(res)}", file=sys.stdout, flush=True)
    return results
