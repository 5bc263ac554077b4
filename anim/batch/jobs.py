"""Batch jobs: which presets make up a batch, where each renders, whether it is finished, what it will cost.

Pure bookkeeping on files; nothing here loads a model or imports torch, so the batch parent stays light.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from anim.errors import ModelError, PresetError
from anim.importers import sniff
from anim.media.png import is_complete_png
from anim.runfolder import complete_frames, is_finished, missing_frames  # noqa: F401 - the batch reads run folders

PNG_VIDEO_BYTES_PER_PIXEL = 1.5  # PNG frame plus its share of video.mp4, measured on SD output
SIZE_MARGIN = 1.25  # estimates are rough: ask for a quarter more
RESERVE_BYTES = 2 * 2**20  # plan, schedule plot, state, log and the temp files of atomic writes


class BlackFrameError(ModelError):
    """A written frame is entirely black (a VAE overflow or a broken model); the job fails."""


@dataclass(frozen=True)
class Job:
    """One preset of the batch: `name` is its run folder under ROOT, `preset` the absolute preset path."""

    name: str
    preset: str


def discover_jobs(paths: list[str]) -> list[Job]:
    """Preset files and folders of them (*.yaml, sorted) -> jobs, in the order given. A path that does not
    exist is still a job beside others: it fails with its own row instead of stopping the batch (when no
    given path exists at all, that is a usage error).

    The run folder is the preset's stem; a second preset with the same stem (from another folder) gets
    `-2`, a third `-3`, in the order the presets are listed. The same file given twice is one job.
    """
    files: list[Path] = []
    for text in paths:
        files.extend(_presets_at(Path(text)))
    if files and not any(path.is_file() for path in files):
        raise PresetError(f"batch: no such preset file or folder: {', '.join(map(str, files))}")
    jobs, names, seen = [], set(), set()
    for path in files:
        resolved = path.resolve()
        if resolved in seen:
            continue
        seen.add(resolved)
        name = _unique_name(resolved.stem, names)
        names.add(name)
        jobs.append(Job(name=name, preset=str(resolved)))
    if not jobs:
        raise PresetError("batch: no presets given: python render.py batch PRESET.yaml|FOLDER ...")
    return jobs


def _presets_at(path: Path) -> list[Path]:
    """A preset file itself, or a folder's *.yaml presets and the Deforum settings files / Parseq exports among
    its *.txt and *.json files (Deforum's own batch mode is a folder of settings files), sorted by name."""
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.is_file() and _is_preset(p))
        if not found:
            raise PresetError(f"batch: folder {path} holds no *.yaml presets or Deforum settings files")
        return found
    return [path]  # a missing file becomes a failed job (its row says so); the rest of the batch runs


def _is_preset(path: Path) -> bool:
    """*.yaml / *.yml, or a *.txt / *.json file whose content is a Deforum settings file or Parseq export."""
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        return True
    if suffix not in (".txt", ".json"):
        return False
    try:
        return sniff(path) in ("deforum", "parseq")
    except PresetError:
        return False  # some other JSON/text beside the presets


def _unique_name(stem: str, taken: set[str]) -> str:
    """`stem`, or `stem-2`, `stem-3`, ... when an earlier preset already has that folder."""
    if stem not in taken:
        return stem
    n = 2
    while f"{stem}-{n}" in taken:
        n += 1
    return f"{stem}-{n}"


def estimate_bytes(preset, frames_todo: int) -> int:
    """Disk a job still needs: frames x width x height x ~1.5 bytes (PNG + video), with a margin."""
    pixels = frames_todo * preset.width * preset.height
    return int(pixels * PNG_VIDEO_BYTES_PER_PIXEL * SIZE_MARGIN) + RESERVE_BYTES


def free_bytes(path: Path) -> int:
    """Free space on the filesystem holding `path` (the default disk-guard probe)."""
    return shutil.disk_usage(path).free


def is_black(path: Path) -> bool:
    """True when every pixel of the PNG is 0 in every channel (cheap: Pillow's extrema, no numpy)."""
    with Image.open(path) as image:
        extrema = image.convert("RGB").getextrema()
    return all(high == 0 for _low, high in extrema)


class FrameWatch:
    """Checks each newly written frame of a render for an all-black image, in frame order.

    Called between frames (through the engine's should_stop hook), so a broken model stops the job after one
    bad frame instead of at the end. A black frame is renamed to NNNNNN.black.png so the job never counts as
    finished and a later run renders it again.
    """

    def __init__(self, run, todo: list[int]) -> None:
        self.run = run
        self.pending = sorted(todo)

    def check(self, final: bool = False) -> None:
        """Look at the frames that landed since the last call; raise BlackFrameError on a black one."""
        while self.pending:
            index = self.pending[0]
            path = self.run.frame_path(index)
            if not is_complete_png(path):
                if final:
                    self.pending.pop(0)  # not rendered (sub-range or stop): nothing to check
                    continue
                return  # the writer works in order: later frames are not there yet
            self.pending.pop(0)
            if is_black(path):
                path.replace(path.with_suffix(".black.png"))
                raise BlackFrameError(f"frame {index}: the image is entirely black (kept as {path.stem}.black.png)")
