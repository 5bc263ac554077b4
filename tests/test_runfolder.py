"""Run.write_plan: the plan is written once per preset and kept on resume; a changed preset rewrites it."""
from __future__ import annotations

import yaml

from anim.runfolder import open_run


def test_plan_is_kept_on_resume_and_rewritten_when_the_preset_changes(tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text(yaml.safe_dump({"model": "tiny", "width": 64, "height": 64, "max_frames": 5,
                                      "prompts": {0: "a cabin"}}))
    out = tmp_path / "run"
    open_run(str(preset), [], out=out).write_plan()
    files = [out / "preset.resolved.yaml", out / "schedule.csv", out / "schedule.png"]
    before = [f.stat().st_mtime_ns for f in files]
    open_run(str(preset), [], out=out).write_plan()  # a resume with the same preset
    assert [f.stat().st_mtime_ns for f in files] == before
    open_run(str(preset), [], out=out).write_plan(range(0, 2))  # a dry run of a sub-range: a shorter CSV
    assert len((out / "schedule.csv").read_text().splitlines()) == 3
    open_run(str(preset), [], out=out).write_plan()  # the full plan again
    assert len((out / "schedule.csv").read_text().splitlines()) == 6
    open_run(str(preset), ["cfg_scale=5"], out=out, force=True).write_plan()
    assert "cfg_scale: 5" in (out / "preset.resolved.yaml").read_text()
