"""`batch --lockstep K`: a worker claims up to K compatible jobs and renders them together (anim.engine.group).

Groups form in job order: the first pending job, then later pending jobs with the same models and size
(anim.engine.group.lockstep_key). A group is recorded in its run folders; a later batch re-forms exactly that
group from its first member (other workers leave the members alone), so a resumed group gives the same
bytes as an uninterrupted one. A member that fails with a retryable error is retried alone.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

from anim.batch.claims import Claim, Heartbeat, try_claim
from anim.batch.jobs import (
    FrameWatch,
    Job,
    complete_frames,
    is_finished,
    missing_frames,
)
from anim.batch.process import WorkerProcess
from anim.batch.run import (
    Options,
    StopCheck,
    ended_row,
    log_line,
    one_line,
    prepare,
    quiet_in,
    render_with_retries,
)
from anim.errors import AnimError


@dataclass
class Member:
    """A claimed, opened job of a group."""

    job: Job
    claim: Claim
    run: object
    attempts: int
    finished_before: bool


def _recorded(job: Job, opts: Options) -> list[str] | None:
    """The recorded group of a job's run folder, when it has more than one member."""
    from anim.engine.group import read_group

    members = read_group(opts.root / job.name)
    return members if members and len(members) > 1 else None


def _formed_elsewhere(job: Job, jobs: list[Job], opts: Options) -> bool:
    """A member of a recorded group other than its first: the group is formed from its first member
    (unless that one already has its result, and cannot lead any more)."""
    members = _recorded(job, opts)
    if not members or members[0] == job.name:
        return False
    leader = next((j for j in jobs if j.name == members[0]), None)
    return leader is not None and opts.session.read_result(leader.name) is None


def run_group(job: Job, jobs: list[Job], opts: Options, worker: str, proc: WorkerProcess) -> list[dict] | None:
    """Claim `job` and its group, render, record each member's rows; None if `job` is held by another worker
    or belongs to a recorded group that its first member forms."""
    if _formed_elsewhere(job, jobs, opts):
        return None
    rows: list[dict] = []
    lead = _claim(job, opts, worker, rows, skip_finished=_recorded(job, opts) is None)
    if lead is None:
        return rows or None
    members = [lead] + _companions(lead, jobs, opts, worker, rows)
    if len(members) == 1:
        row = render_with_retries(lead.job, lead.run, opts, lead.claim, worker,
                                  len(complete_frames(lead.run)), lead.attempts, proc)
        return rows + _record([(lead, row)], opts)
    return rows + _record(_render_members(members, opts, worker, proc), opts)


def _claim(job: Job, opts: Options, worker: str, rows: list[dict], *, skip_finished: bool) -> Member | None:
    """Claim and prepare one job; a job that ends at once (finished, broken preset) adds its row to `rows`."""
    claim = try_claim(opts.claims_dir, job.name, opts.session.id, worker, opts.stale_after)
    if claim is None:
        return None
    prepared = prepare(job, opts, claim, worker, skip_finished=skip_finished)
    if isinstance(prepared, dict):
        opts.session.write_result(job.name, prepared)
        claim.release()
        rows.append(prepared)
        return None
    run, attempts = prepared
    return Member(job, claim, run, attempts, is_finished(run))


def _companions(lead: Member, jobs: list[Job], opts: Options, worker: str, rows: list[dict]) -> list[Member]:
    """The other members: the recorded group of `lead`, or up to K-1 later pending jobs that fit with it."""
    from anim.engine.group import lockstep_key

    recorded = _recorded(lead.job, opts)
    if recorded:
        named = {j.name: j for j in jobs}
        others = [named[n] for n in recorded[1:] if n in named and opts.session.read_result(n) is None]
        found = [m for m in (_claim(j, opts, worker, rows, skip_finished=False) for j in others) if m is not None]
        if len(found) != len(recorded) - 1:
            log_line(worker, f"{lead.job.name}: its lockstep group {recorded} cannot be re-formed whole; frames from "
                         "here on may differ in the last bits from an uninterrupted render")
        return found
    key = lockstep_key(lead.run.preset)
    if key is None or opts.lockstep <= 1:
        return []
    found = []
    for job in jobs:
        if len(found) + 1 >= opts.lockstep:
            break
        if job.name == lead.job.name or opts.session.read_result(job.name) is not None or _recorded(job, opts):
            continue
        if _key_of(job, opts) != key:
            continue
        member = _claim(job, opts, worker, rows, skip_finished=True)
        if member is not None:
            found.append(member)
    return found


