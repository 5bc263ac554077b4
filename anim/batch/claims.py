"""Job claims: at most one worker renders a job, and the job of a dead worker can be taken over.

Protocol (files under ROOT/.claims/<job>/, on a local or shared filesystem):
- A claim is `<k>.json` = {pid, host, proc_start, session, worker, claimed_at, released}; the highest k
  is the current claim. Its mtime is the heartbeat, touched every few seconds while the job runs.
- To claim a job, a worker reads the current claim k. None -> create 0.json; released or stale -> create
  (k+1).json; otherwise the job is busy. Creation is a hard link of a fully written temp file (atomic and
  exclusive: EEXIST when another worker won), so readers never see a half-written claim.
- Stale: the holder's pid is gone on this host (or is a zombie, or a new process reuses the pid), or the
  heartbeat is older than `stale_after` seconds (any host).
- A holder that finds a (k+1).json has lost its claim (it was thought dead) and stops before its next frame.
- When a job ends the holder rewrites its own claim with released: true (atomic replace).
The chain of claim files doubles as an audit trail: who rendered what, and which holders died.
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from anim.media.files import atomic_write_text

HEARTBEAT_S = 5.0
STALE_S = 60.0


def proc_start(pid: int) -> str | None:
    """The start time of `pid` from /proc (tells a reused pid from the original), None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    return fields[19] if len(fields) > 19 else None


def pid_alive(pid: int, start: str | None = None) -> bool:
    """True when `pid` runs on this host (not a zombie, and the same process when `start` is known)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (not Linux): the signal probe is all we have
    if stat[stat.rfind(")") + 2:].split()[0] == "Z":
        return False
    return start is None or proc_start(pid) == start


@dataclass
class Claim:
    """A claim this process holds on one job."""

    path: Path
    k: int
    record: dict
    history: list[dict] = field(default_factory=list)  # the earlier claims of this job, oldest first

    def lost(self) -> bool:
        """True when another worker took the job over (it judged this holder dead)."""
        return (self.path.parent / f"{self.k + 1}.json").exists()

    def beat(self) -> None:
        """Refresh the heartbeat (the claim file's mtime)."""
        try:
            os.utime(self.path)
        except FileNotFoundError:
            pass

    def release(self) -> None:
        """Mark the claim finished so the next batch call may take the job at once."""
        atomic_write_text(self.path, json.dumps({**self.record, "released": True, "released_at": time.time()}))

    def deaths(self, session: str) -> list[dict]:
        """Earlier claims of this session whose holder died without releasing (crashes while rendering)."""
        return [r for r in self.history if r.get("session") == session and not r.get("released")]


def _chain(job_dir: Path) -> list[tuple[int, Path]]:
    """The claim files of a job as (k, path), in claim order."""
    if not job_dir.is_dir():
        return []
    found = [(int(p.stem), p) for p in job_dir.glob("*.json") if p.stem.isdigit()]
    return sorted(found)


def _read(path: Path) -> tuple[dict | None, float]:
    """(record or None if unreadable, mtime); a missing file reads as ({}, 0)."""
    try:
        mtime = path.stat().st_mtime
        return json.loads(path.read_text(encoding="utf-8")), mtime
    except FileNotFoundError:
        return {}, 0.0
    except (OSError, json.JSONDecodeError):
        return None, path.stat().st_mtime if path.exists() else 0.0


def is_free(record: dict | None, mtime: float, stale_after: float, now: float | None = None) -> bool:
    """A claim that may be taken over: released, holder dead on this host, or heartbeat too old."""
    now = time.time() if now is None else now
    if record is not None and record.get("released"):
        return True
    if now - mtime > stale_after:
        return True
    if record and record.get("host") == socket.gethostname():
        return not pid_alive(int(record["pid"]), record.get("proc_start"))
    return False  # unreadable (being written without hard links) or another host with a fresh heartbeat


def held(claims_dir: Path, job: str, stale_after: float = STALE_S) -> bool:
    """True when a live worker holds `job`'s current claim (it is rendering it); readers such as the dashboard."""
    chain = _chain(Path(claims_dir) / job)
    if not chain:
        return False
    record, mtime = _read(chain[-1][1])
    return not is_free(record, mtime, stale_after)


def try_claim(claims_dir: Path, job: str, session: str, worker: str,
              stale_after: float = STALE_S) -> Claim | None:
    """Claim `job` for this process, or None when another live worker holds it (or won the race)."""
    job_dir = Path(claims_dir) / job
    job_dir.mkdir(parents=True, exist_ok=True)
    chain = _chain(job_dir)
    history = [r or {} for r, _ in (_read(p) for _, p in chain)]
    k = 0
    if chain:
        last_k, last_path = chain[-1]
        record, mtime = _read(last_path)
        if not is_free(record, mtime, stale_after):
            return None
        k = last_k + 1
    pid = os.getpid()
    record = {"pid": pid, "host": socket.gethostname(), "proc_start": proc_start(pid), "session": session,
              "worker": worker, "claimed_at": time.time(), "released": False}
    path = job_dir / f"{k}.json"
    if not _create_exclusive(path, json.dumps(record)):
        return None
    return Claim(path=path, k=k, record=record, history=history)


def _create_exclusive(path: Path, text: str) -> bool:
    """Create `path` with `text` unless it exists: hard link of a temp file, else O_CREAT|O_EXCL."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    except OSError:  # a filesystem without hard links
        return _create_excl_fd(path, text)
    finally:
        tmp.unlink(missing_ok=True)


def _create_excl_fd(path: Path, text: str) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    return True


class Heartbeat:
    """Touches a claim every `every` seconds on a daemon thread while the job runs (a context manager)."""

    def __init__(self, claim: Claim, every: float = HEARTBEAT_S) -> None:
        self.claim, self.every = claim, every
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="anim-claim-heartbeat", daemon=True)

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._done.wait(self.every):
            self.claim.beat()
