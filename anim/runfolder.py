"""The run folder contract: where a render lives, what it was made from, and whether it may resume."""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from anim.errors import AnimError, PresetError
from anim.finish import (  # frames_upscaled/, frames_interpolated/, video.*, finish.json
    FINISH_STATE,
    finish_complete,
    needs_finishing,
)
from anim.keyframes import FrameTable
from anim.media.files import atomic_write_text
from anim.media.png import is_complete_png, read_png_metadata
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
LOCK = ".lock"  # held (POSIX record lock) by the one process using the folder; the kernel drops it on any exit


class StateFile(BaseModel):
    """What state.json may hold (anim.engine.state writes it): checked like a preset before any use."""

    model_config = ConfigDict(extra="ignore")

    version: int = 1
    mode: Literal["render", "preview"] = "render"
    frames_hash: Optional[str] = None
    last_frame: int = Field(-1, ge=-1)
    next_frame: int = Field(0, ge=0)
    max_frames: Optional[int] = Field(None, ge=1)
    color_reference: Optional[str] = None
    rng: Optional[dict] = None
    torch_threads: Optional[int] = Field(None, ge=1, le=4096)

    @field_validator("color_reference")
    @classmethod
    def _a_frame_of_this_run(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"frames/\d{6}\.png", value):
            raise ValueError("must name a frame of this run, like frames/000000.png")
        return value


@dataclass
class Run:
    """A run folder with its validated preset and frame table."""

    dir: Path
    loaded: LoadedPreset
    table: FrameTable
    resumed: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    lock: Any = field(default=None, repr=False)  # this process's RunLock on the folder

    def close(self) -> None:
        """Release the run folder for other processes (also happens when this process exits)."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None

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
        text = sealed(resolved_yaml(self.preset))
        if self._plan_current(text, len(frames) if frames is not None else self.preset.max_frames):
            return
        self.table.to_csv(self.dir / "schedule.csv", frames=frames)
        self.table.plot(self.dir / "schedule.png")
        atomic_write_text(self.dir / RESOLVED, text)  # last: it marks the plan as complete

    def _plan_current(self, resolved: str, n_rows: int) -> bool:
        """The folder's plan was written from this very preset for as many frames (a resume); a damaged or
        unreadable plan is not current (it is written again)."""
        paths = [self.dir / RESOLVED, self.dir / "schedule.csv", self.dir / "schedule.png"]
        try:
            if not all(path.is_file() for path in paths) or paths[0].read_text(encoding="utf-8") != resolved:
                return False
            with open(paths[1], encoding="utf-8") as handle:
                return sum(1 for _ in handle) == n_rows + 1
        except (OSError, UnicodeDecodeError):
            return False

    def read_state(self) -> dict | None:
        """state.json, validated (StateFile), or None when the run has not finished a frame yet."""
        path = self.dir / STATE
        if not path.exists():
            return None
        way_out = "delete it to resume from the frames on disk"
        try:
            return StateFile.model_validate(json.loads(path.read_text(encoding="utf-8"))).model_dump()
        except (OSError, ValueError) as exc:
            if isinstance(exc, ValidationError):
                first = exc.errors()[0]
                where = ".".join(str(part) for part in first["loc"]) or "(top)"
                raise PresetError(f"{path}: {where}: {first['msg']} (got {first.get('input')!r:.40}); {way_out}") from None
            raise PresetError(f"{path}: unreadable resume state ({exc}); {way_out}") from None


_SEAL = re.compile(r"^# anim: sha256=([0-9a-f]{64}) of the lines below; resume checks it\n")


def sealed(text: str) -> str:
    """`text` with a first line holding the sha256 of the rest: a truncated or damaged preset.resolved.yaml is
    then refused instead of resuming a run with values it never had."""
    return f"# anim: sha256={hashlib.sha256(text.encode()).hexdigest()} of the lines below; resume checks it\n{text}"


def seal_holds(text: str) -> bool:
    """The first line's sha256 matches the rest (a file without the line, from an older anim, passes)."""
    match = _SEAL.match(text)
    return match is None or hashlib.sha256(text[match.end():].encode()).hexdigest() == match.group(1)


