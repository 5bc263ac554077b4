"""Issue Q fuzzing: random presets and damaged run folders end in a render or one clear error, never a
traceback, never frames of two runs mixed; a render killed at random moments resumes to identical frames."""
from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anim.errors import AnimError

ROOT = Path(__file__).resolve().parent.parent
SMOKE = str(ROOT / "presets" / "smoke.yaml")
BASE = {"model": "tiny", "width": 64, "height": 64, "max_frames": 4, "steps": 2, "prompts": {0: "a cabin"}}
KEYS = ["model", "width", "height", "fps", "max_frames", "seed", "seed_behavior", "seed_schedule", "sampler",
        "steps", "prompts", "negative_prompt", "prompt_blend", "init_image", "init_video", "denoise", "cfg_scale",
        "noise", "contrast", "cadence", "color_coherence", "motion", "controlnet", "loras", "output",
        "performance", "unknown_key", "video_blend", "flow_blend", "flow_method", "unsharp_kernel"]
SCHEDULE_TEXT = st.text(alphabet="0123456789:(),.+-*/ tmax_fsinabcd^e", max_size=40)
SCALARS = (st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=30) | SCHEDULE_TEXT)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=12) | st.integers(-5, 50), inner, max_size=4), max_leaves=12)


def check_preset_text(path: Path, text: str) -> None:
    """Load and resolve a preset from `text`: it passes, or fails with an AnimError (one line in the CLI)."""
    from anim.plan import build_table, load_preset

    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        loaded = load_preset(path)
        if loaded.preset.max_frames <= 2000:
            build_table(loaded)
    except AnimError as exc:
        assert str(path) in str(exc), exc  # names the preset file (and its line, where there is one)


def preset_texts():
    """Random YAML: the base preset with a few keys set to random values, or random text outright."""
    changes = st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=4)
    dumped = changes.map(lambda c: yaml.safe_dump({**BASE, **c}, allow_unicode=True))
    return dumped | st.text(max_size=200)


def _fuzz_presets(tmp_path_factory, examples: int):
    path = tmp_path_factory.mktemp("fuzz") / "preset.yaml"

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(text=preset_texts())
    def run(text):
        check_preset_text(path, text)

    run()


def test_fuzz_presets(tmp_path_factory):
    _fuzz_presets(tmp_path_factory, 2000)


@pytest.mark.slow
def test_fuzz_presets_long(tmp_path_factory):
    _fuzz_presets(tmp_path_factory, 10_000)


# ---- damaged run folders ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    from anim.cli import main

    run = tmp_path_factory.mktemp("ref") / "run"
    assert main([SMOKE, "max_frames=3", "width=64", "height=64", "steps=2", "cadence=2", "--out", str(run),
                 "--quiet"]) == 0
    return run


def frames(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((run / "frames").glob("*.png"))}


def damage(run: Path, rng: random.Random, n_ops: int) -> list[str]:
    """Flip bytes in, truncate or delete random files of a run folder; what was done."""
    done = []
    for _ in range(n_ops):
        files = sorted(p for p in run.rglob("*") if p.is_file() and p.name != ".lock")
        if not files:
            break
        victim = rng.choice(files)
        data = victim.read_bytes()
        op = rng.choice(["flip", "truncate", "delete"])
        if op == "flip" and data:
            at = rng.randrange(len(data))
            victim.write_bytes(data[:at] + bytes([data[at] ^ (1 << rng.randrange(8))]) + data[at + 1:])
        elif op == "truncate":
            victim.write_bytes(data[:rng.randrange(len(data) + 1)])
        else:
            victim.unlink()
        done.append(f"{op} {victim.relative_to(run)}")
    return done


def _fuzz_damage(finished_run, tmp_path, monkeypatch, capsys, examples: int) -> None:
    import anim.engine.makers
    from anim.cli import main
    from anim.engine.cache import ModelCache
    from anim.media.png import is_complete_png

    shared = ModelCache()  # one model load for every resume
    monkeypatch.setattr(anim.engine.makers, "ModelCache", lambda: shared)
    reference = frames(finished_run)
    rng = random.Random(1234)
    for example in range(examples):
        run = tmp_path / f"d{example}"
        shutil.copytree(finished_run, run)
        what = damage(run, rng, rng.randint(1, 3))
        code = main(["--resume", str(run), "--quiet"])
        err = capsys.readouterr().err.strip().splitlines()
        if code == 0:
            assert frames(run) == reference, what
        else:
            assert code == 2 and len(err) == 1, (what, err)
            intact = {name: data for name, data in frames(run).items() if is_complete_png(run / "frames" / name)}
            assert all(reference.get(name) == data for name, data in intact.items()), what  # never another run's


def test_fuzz_damaged_run_folders(finished_run, tmp_path, monkeypatch, capsys):
    _fuzz_damage(finished_run, tmp_path, monkeypatch, capsys, 12)


@pytest.mark.slow
def test_fuzz_damaged_run_folders_long(finished_run, tmp_path, monkeypatch, capsys):
    _fuzz_damage(finished_run, tmp_path, monkeypatch, capsys, 120)


# ---- SIGKILL at random moments ---------------------------------------------------------------------


@pytest.mark.slow
def test_sigkill_at_twenty_random_moments_resumes_identically(tmp_path):
    args = [SMOKE, "max_frames=6", "width=64", "height=64", "steps=2", "cadence=2", "--quiet"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    reference = tmp_path / "ref"
    assert subprocess.run([sys.executable, "render.py", *args, "--out", str(reference)], cwd=ROOT, env=env,
                          timeout=300).returncode == 0
    expected = frames(reference)
    rng = random.Random(99)
    run = tmp_path / "killed"
    for kill in range(20):
        proc = subprocess.Popen([sys.executable, "render.py", *args, "--out", str(run)], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.5, 6.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert all(expected[name] == data for name, data in frames(run).items()), f"kill {kill}"
    assert subprocess.run([sys.executable, "render.py", *args, "--out", str(run)], cwd=ROOT, env=env,
                          timeout=300).returncode == 0
    assert frames(run) == expected
