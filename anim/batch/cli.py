"""`render.py batch PATH... [options] [key=value ...]`: render many presets, skip finished ones, resume the rest.

Flow: presets -> jobs (anim.batch.jobs) -> a backend renders them (local worker processes, anim.batch.local,
or Ray tasks, anim.batch.ray; both run anim.batch.run.run_job) -> rows -> reports (anim.batch.report).
Each job renders into ROOT/<preset stem>/, a normal run folder (render.py --resume works on it too).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from anim.batch.claims import HEARTBEAT_S, STALE_S
from anim.batch.jobs import Job, discover_jobs, free_bytes
from anim.batch.local import run_local, threads_per_worker
from anim.batch.report import counts, summary_table, write_reports
from anim.batch.run import Options, result
from anim.batch.session import Session
from anim.batch.worker import worker_label
from anim.media.png import is_complete_png

EXAMPLES = """examples:
  python render.py batch presets/                       # every presets/*.yaml, one worker per GPU
  python render.py batch a.yaml b.yaml --out outputs/night steps=20 --retries 1
  python render.py batch presets/ --out outputs/night   # again: finished jobs are skipped, others resume
  python render.py batch presets/ --gpus 0,2            # workers on GPUs 0 and 2 only
  python render.py batch presets/ --ray auto            # one Ray task per job (pip install 'anim[cluster]')
  python render.py batch presets/ --lockstep 8          # up to 8 jobs per GPU share each UNet call

