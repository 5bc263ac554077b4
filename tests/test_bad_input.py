"""Bad input through the CLI: one line on stderr, exit code 2, and an existing run folder left intact."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from anim.cli import main

ROOT = Path(__file__).resolve().parent.parent
SMOKE = str(ROOT / "presets" / "smoke.yaml")
SMALL = ["max_frames=2", "width=64", "height=64", "steps=2"]


def one_line_error(capsys, *args) -> str:
    assert main([SMOKE, *SMALL, *map(str, args), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_missing_model_path(tmp_path, capsys):
    err = one_line_error(capsys, f"model={tmp_path}/nope.safetensors", "--out", tmp_path / "r")
    assert "nope.safetensors" in err
    assert not (tmp_path / "r").exists()  # nothing written for a run that could not start


def test_folder_without_model_index(tmp_path, capsys):
    (tmp_path / "m").mkdir()
    err = one_line_error(capsys, f"model={tmp_path / 'm'}", "--out", tmp_path / "r")
    assert str(tmp_path / "m") in err and "model_index.json" in err


def test_corrupt_safetensors(tmp_path, capsys):
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"\x00\x01 not a safetensors file" * 10)
    err = one_line_error(capsys, f"model={bad}", "--out", tmp_path / "r")
    assert "broken.safetensors" in err


def test_pickle_checkpoint_refused(tmp_path, capsys):
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"whatever")
    err = one_line_error(capsys, f"model={ckpt}", "--out", tmp_path / "r")
    assert "model.ckpt" in err and "allow_pickle" in err


def test_unknown_sampler_names_line_and_valid_ones(tmp_path, capsys):
    err = one_line_error(capsys, "sampler=eulr_a", "--out", tmp_path / "r")
    assert "override 'sampler=eulr_a'" in err and "did you mean 'euler_a'" in err and "dpmpp_2m" in err


def test_hub_id_offline_suggests_local_or_tiny(tmp_path, capsys):
    err = one_line_error(capsys, "model=someone/not-cached-model", "--out", tmp_path / "r")
    assert "someone/not-cached-model" in err and "tiny" in err


def test_bad_model_leaves_existing_run_intact(tmp_path):
    out = tmp_path / "run"
    base = [sys.executable, str(ROOT / "render.py"), SMOKE, *SMALL, "--out", str(out), "--quiet"]
    assert subprocess.run(base + ["--frames", "0:1"], capture_output=True, timeout=240).returncode == 0
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != "log.txt"}
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"garbage" * 100)
    result = subprocess.run(base[:3] + [f"model={bad}"] + base[3:] + ["--force"], capture_output=True, text=True,
                            timeout=240)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != "log.txt"}
    assert after == before
