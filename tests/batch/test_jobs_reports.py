"""Job discovery, size estimate, black-frame check, reports and the command line's usage errors."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from anim.batch.cli import Outcome, parse_args, pick_devices
from anim.batch.jobs import (
    BlackFrameError,
    FrameWatch,
    discover_jobs,
    estimate_bytes,
    is_black,
)
from anim.batch.report import (
    contact_sheet,
    counts,
    markdown,
    picks,
    summary_table,
    write_reports,
)
from anim.batch.run import is_out_of_memory, result
from anim.cli import main
from anim.errors import PresetError
from anim.media.png import png_bytes
from anim.preset import Preset
from tests.batch.util import write_preset


def test_folders_are_sorted_and_duplicate_stems_get_a_suffix(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for name in ("zoom", "alpha"):
        write_preset(a, name)
    write_preset(b, "zoom")
    write_preset(b, "zoom-2")
    (a / "notes.txt").write_text("not a preset")
    jobs = discover_jobs([str(a), str(b), str(a / "alpha.yaml")])  # alpha twice: one job
    # b/ sorts as zoom-2.yaml, zoom.yaml; the second `zoom` finds zoom-2 taken too
    assert [j.name for j in jobs] == ["alpha", "zoom", "zoom-2", "zoom-3"]
    assert jobs[3].preset == str((b / "zoom.yaml").resolve())


def test_missing_paths_and_empty_folders_are_usage_errors(tmp_path):
    with pytest.raises(PresetError, match="no such preset"):
        discover_jobs([str(tmp_path / "nope.yaml")])
    with pytest.raises(PresetError, match="no \\*.yaml"):
        discover_jobs([str(tmp_path)])


def test_estimate_scales_with_frames_and_pixels():
    preset = Preset(width=512, height=256, prompts={0: "x"})
    one, ten = estimate_bytes(preset, 1), estimate_bytes(preset, 10)
    assert ten - one == pytest.approx(9 * 512 * 256 * 1.5 * 1.25, rel=1e-6)
    assert estimate_bytes(preset, 0) > 0  # the plan, log and video temp files still need room


def write_frame(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.full((8, 8, 3), value, np.uint8)
    path.write_bytes(png_bytes(image, "p", {"frame": 0}))


class FakeRun:
    def __init__(self, root):
        self.dir = root

    def frame_path(self, i):
        return self.dir / "frames" / f"{i:06d}.png"


def test_frame_watch_stops_at_the_first_black_frame(tmp_path):
    run = FakeRun(tmp_path)
    watch = FrameWatch(run, [0, 1, 2])
    write_frame(run.frame_path(0), 40)
    watch.check()  # frame 0 fine, frame 1 not written yet
    assert watch.pending == [1, 2]
    write_frame(run.frame_path(1), 0)
    assert is_black(run.frame_path(1))
    with pytest.raises(BlackFrameError, match="frame 1"):
        watch.check()
    assert not run.frame_path(1).exists() and (tmp_path / "frames" / "000001.black.png").exists()
    watch.check(final=True)  # frame 2 never came: nothing to check


def test_out_of_memory_is_recognised():
    assert is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(MemoryError())
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


def fake_rows(tmp_path):
    from anim.batch.jobs import Job

    for value, name in ((30, "a"), (200, "c")):
        for f in range(5):
            write_frame(tmp_path / name / "frames" / f"{f:06d}.png", value + f)
    return [result(Job("a", "a.yaml"), "done", frames=5, seconds=1.25),
            result(Job("b", "b.yaml"), "failed", error="PresetError: b.yaml:3: x | y"),
            result(Job("c", "c.yaml"), "skipped", frames=5),
            result(Job("d", "d.yaml"), "skipped", error="not started: disk nearly full")]


def test_reports(tmp_path):
    data = fake_rows(tmp_path)
    written = write_reports(tmp_path, data)
    assert [p.name for p in written] == ["batch.json", "batch.md", "contact_sheet.png"]
    stored = json.loads((tmp_path / "batch.json").read_text())
    assert [(r["name"], r["status"]) for r in stored] == [("a", "done"), ("b", "failed"), ("c", "skipped"),
                                                          ("d", "skipped")]
    assert {"preset", "status", "frames", "seconds", "error"} <= set(stored[0])
    text = markdown(tmp_path, data)
    assert "| [b](b/) | failed | 0 | 0.0 | PresetError: b.yaml:3: x \\| y |" in text
    sheet = Image.open(io.BytesIO(contact_sheet(tmp_path, data)))
    assert sheet.height > 2 * 160 and sheet.height < 3 * 160 + 100  # two finished jobs: a and c
    assert "a " in summary_table(data) and "failed" in summary_table(data)
    assert counts(data) == "1 done, 1 skipped, 1 not started, 1 failed"
    assert picks([0, 1, 2, 3, 4]) == [0, 2, 4] and picks([7]) == [7] and picks([]) == []


def test_exit_codes():
    done, failed = {"status": "done"}, {"status": "failed"}
    assert Outcome([done]).exit_code() == 0
    assert Outcome([done, failed]).exit_code() == 1
    assert Outcome([done], drained="disk").exit_code() == 1
    assert Outcome([done, failed], stopped="SIGTERM").exit_code() == 130


def test_arguments(tmp_path):
    args = parse_args([str(tmp_path), "steps=3", "--out", "x", "motion.zoom=0:(1.1)", "--retries", "2"])
    assert args.paths == [str(tmp_path)] and args.overrides == ["steps=3", "motion.zoom=0:(1.1)"]
    assert args.retries == 2
    assert pick_devices("0, 2", None) == ["0", "2"] and pick_devices(None, 3) == ["", "", ""]


@pytest.mark.parametrize("argv", [["batch"], ["batch", "x.yaml", "--ray", "auto", "--workers", "2"],
                                  ["batch", "x.yaml", "--gpus", "0", "--workers", "1"],
                                  ["batch", "x.yaml", "--retries", "-1"], ["batch", "steps=2"]])
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2


def test_missing_preset_is_one_line_exit_2(tmp_path, capsys):
    assert main(["batch", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("anim: error: batch: no such preset") and "\n" not in err


def test_missing_ray_is_one_line(monkeypatch):
    import sys

    from anim.batch.ray import ClusterError, import_ray

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ClusterError, match=r"pip install 'anim\[cluster\]'"):
        import_ray()