def _key_of(job: Job, opts: Options):
    """A job's lockstep key from its preset file (None when it does not load: it fails in its own turn)."""
    from anim.engine.group import lockstep_key
    from anim.plan import load_preset

    try:
        return lockstep_key(load_preset(job.preset, list(opts.overrides)).preset)
    except AnimError:
        return None


def _render_members(members: list[Member], opts: Options, worker: str,
                    proc: WorkerProcess) -> list[tuple[Member, dict | None]]:
    """Render the group with heartbeats and stop checks; each member's row (None: it lost its claim)."""
    from anim.engine.group import GroupUnsupported

    before = [len(complete_frames(m.run)) for m in members]
    stops = [StopCheck(opts.session, m.claim, FrameWatch(m.run, missing_frames(m.run)), proc.terminated)
             for m in members]
    with contextlib.ExitStack() as stack:
        for m in members:
            stack.enter_context(Heartbeat(m.claim, opts.heartbeat_s))
        started = time.perf_counter()
        try:
            errors = group_render([m.run for m in members], stops, opts, proc)
        except GroupUnsupported as exc:  # e.g. an SDXL model: render the members one by one
            log_line(worker, f"{exc}; rendering the {len(members)} jobs one by one")
            return [(m, render_with_retries(m.job, m.run, opts, m.claim, worker, n0, m.attempts, proc))
                    for m, n0 in zip(members, before)]
        seconds = time.perf_counter() - started
        return [(m, _row(m, stop, n0, error, seconds, opts, worker, proc))
                for m, stop, n0, error in zip(members, stops, before, errors)]


def _row(m: Member, stop: StopCheck, before: int, error, seconds: float, opts: Options, worker: str,
         proc: WorkerProcess) -> dict | None:
    """A member's result: done (skipped when it had all its frames), interrupted, failed, or retried alone
    when the error may pass."""
    if error is None:
        try:
            stop.watch.check(final=True)  # the last frames' black-frame check
        except AnimError as exc:
            error = exc
    attempts = m.attempts + 1
    if error is None or stop.reason is not None or isinstance(error, AnimError):
        row = ended_row(m.job, m.run, stop, error, before, attempts, worker, seconds)
        if row is not None and row["status"] == "done" and m.finished_before and row["rendered"] == 0:
            row["status"] = "skipped"
        return row
    log_line(worker, f"{m.job.name}: {one_line(error)} in its lockstep group; retrying alone")
    return render_with_retries(m.job, m.run, opts, m.claim, worker, before, attempts, proc)


def group_render(runs: list, stops: list, opts: Options, proc: WorkerProcess) -> list[BaseException | None]:
    """The real group render: anim.engine.group.render_group with this process's model cache, output kept quiet."""
    from anim.engine.group import render_group

    cache = proc.cache(opts.threads)
    with quiet_in(opts.cwd):
        return render_group(runs, cache=cache, should_stop=stops)


def _record(pairs: list[tuple[Member, dict | None]], opts: Options) -> list[dict]:
    """Write each member's row to the session and release its claim; the rows written."""
    rows = []
    for m, row in pairs:
        if row is not None:
            opts.session.write_result(m.job.name, row)
            rows.append(row)
        m.run.close()
        m.claim.release()
    return rows