each job renders into ROOT/<preset stem>/ (a second preset with the same stem gets <stem>-2, in the order
the presets are listed); run the same command with the same --out to continue a batch
job status in batch.json: done | failed | skipped (finished before; with a reason: not started) | interrupted
| cancelled (ROOT/.control/cancel/<job>; `render.py serve ROOT` writes it, and pause/requeue files too)
exit code: 0 all jobs finished, 1 a job failed or the disk guard stopped the queue, 2 usage error,
130 stopped by SIGINT/SIGTERM (run the same command with the same --out to continue)
"""


@dataclass
class Outcome:
    """What a batch did: one row per job (in job order) and why it stopped early, if it did."""

    rows: list[dict]
    stopped: str | None = None
    drained: str | None = None

    def exit_code(self) -> int:
        if self.stopped:
            return 130
        if self.drained or any(r["status"] == "failed" for r in self.rows):
            return 1
        return 0


def build_parser() -> argparse.ArgumentParser:
    """The batch subcommand's arguments."""
    parser = argparse.ArgumentParser(
        prog="render.py batch", epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Render many presets; finished jobs are skipped, half-done ones resume, failures are recorded.",
    )
    parser.add_argument("items", nargs="+", metavar="PATH|key=value",
                        help="preset files or folders of them (*.yaml, sorted); key=value overrides every job")
    parser.add_argument("--out", type=Path, help="batch root (default outputs/batch-<time>/); job folders ROOT/<stem>/")
    parser.add_argument("--retries", type=int, default=0, help="retry a failed job N times (not preset/input errors)")
    parser.add_argument("--gpus", metavar="0,1,...", help="CUDA devices, one worker each (default: all visible)")
    parser.add_argument("--workers", type=int, metavar="N", help="N CPU workers, no GPU (testing, CPU machines)")
    parser.add_argument("--ray", metavar="auto|local|ADDRESS", help="one Ray task per job instead of local workers")
    parser.add_argument("--lockstep", type=int, default=1, metavar="K",
                        help="render up to K jobs with the same model and size together, batching their UNet "
                             "calls (more frames/s on a GPU; a group resumes as a group)")
    parser.add_argument("--force", action="store_true", help="continue jobs whose preset changed since they started")
    return parser


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse and check the combination of options (usage errors exit 2 through argparse)."""
    parser = build_parser()
    args = parser.parse_intermixed_args(argv)
    args.paths = [i for i in args.items if "=" not in i or Path(i).exists()]
    args.overrides = [i for i in args.items if i not in args.paths]
    if not args.paths:
        parser.error("no preset files or folders given")
    if args.retries < 0:
        parser.error("--retries must be 0 or more")
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be 1 or more")
    if args.lockstep < 1:
        parser.error("--lockstep must be 1 or more")
    if args.ray and args.lockstep > 1:
        parser.error("--lockstep works with local workers (--gpus/--workers), not with --ray yet")
    if args.ray and (args.gpus or args.workers):
        parser.error("--ray picks its own workers: leave out --gpus/--workers")
    if args.gpus is not None and args.workers is not None:
        parser.error("--gpus and --workers exclude each other")
    if args.gpus is not None and not [g for g in args.gpus.split(",") if g.strip()]:
        parser.error("--gpus needs device ids, e.g. --gpus 0,1")
    return args


def visible_gpus() -> list[str]:
    """CUDA device ids as CUDA_VISIBLE_DEVICES spells them (respecting a mask already set); [] without CUDA."""
    import torch  # only to count devices; workers import their own after choosing one

    n = torch.cuda.device_count()
    mask = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return mask[:n] if mask else [str(i) for i in range(n)]


def pick_devices(gpus: str | None, workers: int | None) -> list[str]:
    """One entry per worker: a CUDA id, or '' for a CPU worker (GPUs hidden from it)."""
    if workers:
        return [""] * workers
    if gpus:
        return [g.strip() for g in gpus.split(",") if g.strip()]
    return visible_gpus() or [""]


def run_batch(jobs: list[Job], root: Path, *, overrides: tuple[str, ...] = (), retries: int = 0,
              force: bool = False, gpus: str | None = None, workers: int | None = None, ray: str | None = None,
              free_space: Callable[[Path], int] = free_bytes, render: Callable | None = None,
              stale_after: float = STALE_S, heartbeat_s: float = HEARTBEAT_S, lockstep: int = 1) -> Outcome:
    """Render `jobs` under `root` and write the reports; the in-process entry point (tests use it)."""
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    session = Session.create(root)
    session.write_jobs([job.name for job in jobs])
    devices = [] if ray else pick_devices(gpus, workers)
    opts = Options(root=root, session=session, overrides=tuple(overrides), retries=retries, force=force,
                   threads=threads_per_worker(len(devices), devices), free_space=free_space,
                   stale_after=stale_after, heartbeat_s=heartbeat_s, render=render, lockstep=lockstep)
    if ray:
        from anim.batch.ray import run_ray

        results = run_ray(jobs, opts, ray)
    else:
        labels = ", ".join(worker_label(d, i) for i, d in enumerate(devices))
        print(f"batch: {len(jobs)} job(s) -> {root} (workers: {labels})", flush=True)
        results = run_local(jobs, opts, devices)
    outcome = Outcome(rows=[], stopped=session.stopping(), drained=session.draining())
    outcome.rows = [results.get(job.name) or _missing(job, outcome, root) for job in jobs]
    write_reports(root, outcome.rows + earlier_rows(root, jobs))
    session.remove()
    return outcome


def _missing(job: Job, outcome: Outcome, root: Path) -> dict:
    """The row of a job no worker reported: not started because the batch stopped, or lost with its worker
    (with the frames its run folder holds)."""
    frames = len([p for p in (root / job.name / "frames").glob("[0-9]*.png") if is_complete_png(p)])
    if outcome.stopped or outcome.drained:
        why = outcome.stopped or outcome.drained
        return result(job, "skipped", error=f"not started: {why}", frames=frames)
    return result(job, "failed", frames=frames, attempts=1,
                  error="no result: its worker exited without reporting (see the log above)")


EARLIER = "from an earlier batch: its preset is not in this one"


def earlier_rows(root: Path, jobs: list[Job]) -> list[dict]:
    """Rows of an earlier batch on this root whose presets are not in this one (deleted or not listed): kept in
    the reports, marked, so a finished job never silently disappears."""
    try:
        before = json.loads((root / "batch.json").read_text())
    except (OSError, ValueError):
        return []
    names = {job.name for job in jobs}
    kept = []
    for row in before if isinstance(before, list) else []:
        if isinstance(row, dict) and row.get("name") not in names and (root / str(row.get("name"))).is_dir():
            error = str(row.get("error") or "")
            if not error.startswith(EARLIER):  # marked once, however many batches keep it
                error = f"{EARLIER}; {error}" if error else EARLIER
            kept.append({**row, "error": error})
    return kept


def default_root() -> Path:
    """outputs/batch-<YYYYmmdd-HHMMSS>/"""
    return Path("outputs") / f"batch-{time.strftime('%Y%m%d-%H%M%S')}"


def batch_main(argv: list[str]) -> int:
    """`render.py batch ...`: run the batch, print the summary, return the exit code."""
    args = parse_args(argv)
    jobs = discover_jobs(args.paths)
    root = args.out or default_root()
    started = time.perf_counter()
    outcome = run_batch(jobs, root, overrides=tuple(args.overrides), retries=args.retries, force=args.force,
                        gpus=args.gpus, workers=args.workers, ray=args.ray, lockstep=args.lockstep)
    print()
    print(summary_table(outcome.rows))
    print(f"\n{len(jobs)} job(s) in {time.perf_counter() - started:.1f} s: {counts(outcome.rows)}; "
          f"reports in {Path(root).resolve()}/ (batch.json, batch.md, contact_sheet.png)")
    if outcome.stopped or outcome.drained:
        print(f"batch stopped ({outcome.stopped or outcome.drained}); run the same command with --out {root} "
              "to continue", file=sys.stderr)
    return outcome.exit_code()
