"""The run folder contract: where a render lives, what it was made from, and whether it may resume."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anim.errors import PresetError
from anim.keyframes import FrameTable
from anim.media.files import atomic_write_text
from anim.media.png import is_complete_png
from anim.plan import build_table, load_preset, validate_preset
from anim.preset import (
    LoadedPreset,
    Preset,
    changed_keys,
    frames_hash,
    resolved_dict,
    resolved_yaml,
)
from anim.preset.yamlio import load_with_lines

RESOLVED = "preset.resolved.yaml"
STATE = "state.json"
GROUP = "lockstep.json"  # the lockstep group a batch rendered this run in (anim.engine.group)


@dataclass
class Run:
    """A run folder with its validated preset and frame table."""

    dir: Path
    loaded: LoadedPreset
    table: FrameTable
    resumed: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def preset(self) -> Preset:
        return self.loaded.preset

    @property
    def source(self) -> str:
        return self.loaded.source

    @property
    def frames_dir(self) -> Path:
        return self.dir / "frames"

    def frame_path(self, index: int) -> Path:
        return self.frames_dir / f"{index:06d}.png"

    def write_plan(self, frames: range | None = None) -> None:
        """preset.resolved.yaml, schedule.csv and schedule.png (the --dry-run artefacts); kept as they are when
        a resumed run would write the same (the plot alone costs ~0.5 s of matplotlib per job in a batch)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        text = resolved_yaml(self.preset)
        if self._plan_current(text, len(frames) if frames is not None else self.preset.max_frames):
            return
        self.table.to_csv(self.dir / "schedule.csv", frames=frames)
        self.table.plot(self.dir / "schedule.png")
        atomic_write_text(self.dir / RESOLVED, text)  # last: it marks the plan as complete

    def _plan_current(self, resolved: str, n_rows: int) -> bool:
        """The folder's plan was written from this very preset for as many frames (a resume)."""
        paths = [self.dir / RESOLVED, self.dir / "schedule.csv", self.dir / "schedule.png"]
        if not all(path.is_file() for path in paths) or paths[0].read_text(encoding="utf-8") != resolved:
            return False
        with open(paths[1], encoding="utf-8") as handle:
            return sum(1 for _ in handle) == n_rows + 1

    def read_state(self) -> dict | None:
        """state.json, or None when the run has not finished a frame yet."""
        path = self.dir / STATE
        if not path.exists():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise PresetError(f"{path}: unreadable resume state ({exc}); delete it to start over") from None


def default_run_dir(preset_path: str | Path) -> Path:
    """outputs/<preset stem>-<YYYYmmdd-HHMMSS>/"""
    return Path("outputs") / f"{Path(preset_path).stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def load_stored(run_dir: Path) -> LoadedPreset:
    """The preset a run folder was made with (its preset.resolved.yaml)."""
    path = run_dir / RESOLVED
    if not path.exists():
        raise PresetError(f"{run_dir}: not a run folder (no {RESOLVED}); give the preset file instead")
    data, lines = load_with_lines(path.read_text(encoding="utf-8"), str(path))
    return validate_preset(data, str(path), lines)


def open_run(preset_path: str | None, overrides: list[str], *, out: Path | None = None,
             resume: Path | None = None, force: bool = False) -> Run:
    """Load the preset and pick the run folder; an existing folder resumes only if the frames would match."""
    run_dir = resume or out
    stored = load_stored(run_dir) if run_dir is not None and (run_dir / RESOLVED).exists() else None
    if resume is not None and stored is None:
        raise PresetError(f"--resume {resume}: not a run folder (no {RESOLVED})")
    if preset_path is not None:
        loaded = load_preset(preset_path, overrides)
    elif stored is not None:
        loaded = _stored_with_overrides(stored, overrides)
    else:  # pragma: no cover - the CLI checks this first
        raise PresetError("no preset given")
    if stored is not None:
        if loaded.seed_was_random:  # seed: -1 means "the seed this run already picked"
            loaded.preset.seed = stored.preset.seed
        _check_same_frames(stored, loaded, run_dir, force)
    run_dir = run_dir or default_run_dir(preset_path)
    return Run(dir=Path(run_dir), loaded=loaded, table=build_table(loaded), resumed=stored is not None)


def _stored_with_overrides(stored: LoadedPreset, overrides: list[str]) -> LoadedPreset:
    """Re-validate a stored preset with CLI overrides applied (for --resume RUN_DIR key=value)."""
    if not overrides:
        return stored
    from anim.preset import apply_overrides

    data = resolved_dict(stored.preset)
    applied = apply_overrides(data, overrides)
    return validate_preset(data, stored.source, stored.lines, applied)


def _check_same_frames(stored: LoadedPreset, loaded: LoadedPreset, run_dir: Path, force: bool) -> None:
    """Refuse to mix frames of two different presets in one folder, unless --force."""
    if frames_hash(stored.preset) == frames_hash(loaded.preset) or force:
        return
    keys = [k for k in changed_keys(resolved_dict(stored.preset), resolved_dict(loaded.preset))
            if not k.startswith("output.")]
    shown = ", ".join(keys[:8]) + (f" and {len(keys) - 8} more" if len(keys) > 8 else "")
    raise PresetError(
        f"{run_dir}: the preset changed since this run started ({shown}); "
        "use --force to continue with the new values, or a new --out folder"
    )


def complete_frames(run) -> list[int]:
    """Indices of the frames of `run` that are whole PNGs on disk."""
    return [f for f in range(run.preset.max_frames) if is_complete_png(run.frame_path(f))]


def missing_frames(run) -> list[int]:
    """Indices of the frames of `run` still to make (not whole PNGs on disk)."""
    on_disk = set(complete_frames(run))
    return [f for f in range(run.preset.max_frames) if f not in on_disk]


def is_finished(run) -> bool:
    """All frames and the video (when the preset makes one) are on disk: nothing left to do."""
    if len(complete_frames(run)) != run.preset.max_frames:
        return False
    return not run.preset.output.video or (run.dir / "video.mp4").is_file()
