"""`render.py batch --lockstep K`: compatible jobs render as recorded groups, resume as groups, skip when done."""
from __future__ import annotations

import json

import pytest

from tests.batch.util import batch_cli, frame_bytes, mtimes, rows, write_preset


def _presets(folder):
    """g1-g4 fit together (64x64 tiny; g4 is longer and uses cadence), big does not (128x128), bad is broken."""
    for i in (1, 2, 3):
        write_preset(folder, f"g{i}", seed=i, prompts={0: f"a cabin, take {i}"})
    write_preset(folder, "g4", seed=4, max_frames=5, cadence=2)
    write_preset(folder, "big", width=128, height=128)
    (folder / "bad.yaml").write_text((folder / "g1.yaml").read_text() + "zoom_typo: 1\n")
    return folder


GROUP = ["bad", "big", "g1", "g2", "g3", "g4"]  # job order: sorted file names


def _members(run_dir):
    path = run_dir / "lockstep.json"
    return json.loads(path.read_text())["members"] if path.exists() else None


@pytest.mark.slow  # ~45-60 s; tests/test_golden.py renders a lockstep batch in the default suite
def test_groups_form_render_and_resume_exactly(tmp_path):
    folder, root = _presets(tmp_path / "presets"), tmp_path / "out"
    first = batch_cli(folder, "--out", root, "--workers", "1", "--lockstep", "4")
    assert first.returncode == 1, first.stderr  # `bad` fails
    table = rows(root)
    assert {n: r["status"] for n, r in table.items()} == {"bad": "failed", "big": "done", "g1": "done",
                                                          "g2": "done", "g3": "done", "g4": "done"}
    assert all((root / n / "video.mp4").exists() for n in GROUP if n != "bad")
    assert [_members(root / n) for n in ("g1", "g2", "g3", "g4")] == [["g1", "g2", "g3", "g4"]] * 4
    assert _members(root / "big") is None  # a group of one is not recorded: it renders as a plain job
    expected = {n: frame_bytes(root / n) for n in GROUP if n != "bad"}
    # the same batch again: nothing to do
    before = mtimes(root)
    again = batch_cli(folder, "--out", root, "--workers", "1", "--lockstep", "4")
    assert again.returncode == 1 and mtimes(root) == before
    assert {r["status"] for n, r in rows(root).items() if n != "bad"} == {"skipped"}
    # a crash as the frame writers may leave it: members at different frames, one PNG cut short
    for name, keep in (("g1", 1), ("g2", 2), ("g4", 3)):
        for png in sorted((root / name / "frames").glob("*.png"))[keep:]:
            png.unlink()
    cut = root / "g3" / "frames" / "000002.png"
    cut.write_bytes(cut.read_bytes()[:120])
    (root / "g2" / "video.mp4").unlink()
    resumed = batch_cli(folder, "--out", root, "--workers", "1", "--lockstep", "4")
    assert resumed.returncode == 1, resumed.stderr
    assert {n: r["status"] for n, r in rows(root).items()} == {"bad": "failed", "big": "skipped", "g1": "done",
                                                               "g2": "done", "g3": "done", "g4": "done"}
    assert {n: frame_bytes(root / n) for n in expected} == expected  # restarted at frame 0 (cadence 2), same bytes


def test_two_workers_split_groups_and_render_each_job_once(tmp_path):
    folder, root = tmp_path / "presets", tmp_path / "out"
    for i in range(1, 7):
        write_preset(folder, f"p{i}", seed=i)
    result = batch_cli(folder, "--out", root, "--workers", "2", "--lockstep", "3")
    assert result.returncode == 0, result.stderr
    table = rows(root)
    assert {r["status"] for r in table.values()} == {"done"}
    groups = {tuple(_members(root / n) or [n]) for n in table}
    assert sorted(n for g in groups for n in g) == sorted(table)  # disjoint groups that cover every job
    assert all(len(g) <= 3 for g in groups)
    for name in table:  # one claim per job: nobody rendered a job twice
        assert sorted(p.name for p in (root / ".claims" / name).iterdir()) == ["0.json"]
