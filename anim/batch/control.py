"""Control files: how a person (the dashboard, or `touch`) steers a batch root while or before it renders.

Files under ROOT/.control/ (each written atomically; only their existence matters, the text is a note):
- `pause`: workers start no new job while it exists (they poll every POLL_S); running jobs go on to their end.
- `cancel/<job>`: the job stops after its current frame and its row reads `cancelled` (frames kept); a worker
  of this or any later batch call does not start it while the file exists.
- `requeue/<job>`: run the job again. A worker of the running batch (or of the next batch call) takes the
  request: it deletes the job's result in its session (where a failed or cancelled job is recorded until the
  batch writes batch.json), the job's cancel file and then the request, so the job is pending again.

The batch workers read these files themselves, so nothing needs to be running for them to work: a batch
started later honours them. Job names are run folder names (ROOT/<job>/), never paths.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from anim.errors import InputError
from anim.media.files import atomic_write_text

CONTROL = ".control"
PAUSE = "pause"
CANCEL = "cancel"
REQUEUE = "requeue"
CANCELLED = "cancelled (ROOT/.control/cancel)"  # the StopCheck reason of a cancelled job
POLL_S = 0.5


def check_job_name(name: str) -> str:
    """`name` when it can be a run folder's name (no path separators, no leading dot), else an InputError."""
    if not name or name.startswith(".") or any(c in name for c in "/\\\0") or len(name) > 255:
        raise InputError(f"job {name!r}: not a job name (a run folder name under the batch root)")
    return name


def control_dir(root: Path) -> Path:
    return Path(root) / CONTROL


def _job_file(root: Path, kind: str, job: str) -> Path:
    return control_dir(root) / kind / check_job_name(job)


def _note(what: str) -> str:
    return f"{what} at {time.strftime('%Y-%m-%d %H:%M:%S')}\n"


def pause(root: Path) -> None:
    """Ask every worker to start no new job until `resume`."""
    atomic_write_text(control_dir(root) / PAUSE, _note("paused"))


def resume(root: Path) -> None:
    """Let workers start jobs again."""
    (control_dir(root) / PAUSE).unlink(missing_ok=True)


def paused(root: Path) -> bool:
    """True while ROOT/.control/pause exists."""
    return (control_dir(root) / PAUSE).exists()


def cancel(root: Path, job: str) -> None:
    """Stop `job` after its current frame (or keep it from starting); a requeue undoes it."""
    atomic_write_text(_job_file(root, CANCEL, job), _note("cancel requested"))


def cancel_requested(root: Path, job: str) -> bool:
    """True while ROOT/.control/cancel/<job> exists (asked before every frame: one stat)."""
    return (control_dir(root) / CANCEL / job).exists()


def drop_cancel(root: Path, job: str) -> None:
    """Forget a cancel that came too late: the job finished (else it would stay 'cancelled' in later batches)."""
    (control_dir(root) / CANCEL / check_job_name(job)).unlink(missing_ok=True)


def requeue(root: Path, job: str) -> None:
    """Ask for `job` to run again (a failed, cancelled or interrupted one)."""
    atomic_write_text(_job_file(root, REQUEUE, job), _note("requeued"))


def requeue_requested(root: Path, job: str) -> bool:
    """True while a requeue of `job` waits for a worker to take it."""
    return (control_dir(root) / REQUEUE / job).exists()


def take_requeues(root: Path, names: list[str], forget_result: Callable[[str], None]) -> list[str]:
    """For each job of `names` with a requeue request: `forget_result(job)`, drop its cancel file, then the
    request. The jobs taken, in `names` order (called by workers before they look for pending jobs)."""
    folder = control_dir(root) / REQUEUE
    if not folder.is_dir():
        return []
    taken = []
    for name in names:
        request = folder / name
        if request.exists():
            forget_result(name)
            (control_dir(root) / CANCEL / name).unlink(missing_ok=True)
            request.unlink(missing_ok=True)
            taken.append(name)
    return taken


def wait_while_paused(root: Path, give_up: Callable[[], bool], poll_s: float = POLL_S,
                      sleep: Callable[[float], None] = time.sleep) -> bool:
    """Block while ROOT/.control/pause exists; False when `give_up()` turned true first (the batch stops)."""
    while paused(root):
        if give_up():
            return False
        sleep(poll_s)
    return True
