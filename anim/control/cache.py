"""Control maps cached in the run folder: control/<unit index>/NNNNNN.png plus the key they were made with.

The key (input identity, annotator settings, size, resize mode) is stored as key.json in the unit's
folder; opening the cache with a different key empties the folder first, so a map on disk always
matches the current settings. A re-run or resume reuses every map already written.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from anim.media.files import atomic_write_bytes, atomic_write_text

CACHE_VERSION = 1  # bump when the drawing or resizing of maps changes
KEY_FILE = "key.json"


def cache_key(*, source: dict, annotator: dict, width: int, height: int, resize: str) -> dict:
    """The plain-data key a unit's maps depend on (normalised through JSON for comparison)."""
    key = {"version": CACHE_VERSION, "input": source, "annotator": annotator, "width": int(width),
           "height": int(height), "resize": resize}
    return json.loads(json.dumps(key, sort_keys=True, default=str))


class MapCache:
    """One unit's folder of cached control maps, valid for one key."""

    def __init__(self, run_dir: Path, unit_index: int, key: dict) -> None:
        self.folder = Path(run_dir) / "control" / str(int(unit_index))
        self.key = json.loads(json.dumps(key, sort_keys=True, default=str))
        self.cleared = self._open()

    def _open(self) -> bool:
        """Adopt the folder if its key matches, else empty it and write ours; True when maps were cleared."""
        key_path = self.folder / KEY_FILE
        if self._stored_key(key_path) == self.key:
            return False
        cleared = self.folder.is_dir() and any(self._map_files())
        for path in self._map_files():
            path.unlink(missing_ok=True)
        for temp in self.folder.glob(".*.tmp") if self.folder.is_dir() else ():
            temp.unlink(missing_ok=True)
        atomic_write_text(key_path, json.dumps(self.key, indent=2, sort_keys=True) + "\n")
        return cleared

    @staticmethod
    def _stored_key(key_path: Path) -> dict | None:
        """The key on disk, or None when there is none or it is unreadable."""
        try:
            return json.loads(key_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def _map_files(self):
        """Cached maps (six-digit PNG names) in the folder."""
        if not self.folder.is_dir():
            return []
        return [p for p in self.folder.glob("*.png") if p.stem.isdigit()]

    def path(self, frame: int) -> Path:
        """Where the map of source frame `frame` lives."""
        return self.folder / f"{int(frame):06d}.png"

    def get(self, frame: int) -> np.ndarray | None:
        """The cached map of a frame as (H, W, 3) uint8, or None (missing, unreadable, wrong size)."""
        path = self.path(frame)
        if not path.is_file():
            return None
        try:
            with Image.open(path) as image:
                array = np.asarray(image.convert("RGB")).copy()
        except OSError:
            return None
        if array.shape[:2] != (self.key["height"], self.key["width"]):
            return None
        return array

    def put(self, frame: int, map_u8: np.ndarray) -> Path:
        """Write a frame's map atomically (a crash never leaves half a PNG)."""
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(map_u8)).save(buffer, format="PNG", compress_level=4)
        path = self.path(frame)
        atomic_write_bytes(path, buffer.getvalue())
        return path
