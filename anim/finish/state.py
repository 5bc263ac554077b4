"""finish.json: for each finishing step, the settings key it was started with and whether it completed.

A step begins by removing what other settings left, then records its key; each frame or file it makes is written
atomically; it records `done` last. So a kill at any instant leaves a state the next run continues from: the same
key and not done means "skip the outputs that are whole, make the rest".
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from anim.finish.job import settings_key
from anim.media.files import atomic_write_text

VERSION = 1
ALL = "all"  # the record of a whole finish: the key of the output section it completed with


class FinishState:
    """The steps recorded in one run folder's finish.json (a missing or damaged file records none)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.steps = read_steps(self.path)

    def is_done(self, step: str, key: str) -> bool:
        return self.steps.get(step) == {"key": key, "done": True}

    def start(self, step: str, key: str, outputs: tuple[Path, ...] = ()) -> None:
        """Begin (or continue) `step` with settings `key`; outputs made with other settings are removed first."""
        if self.steps.get(step, {}).get("key") == key:
            return
        for path in outputs:
            remove_path(path)
        self._record(step, key, False)

    def complete(self, step: str, key: str) -> None:
        self._record(step, key, True)

    def reset(self) -> None:
        """Forget every step (finish --redo): each runs again from nothing."""
        self.steps = {}
        self.path.unlink(missing_ok=True)

    def _record(self, step: str, key: str, done: bool) -> None:
        self.steps[step] = {"key": key, "done": done}
        atomic_write_text(self.path, json.dumps({"version": VERSION, "steps": self.steps}, indent=1))


def finish_complete(state_path: Path, output: Any) -> bool:
    """Whether the last finish in this run folder completed with these output settings."""
    return FinishState(state_path).is_done(ALL, settings_key(output))


def read_steps(path: Path) -> dict[str, dict]:
    """The well-formed step records of finish.json; anything else is dropped (that step simply runs again)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    steps = data.get("steps") if isinstance(data, dict) else None
    if not isinstance(steps, dict):
        return {}
    return {name: {"key": rec["key"], "done": rec["done"]} for name, rec in steps.items()
            if isinstance(name, str) and isinstance(rec, dict) and isinstance(rec.get("key"), str)
            and isinstance(rec.get("done"), bool)}


def remove_path(path: Path) -> None:
    """Remove a file or a folder tree if it is there."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
