"""The dashboard's read side: a batch root (or one run folder) on disk -> one plain dict per job.

Reads only what the batch and the engine already write: ROOT/.batch/<session>/{jobs.json, results/} of a batch
call that is running, ROOT/batch.json of the last one, ROOT/.claims/<job>/ (who renders what), the run folders
(frames/, state.json, preset.resolved.yaml, log.txt, video.*) and ROOT/.control/ (anim.batch.control).
Never writes, never unpickles, never imports torch.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

from anim.batch.claims import held, pid_alive
from anim.batch.control import cancel_requested, paused, requeue_requested
from anim.batch.report import picks
from anim.batch.session import parent_gone, session_parent
from anim.media.png import is_complete_png
from anim.runfolder import LOCK

RESOLVED = "preset.resolved.yaml"
LOG_TAIL_LINES = 30
RATE_WINDOW = 8  # frames/s from the write times of the last few frames
VIDEOS = ("video.mp4", "video.webm", "video.gif")
STOPPED = ("failed", "cancelled", "interrupted")  # a requeue makes sense
_MAX_FRAMES = re.compile(r"^max_frames:\s*(\d+)\s*$", re.MULTILINE)


def is_run_folder(path: Path) -> bool:
    """A folder the engine rendered into (or is rendering into)."""
    return (path / RESOLVED).is_file() or (path / "frames").is_dir() or (path / "state.json").is_file()


def read_json(path: Path, default):
    """A JSON file's content, or `default` when missing, unreadable or half-written."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default


def live_sessions(root: Path) -> list[Path]:
    """Session folders of batch calls still running (their parent pid lives on this host; other hosts count
    as live), oldest first."""
    folder = root / ".batch"
    return [session for session in (sorted(folder.iterdir()) if folder.is_dir() else ())
            if session_parent(session) is not None and not parent_gone(session)]


def lock_held(run_dir: Path) -> bool:
    """True when a render.py process holds the run folder's lock (its pid, written in .lock, is alive)."""
    try:
        text = (run_dir / LOCK).read_text(encoding="utf-8").strip()
    except OSError:
        return False
    return text.isdigit() and pid_alive(int(text))


def max_frames(run_dir: Path) -> int | None:
    """The job's frame count: state.json's max_frames, else preset.resolved.yaml's top-level max_frames."""
    state = read_json(run_dir / "state.json", {})
    if isinstance(state, dict) and isinstance(state.get("max_frames"), int):
        return state["max_frames"]
    try:
        match = _MAX_FRAMES.search((run_dir / RESOLVED).read_text(encoding="utf-8"))
    except OSError:
        return None
    return int(match.group(1)) if match else None


def frame_indices(run_dir: Path) -> list[int]:
    """Indices of the whole PNG frames on disk, sorted."""
    folder = run_dir / "frames"
    if not folder.is_dir():
        return []
    return sorted(int(p.stem) for p in folder.glob("[0-9]*.png") if p.stem.isdigit() and is_complete_png(p))


def frame_rate(run_dir: Path, indices: list[int]) -> float | None:
    """Frames per second over the last RATE_WINDOW frames written (by file time); None with fewer than two."""
    times = sorted((run_dir / "frames" / f"{i:06d}.png").stat().st_mtime for i in indices[-RATE_WINDOW:])
    if len(times) < 2 or times[-1] <= times[0]:
        return None
    return (len(times) - 1) / (times[-1] - times[0])


