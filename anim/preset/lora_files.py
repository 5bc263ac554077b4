"""Which file a prompt's ``<lora:NAME>`` means: the file whose stem is NAME under the preset's lora_dir folders.

A1111's rule (extensions-builtin/Lora networks.py): every .safetensors/.pt/.ckpt under the LoRA folder and its
subfolders, matched by file stem. A file-system walk, no model: ``--dry-run`` fails on an unknown name.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from anim.errors import PresetError

LORA_SUFFIXES = (".safetensors", ".pt", ".ckpt")
PICKLE_SUFFIXES = (".pt", ".ckpt")
DEFAULT_LORA_DIRS = ("models/Lora", "models/LyCORIS")  # A1111's folders, relative to the current directory


def lora_dirs(lora_dir) -> list[Path]:
    """The folders to search: the preset's lora_dir (one folder or a list), else A1111's default folders."""
    if lora_dir is None:
        folders: Iterable[str] = DEFAULT_LORA_DIRS
    else:
        folders = [lora_dir] if isinstance(lora_dir, (str, os.PathLike)) else lora_dir
    return [Path(folder).expanduser() for folder in folders]


def index_folders(folders: list[Path]) -> dict[str, list[Path]]:
    """{file stem: [paths]} of every LoRA file under the folders (subfolders and linked folders too); a file
    reached twice (nested or linked folders) counts once."""
    index: dict[str, list[Path]] = {}
    seen: set[Path] = set()
    for folder in folders:
        for root, dirs, files in os.walk(folder, followlinks=True):
            dirs.sort()
            for name in sorted(files):
                path = Path(root) / name
                if path.suffix.lower() in LORA_SUFFIXES and path.resolve() not in seen:
                    seen.add(path.resolve())
                    index.setdefault(path.stem, []).append(path)
    return index


def _searched(folders: list[Path]) -> str:
    """The folders as an error names them (a missing one says so)."""
    if not folders:
        return "no folder (lora_dir is empty)"
    return ", ".join(f"{folder}" + ("" if folder.is_dir() else " (no such folder)") for folder in folders)


def find_loras(names: Iterable[str], lora_dir=None, *, allow_pickle: bool = False) -> dict[str, Path]:
    """{name: file} for every LoRA name; PresetError (one line) for an unknown or ambiguous name, or a pickle
    without allow_pickle."""
    names = list(names)
    if not names:
        return {}
    folders = lora_dirs(lora_dir)
    index = index_folders(folders)
    found: dict[str, Path] = {}
    for name in names:
        paths = index.get(name, [])
        if not paths:
            raise PresetError(f"<lora:{name}>: no LoRA file named {name!r} ({'/'.join(LORA_SUFFIXES)}) in "
                              f"{_searched(folders)}; set lora_dir to the folder that holds it")
        if len(paths) > 1:
            raise PresetError(f"<lora:{name}>: {len(paths)} files are named {name!r}: "
                              f"{', '.join(map(str, paths))}; rename one (A1111 would pick one silently)")
        path = paths[0]
        if path.suffix.lower() in PICKLE_SUFFIXES and not allow_pickle:
            raise PresetError(f"<lora:{name}>: {path} is a pickle, which can run code when loaded; set "
                              "allow_pickle: true to load it (with torch's weights_only loader) or use a .safetensors")
        found[name] = path
    return found
