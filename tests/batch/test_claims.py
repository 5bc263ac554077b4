"""The claim protocol: exclusive, released, taken over from dead or silent holders, lost claims noticed."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

from anim.batch.claims import Heartbeat, is_free, pid_alive, try_claim


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def fake_claim(claims, job, k, **record):
    """Write claim k of `job` as some other worker would have."""
    path = claims / job / f"{k}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    base = {"pid": os.getpid(), "host": os.uname().nodename, "session": "s0", "worker": "w", "released": False}
    path.write_text(json.dumps({**base, **record}))
    return path


def test_claim_is_exclusive_until_released(tmp_path):
    first = try_claim(tmp_path, "job", "s1", "a")
    assert first is not None and first.k == 0 and first.path.name == "0.json"
    assert try_claim(tmp_path, "job", "s1", "b") is None  # held by a live process (this one)
    first.release()
    second = try_claim(tmp_path, "job", "s2", "b")
    assert second is not None and second.k == 1 and first.lost()


def test_claims_of_different_jobs_are_independent(tmp_path):
    assert try_claim(tmp_path, "a", "s", "w") is not None
    assert try_claim(tmp_path, "b", "s", "w") is not None


def test_dead_holder_on_this_host_is_taken_over_and_counted(tmp_path):
    fake_claim(tmp_path, "job", 0, pid=dead_pid(), session="s1")
    claim = try_claim(tmp_path, "job", "s1", "b")
    assert claim is not None and claim.k == 1
    assert len(claim.deaths("s1")) == 1 and claim.deaths("other-session") == []


def test_released_claims_are_not_deaths(tmp_path):
    fake_claim(tmp_path, "job", 0, pid=dead_pid(), session="s1", released=True)
    claim = try_claim(tmp_path, "job", "s1", "b")
    assert claim is not None and claim.deaths("s1") == []


def test_other_host_is_trusted_until_its_heartbeat_is_stale(tmp_path):
    path = fake_claim(tmp_path, "job", 0, pid=1, host="render-node-7")
    assert try_claim(tmp_path, "job", "s", "w", stale_after=60) is None
    old = time.time() - 120
    os.utime(path, (old, old))
    claim = try_claim(tmp_path, "job", "s", "w", stale_after=60)
    assert claim is not None and claim.k == 1


def test_reused_pid_is_not_the_holder(tmp_path):
    fake_claim(tmp_path, "job", 0, pid=os.getpid(), proc_start="1")  # our pid, but another start time
    assert try_claim(tmp_path, "job", "s", "w") is not None


def test_is_free_rules():
    now = time.time()
    me = {"pid": os.getpid(), "host": os.uname().nodename}
    assert not is_free(me, now, 60, now)
    assert is_free({**me, "released": True}, now, 60, now)
    assert is_free(me, now - 61, 60, now)
    assert not is_free(None, now, 60, now)  # unreadable but fresh: being written
    assert pid_alive(os.getpid()) and not pid_alive(dead_pid())


def test_a_race_for_one_job_has_one_winner(tmp_path):
    fake_claim(tmp_path, "job", 0, pid=dead_pid())  # everybody sees a dead holder at once
    barrier, won = threading.Barrier(16), []

    def contend(i):
        barrier.wait()
        claim = try_claim(tmp_path, "job", "s", f"w{i}")
        if claim is not None:
            won.append(claim)

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and won[0].k == 1
    assert sorted(p.name for p in (tmp_path / "job").iterdir()) == ["0.json", "1.json"]  # no temp files left


def test_holder_notices_a_takeover(tmp_path):
    claim = try_claim(tmp_path, "job", "s", "a")
    assert not claim.lost()
    fake_claim(tmp_path, "job", 1)
    assert claim.lost()


def test_heartbeat_touches_the_claim(tmp_path):
    claim = try_claim(tmp_path, "job", "s", "a")
    old = time.time() - 100
    os.utime(claim.path, (old, old))
    with Heartbeat(claim, every=0.02):
        time.sleep(0.1)
    assert time.time() - claim.path.stat().st_mtime < 5


def test_session_folders_of_dead_batch_parents_are_swept(tmp_path):
    from anim.batch.session import Session

    host = os.uname().nodename
    dead = tmp_path / ".batch" / f"20260101-000000-{host}-{dead_pid()}-abc123"
    live = tmp_path / ".batch" / f"20260101-000000-{host}-{os.getpid()}-abc123"
    dead.mkdir(parents=True)
    live.mkdir()
    session = Session.create(tmp_path)
    assert sorted(p.name for p in (tmp_path / ".batch").iterdir()) == sorted([live.name, session.id])
    session.stop("first")
    session.stop("second")
    assert session.stopping() == "first" and session.draining() is None
    session.remove()
    assert live.exists() and not session.dir.exists()
