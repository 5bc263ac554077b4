"""A run folder made before the preset gained keys resumes: state.json recorded the frames hash over the keys of
its day, which preset.resolved.yaml still lists; a changed value is still refused."""
from __future__ import annotations

import hashlib
import json

import pytest
import yaml

from anim.errors import PresetError
from anim.runfolder import open_run
from tests.batch.util import TINY


def age(run_dir, drop: tuple[str, ...]):
    """Make the run look written by an anim without the keys `drop`: gone from preset.resolved.yaml, and
    state.json's hash recorded over what is left (as that anim computed it)."""
    resolved = run_dir / "preset.resolved.yaml"
    data = yaml.safe_load(resolved.read_text())
    for key in drop:
        data.pop(key)
    resolved.write_text(yaml.safe_dump(data, sort_keys=False))
    hashed = {k: v for k, v in json.loads(json.dumps(data)).items() if k not in ("output", "performance")}
    state = json.loads((run_dir / "state.json").read_text())
    state["frames_hash"] = hashlib.sha256(json.dumps(hashed, sort_keys=True).encode()).hexdigest()[:16]
    (run_dir / "state.json").write_text(json.dumps(state))


def test_a_run_from_before_new_keys_resumes_and_a_changed_one_does_not(tmp_path):
    from anim.cli import main

    preset = tmp_path / "p.yaml"
    preset.write_text(yaml.safe_dump({**TINY, "max_frames": 3}))
    out = tmp_path / "run"
    assert main([str(preset), "--out", str(out), "--frames", "0:2", "--quiet"]) == 0
    age(out, ("clip_skip", "subseed", "noise_multiplier", "coherence"))
    open_run(str(preset), [], out=out).lock.release()  # the old hash is recognised
    assert main(["--resume", str(out), "--quiet"]) == 0
    assert len(list((out / "frames").glob("*.png"))) == 3
    data = yaml.safe_load((out / "preset.resolved.yaml").read_text())
    data["steps"] = 3  # the file no longer says what made the frames
    (out / "preset.resolved.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(PresetError, match="another preset|preset changed"):
        open_run(str(preset), [], out=out)
