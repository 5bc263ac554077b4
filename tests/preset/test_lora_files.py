"""<lora:NAME> finds NAME.safetensors/.pt/.ckpt under lora_dir and its subfolders (A1111's rule), or says where
it looked; pickles only with allow_pickle."""
from __future__ import annotations

import os

import pytest

from anim.errors import PresetError
from anim.preset.lora_files import DEFAULT_LORA_DIRS, find_loras, lora_dirs


def test_names_are_file_stems_in_folders_and_subfolders(tmp_path):
    (tmp_path / "styles" / "ink").mkdir(parents=True)
    (tmp_path / "styles" / "ink" / "ink wash.safetensors").touch()
    (tmp_path / "detail.SAFETENSORS").touch()
    (tmp_path / "notes.txt").touch()
    other = tmp_path / "other"
    other.mkdir()
    (other / "old.ckpt").touch()
    found = find_loras(["ink wash", "detail", "old"], [str(tmp_path / "styles"), str(tmp_path), str(other)],
                       allow_pickle=True)
    assert found == {"ink wash": tmp_path / "styles" / "ink" / "ink wash.safetensors",
                     "detail": tmp_path / "detail.SAFETENSORS", "old": other / "old.ckpt"}
    assert find_loras([], "/nowhere") == {}


def test_unknown_name_names_the_folders_searched(tmp_path):
    with pytest.raises(PresetError, match=rf"no LoRA file named 'cat' .* in {tmp_path}, {tmp_path}/gone \(no such"):
        find_loras(["cat"], [str(tmp_path), str(tmp_path / "gone")])
    with pytest.raises(PresetError, match="models/Lora .*models/LyCORIS"):
        find_loras(["cat"], None)
    with pytest.raises(PresetError, match="lora_dir is empty"):
        find_loras(["cat"], [])


def test_a_pickle_needs_allow_pickle_and_two_files_of_one_name_are_refused(tmp_path):
    (tmp_path / "old.pt").touch()
    with pytest.raises(PresetError, match="old.pt is a pickle.*allow_pickle: true"):
        find_loras(["old"], str(tmp_path))
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "old.safetensors").touch()
    with pytest.raises(PresetError, match="2 files are named 'old'"):
        find_loras(["old"], str(tmp_path), allow_pickle=True)


def test_default_folders_are_a1111s_under_the_current_directory(tmp_path, monkeypatch):
    assert lora_dirs(None) == [type(tmp_path)(d) for d in DEFAULT_LORA_DIRS]
    assert lora_dirs("~/loras") == [type(tmp_path)(os.path.expanduser("~/loras"))]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "Lora").mkdir(parents=True)
    (tmp_path / "models" / "Lora" / "x.safetensors").touch()
    assert find_loras(["x"]) == {"x": type(tmp_path)("models/Lora/x.safetensors")}