def default_run_dir(preset_path: str | Path) -> Path:
    """outputs/<preset stem>-<YYYYmmdd-HHMMSS>/"""
    return Path("outputs") / f"{Path(preset_path).stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def load_stored(run_dir: Path) -> LoadedPreset:
    """The preset a run folder was made with (its preset.resolved.yaml)."""
    path = run_dir / RESOLVED
    if not path.exists():
        raise PresetError(f"{run_dir}: not a run folder (no {RESOLVED}); give the preset file instead")
    lost = "the run's preset is lost: render the preset file again with --out to this folder"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PresetError(f"{path}: unreadable ({exc}); {lost}") from None
    if not seal_holds(text):
        raise PresetError(f"{path}: damaged or edited (its sha256 line does not match what follows); {lost}")
    data, lines = load_with_lines(text, str(path))
    return validate_preset(data, str(path), lines)


class RunLock:
    """This process's hold on a run folder: a POSIX lock on `run_dir/.lock`. A process never conflicts with
    itself (a lockstep group's members and tests reopen their runs); a killed process leaves nothing stuck
    (the kernel drops the lock). Released, the lock file is removed, and so is a folder that held nothing else."""

    def __init__(self, run_dir: Path) -> None:
        if run_dir.exists() and not run_dir.is_dir():
            raise PresetError(f"--out {run_dir}: is a file, not a run folder; give a folder path")
        self.path, self.created = run_dir / LOCK, not run_dir.exists()
        run_dir.mkdir(parents=True, exist_ok=True)
        while True:
            handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - kept open while the run is used
            try:
                fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.seek(0)
                holder = handle.read().strip() or "?"
                handle.close()
                raise PresetError(f"{run_dir}: another render (pid {holder}) is using this run folder; wait for it "
                                  "to finish or give another --out") from None
            if _same_file(handle, self.path):  # not a lock file its last holder removed as we opened it
                break
            handle.close()
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self.handle = handle

    def release(self) -> None:
        """Give the folder back (remove the lock file, and the folder when this run left nothing in it)."""
        if self.handle is None:
            return
        self.path.unlink(missing_ok=True)
        self.handle.close()
        self.handle = None
        if self.created:
            with contextlib.suppress(OSError):
                self.path.parent.rmdir()  # only when empty


def _same_file(handle, path: Path) -> bool:
    try:
        return os.fstat(handle.fileno()).st_ino == os.stat(path).st_ino
    except OSError:
        return False


def open_run(preset_path: str | None, overrides: list[str], *, out: Path | None = None,
             resume: Path | None = None, force: bool = False) -> Run:
    """Load the preset, take the run folder (one process at a time) and check that an existing folder's
    frames would match: by its preset.resolved.yaml, else by state.json and the frames' own metadata."""
    run_dir = resume or out
    if resume is not None and not (resume / RESOLVED).exists():
        raise PresetError(f"--resume {resume}: not a run folder (no {RESOLVED})")
    if preset_path is None and resume is None:  # pragma: no cover - the CLI checks this first
        raise PresetError("no preset given")
    loaded = load_preset(preset_path, overrides) if preset_path is not None else None
    run_dir = Path(run_dir or default_run_dir(preset_path))
    lock = RunLock(run_dir)
    try:
        stored = load_stored(run_dir) if (run_dir / RESOLVED).exists() else None
        if loaded is None:
            loaded = _stored_with_overrides(stored, overrides)
        if stored is not None:
            if loaded.seed_was_random:  # seed: -1 means "the seed this run already picked"
                loaded.preset.seed = stored.preset.seed
            _check_same_frames(stored, loaded, run_dir, force)
        table = build_table(loaded)
        if not force:
            _check_recorded_hash(run_dir, loaded)
            _check_frame_rows(run_dir, table)
    except BaseException:
        lock.release()
        raise
    return Run(dir=run_dir, loaded=loaded, table=table, resumed=stored is not None, lock=lock)