def log_tail(run_dir: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last `lines` lines of log.txt (read from its last 16 KiB), '' without a log."""
    path = run_dir / "log.txt"
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, path.stat().st_size - 16384))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def status_of(job: str, root: Path, *, result: dict | None, row: dict | None, queued: bool, running: bool) -> str:
    """queued | paused | running | done | failed | cancelled | interrupted | skipped | incomplete, from the most
    current source: a requeue request, a held claim, this batch's result, its queue, the last batch's row."""
    if requeue_requested(root, job):
        return "queued"
    if running:
        return "running"
    if result is not None:
        return _row_status(result)
    if cancel_requested(root, job):
        return "cancelled"
    if queued:
        return "paused" if paused(root) else "queued"
    if row is not None:
        return _row_status(row)
    return "incomplete"


def _row_status(row: dict) -> str:
    """A report row's status, with 'skipped' split into done (finished before) and queued (not started)."""
    status = str(row.get("status", "incomplete"))
    if status == "skipped":
        return "incomplete" if row.get("error") else "done"
    return status


def job_view(root: Path, name: str, rel: str, *, result: dict | None, row: dict | None, queued: bool,
             batch: bool) -> dict:
    """Everything the page shows of one job; file paths are relative to ROOT (served under /files/)."""
    run_dir = root / rel if rel else root
    running = (held(root / ".claims", name) if batch else False) or lock_held(run_dir)
    status = status_of(name, root, result=result, row=row, queued=queued, running=running)
    indices = frame_indices(run_dir)
    total = max_frames(run_dir)
    if status == "incomplete" and total and len(indices) == total:
        status = "done"
    elif status == "incomplete" and not batch:
        status = "interrupted"  # a single render that stopped before its last frame
    rate = frame_rate(run_dir, indices) if running and indices else None
    prefix = f"{rel}/" if rel else ""
    frame = (lambda i: f"{prefix}frames/{i:06d}.png")
    record = result or row or {}
    video = next((prefix + v for v in VIDEOS if (run_dir / v).is_file()), None)
    return {
        "name": name, "status": status, "frames": len(indices), "total": total,
        "fps": round(rate, 3) if rate else None,
        "eta_s": round((total - len(indices)) / rate, 1) if rate and total else None,
        "latest": frame(indices[-1]) if indices else None,
        "picks": [frame(i) for i in picks(indices)] if status == "done" else [],
        "video": video if status == "done" else None,
        "error": record.get("error") if status != "done" else None,
        "log_tail": log_tail(run_dir) if status in STOPPED else "",
        "cancel_requested": cancel_requested(root, name) if batch else False,
        "actions": _actions(status, batch),
    }


def _actions(status: str, batch: bool) -> list[str]:
    """The buttons that make sense for a job in this state (none on a single run folder)."""
    if not batch:
        return []
    if status in STOPPED:
        return ["requeue"]
    if status in ("running", "queued", "paused"):
        return ["cancel"]
    return []


def scan(root: Path) -> dict:
    """The whole dashboard state of ROOT: a batch root or a single run folder."""
    root = Path(root)
    if is_run_folder(root) and not (root / "batch.json").exists() and not (root / ".batch").is_dir():
        view = job_view(root, root.name, "", result=None, row=None, queued=False, batch=False)
        return {"root": str(root), "batch": False, "paused": False, "running_batches": 0, "jobs": [view],
                "time": time.time()}
    sessions = live_sessions(root)
    order: list[str] = []
    queued: set[str] = set()
    results: dict[str, dict] = {}
    for session in sessions:
        names = [n for n in read_json(session / "jobs.json", []) if isinstance(n, str)]
        order += [n for n in names if n not in order]
        queued.update(names)
        for name in names:
            found = read_json(session / "results" / f"{name}.json", None)
            if isinstance(found, dict):
                results[name] = found
    rows = {r["name"]: r for r in read_json(root / "batch.json", []) if isinstance(r, dict)
            and isinstance(r.get("name"), str)}
    order += [n for n in rows if n not in order]
    order += sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                    and p.name not in order and is_run_folder(p)) if root.is_dir() else []
    jobs = [job_view(root, n, n, result=results.get(n), row=rows.get(n), queued=n in queued, batch=True)
            for n in order if "/" not in n and not n.startswith(".")]
    return {"root": str(root), "batch": True, "paused": paused(root), "running_batches": len(sessions),
            "jobs": jobs, "time": time.time()}
