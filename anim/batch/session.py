"""One batch call's shared state on disk: ROOT/.batch/<session id>/ with stop/drain flags and job results.

Files (not pipes) so that local worker processes and Ray tasks on other machines (sharing ROOT) see the
same flags and report the same way. Every write is atomic; a reader sees nothing or the whole file.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from anim.media.files import atomic_write_text

STOP = "stop"  # finish the current frame, then stop every job
DRAIN = "drain"  # start no new job (the disk guard); running jobs finish


def session_parent(folder: Path) -> tuple[str, int] | None:
    """(host, pid) of the batch parent that made a session folder, or None when its name does not parse. A
    session id reads `<YYYYmmdd-HHMMSS>-<host>-<pid>-<token>`."""
    head, _, _token = folder.name.rpartition("-")
    head, _, pid = head.rpartition("-")
    return (head[16:], int(pid)) if pid.isdigit() else None


def parent_gone(folder: Path) -> bool:
    """Whether a session folder's batch parent was on this host and is gone (killed); another host's parent is
    not known gone."""
    from anim.batch.claims import pid_alive

    parent = session_parent(folder)
    return parent is not None and parent[0] == socket.gethostname() and not pid_alive(parent[1])


def sweep(root: Path) -> None:
    """Delete the session folders that batch parents on this host left when they were killed."""
    for folder in (root / ".batch").glob("*") if (root / ".batch").is_dir() else ():
        if parent_gone(folder):
            shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class Session:
    """Paths of one batch call; picklable, handed to every worker and Ray task."""

    root: Path
    id: str

    @classmethod
    def create(cls, root: Path) -> "Session":
        """A fresh session folder under ROOT/.batch/ (the id names the time, host and pid)."""
        sweep(Path(root))
        stamp = time.strftime("%Y%m%d-%H%M%S")
        session = cls(root=Path(root), id=f"{stamp}-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}")
        (session.dir / "results").mkdir(parents=True, exist_ok=True)
        return session

    @property
    def dir(self) -> Path:
        return self.root / ".batch" / self.id

    def stop(self, reason: str) -> None:
        """Ask every job to stop after its current frame (the first reason is kept)."""
        self._flag(STOP, reason)

    def drain(self, reason: str) -> None:
        """Start no further job (the first reason is kept)."""
        self._flag(DRAIN, reason)

    def stopping(self) -> str | None:
        """The stop reason, or None; cheap enough to ask before every frame."""
        return self._read_flag(STOP)

    def draining(self) -> str | None:
        """The drain reason, or None."""
        return self._read_flag(DRAIN)

    def write_result(self, name: str, result: dict) -> None:
        """Record a job's outcome for the parent (one JSON file per job)."""
        atomic_write_text(self.dir / "results" / f"{name}.json", json.dumps(result, indent=1))

    def read_result(self, name: str) -> dict | None:
        """A job's recorded outcome in this session, or None."""
        path = self.dir / "results" / f"{name}.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def forget_result(self, name: str) -> None:
        """Drop a job's outcome so the workers see it pending again (a requeue, anim.batch.control)."""
        (self.dir / "results" / f"{name}.json").unlink(missing_ok=True)

    def write_jobs(self, names: list[str]) -> None:
        """jobs.json: this call's job names in queue order, for readers that list the queue (the dashboard)."""
        atomic_write_text(self.dir / "jobs.json", json.dumps(names))

    def remove(self) -> None:
        """Delete the session folder once batch.json holds everything (and .batch/ when empty)."""
        shutil.rmtree(self.dir, ignore_errors=True)
        try:
            self.dir.parent.rmdir()
        except OSError:
            pass  # another session is running or left its folder

    def _flag(self, name: str, reason: str) -> None:
        if self._read_flag(name) is None:
            atomic_write_text(self.dir / name, reason)

    def _read_flag(self, name: str) -> str | None:
        path = self.dir / name
        if not path.exists():
            return None
        try:
            return path.read_text(encoding="utf-8") or name
        except FileNotFoundError:
            return None