def _check_recorded_hash(run_dir: Path, loaded: LoadedPreset) -> None:
    """The frames on disk were made from the preset state.json records (by its frames hash): a new preset, or a
    damaged preset.resolved.yaml, must not continue them. An unreadable state.json is reported by the engine."""
    try:
        state = json.loads((run_dir / STATE).read_text())
    except (OSError, ValueError):
        return
    recorded = state.get("frames_hash") if isinstance(state, dict) else None
    if isinstance(recorded, str) and recorded != frames_hash(loaded.preset) \
            and recorded != _hash_as_written(run_dir, loaded):
        raise PresetError(f"{run_dir}: holds frames of another preset (state.json records frames hash {recorded}); "
                          "use --force to continue with these values, or a new --out folder")


def _hash_as_written(run_dir: Path, loaded: LoadedPreset) -> str | None:
    """The frames hash over the keys the run's preset.resolved.yaml has: what an anim from before the preset
    gained keys recorded (new keys are at their defaults, or the stored preset would differ from this one)."""
    try:
        written, _ = load_with_lines((run_dir / RESOLVED).read_text(), str(run_dir / RESOLVED))
    except (OSError, ValueError, AnimError):
        return None
    return frames_hash(loaded.preset, keys_of=written) if isinstance(written, dict) else None


def _check_frame_rows(run_dir: Path, table: FrameTable) -> None:
    """The first intact frame's own row (in its PNG) must be what this preset gives for it, or the run is
    refused: this holds when preset.resolved.yaml and state.json are both lost or damaged."""
    frames = sorted((run_dir / "frames").glob("[0-9]*.png")) if (run_dir / "frames").is_dir() else []
    for path in frames:
        if path.stem.isdigit() and is_complete_png(path) and int(path.stem) < len(table):
            try:
                _, row = read_png_metadata(path)
            except (OSError, ValueError):
                continue
            expected = _jsonable(table.row(int(path.stem)))
            if any(row[key] != expected[key] for key in row.keys() & expected.keys()):
                raise PresetError(f"{run_dir}: {path.name} was made with other values than this preset gives; "
                                  "use --force to continue with the new values, or a new --out folder")
            return


def _jsonable(row: dict) -> dict:
    """A frame row as its PNG stores it (through JSON)."""
    return json.loads(json.dumps(row, ensure_ascii=False))


def _stored_with_overrides(stored: LoadedPreset, overrides: list[str]) -> LoadedPreset:
    """Re-validate a stored preset with CLI overrides applied (for --resume RUN_DIR key=value)."""
    if not overrides:
        return stored
    from anim.preset import apply_overrides

    data = resolved_dict(stored.preset)
    applied = apply_overrides(data, overrides)
    return validate_preset(data, stored.source, stored.lines, applied)


def _check_same_frames(stored: LoadedPreset, loaded: LoadedPreset, run_dir: Path, force: bool) -> None:
    """Refuse to mix frames of two different presets in one folder, unless --force (never across sizes)."""
    old_size, new_size = (stored.preset.width, stored.preset.height), (loaded.preset.width, loaded.preset.height)
    if old_size != new_size:
        raise PresetError(f"{run_dir}: its frames are {old_size[0]}x{old_size[1]}, the preset now says "
                          f"{new_size[0]}x{new_size[1]}; one video cannot hold both (not even with --force): "
                          "use a new --out folder")
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
    """All frames and the video (when the preset makes one) are on disk, and the finishing steps (upscale,
    interpolate, formats) the output section asks for completed with its settings: nothing left to do."""
    if len(complete_frames(run)) != run.preset.max_frames:
        return False
    if needs_finishing(run.preset.output):
        return finish_complete(run.dir / FINISH_STATE, run.preset.output)
    return not run.preset.output.video or (run.dir / "video.mp4").is_file()
