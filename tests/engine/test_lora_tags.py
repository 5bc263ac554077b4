"""<lora:NAME:WEIGHT> in prompts through render.py: the tag's LoRA (found in lora_dir) changes the frames, its
text never reaches the tokenizer, its per-frame weight is a schedule.csv column, the PNG carries the tag and
A1111's "Lora hashes"; an unknown name or an unallowed pickle fails in a dry run."""
from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from anim.cli import main
from anim.engine.group import lockstep_key
from anim.media.png import read_png_metadata
from anim.preset import Preset
from tests.models.test_lora import make_tiny_lora

BASE = {"model": "tiny", "width": 64, "height": 64, "fps": 8, "max_frames": 2, "seed": 5, "steps": 2,
        "motion": {"mode": "none"}, "denoise": 0.6, "noise": 0.0, "color_coherence": "none",
        "output": {"video": False}}


@pytest.fixture(scope="module")
def lora_dir(tiny_dir, tmp_path_factory):
    """A folder holding detail.safetensors: a random rank-4 LoRA for the tiny UNet and text encoder."""
    folder = tmp_path_factory.mktemp("loras")
    Path(make_tiny_lora(tiny_dir, folder)).rename(folder / "detail.safetensors")
    return folder


def preset_file(tmp_path, name="p.yaml", **changes) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({**BASE, **changes}, sort_keys=False))
    return path


def schedule(run_dir: Path) -> list[dict]:
    return list(csv.DictReader(open(run_dir / "schedule.csv", newline="", encoding="utf-8")))


def pixels(run_dir: Path) -> list[np.ndarray]:
    return [np.asarray(Image.open(p).convert("RGB")) for p in sorted((run_dir / "frames").glob("*.png"))]


def addnet_hash(path: Path) -> str:
    """Oracle: kohya's hash A1111 shows for a .safetensors LoRA: sha256 of the bytes after the JSON header."""
    data = path.read_bytes()
    return hashlib.sha256(data[8 + int.from_bytes(data[:8], "little"):]).hexdigest()[:12]


def test_weights_follow_prompt_keyframes_in_a_dry_run(tmp_path, lora_dir):
    preset = preset_file(tmp_path, max_frames=6, lora_dir=str(lora_dir), prompt_blend=4,
                         prompts={0: "a cat <lora:detail:0>", 4: "a cat <lora:detail:1> --neg ugly <lora:other:1>"})
    assert main([str(preset), "--dry-run", "--out", str(tmp_path / "run")]) == 0
    rows = schedule(tmp_path / "run")
    assert [float(r["lora:detail"]) for r in rows] == [0.0, 0.15625, 0.5, 0.84375, 1.0, 1.0]  # smoothstep blend
    assert {r["prompt"] for r in rows} == {"a cat"} and rows[-1]["negative_prompt"] == "ugly"
    assert "lora:other" not in rows[0]  # a negative prompt's tag loads nothing (A1111)


def test_unknown_name_and_unallowed_pickle_fail_in_a_dry_run(tmp_path, lora_dir, capsys):
    preset = preset_file(tmp_path, lora_dir=str(lora_dir), prompts={0: "a cat <lora:missing:0.5>"})
    assert main([str(preset), "--dry-run", "--out", str(tmp_path / "a")]) == 2
    error = capsys.readouterr().err
    assert "no LoRA file named 'missing'" in error and str(lora_dir) in error and "lora_dir" in error
    pickles = tmp_path / "pickles"
    pickles.mkdir()
    (pickles / "old.pt").touch()
    preset = preset_file(tmp_path, lora_dir=str(pickles), prompts={0: "a cat <lyco:old>"})
    assert main([str(preset), "--dry-run", "--out", str(tmp_path / "b")]) == 2
    assert "old.pt is a pickle" in capsys.readouterr().err


def test_a_tag_changes_the_frames_and_never_reaches_the_tokenizer(tmp_path, lora_dir, monkeypatch):
    from anim.diffusion.conditioning import PromptEncoder

    seen: list[str] = []
    token_ids = PromptEncoder.token_ids
    monkeypatch.setattr(PromptEncoder, "token_ids", lambda self, text: seen.append(text) or token_ids(self, text))
    plain = preset_file(tmp_path, "plain.yaml", prompts={0: "a cat"})
    tagged = preset_file(tmp_path, "tagged.yaml", lora_dir=str(lora_dir), prompts={0: "a cat <lora:detail:0.8>"})
    assert lockstep_key(Preset(**yaml.safe_load(tagged.read_text()))) is None  # LoRA weights: renders alone
    assert main([str(plain), "--out", str(tmp_path / "plain"), "--quiet"]) == 0
    assert main([str(tagged), "--out", str(tmp_path / "tagged"), "--quiet"]) == 0
    assert seen and not any("<" in text or "lora" in text for text in seen)
    assert not any(np.array_equal(a, b) for a, b in zip(pixels(tmp_path / "plain"), pixels(tmp_path / "tagged")))
    parameters, row = read_png_metadata(tmp_path / "tagged" / "frames" / "000001.png")
    assert row["prompt"] == "a cat" and row["lora:detail"] == 0.8
    first, *_, last = parameters.splitlines()
    assert first == "a cat <lora:detail:0.8>"  # A1111 keeps the tag in its infotext prompt
    assert last.endswith(f', Lora hashes: {json.dumps("detail: " + addnet_hash(lora_dir / "detail.safetensors"))}')


def test_a_pickled_lora_renders_like_its_safetensors_with_allow_pickle(tmp_path, lora_dir):
    import torch
    from safetensors.torch import load_file

    pickles = tmp_path / "pickles"
    pickles.mkdir()
    torch.save(load_file(lora_dir / "detail.safetensors"), pickles / "detail.pt")
    prompts = {0: "a cat <lora:detail:`0.5+t/2`>"}
    safe = preset_file(tmp_path, "safe.yaml", lora_dir=str(lora_dir), prompts=prompts)
    pickled = preset_file(tmp_path, "pickled.yaml", lora_dir=str(pickles), allow_pickle=True, prompts=prompts)
    assert main([str(safe), "--out", str(tmp_path / "safe"), "--quiet"]) == 0
    assert main([str(pickled), "--out", str(tmp_path / "pickled"), "--quiet"]) == 0
    assert [float(r["lora:detail"]) for r in schedule(tmp_path / "pickled")] == [0.5, 1.0]
    assert all(np.array_equal(a, b) for a, b in zip(pixels(tmp_path / "safe"), pixels(tmp_path / "pickled")))
