"""FrameTable: every scheduled value of every frame, resolved up front; CSV and plot export.

The engine reads one row of plain values per frame; ``schedule.csv`` and ``schedule.png`` in the
run folder come from here. CSV floats are written with repr() so they read back bit-exact.
"""

from __future__ import annotations

import contextlib
import csv
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from anim.keyframes.prompts import PromptFrame

PROMPT_FIELDS = ("prompt", "negative_prompt", "blend_prompt", "blend_negative_prompt")
TAIL_FIELDS = ("blend_weight",) + PROMPT_FIELDS
RESERVED = ("frame",) + TAIL_FIELDS
# Text columns (anim.keyframes.texts): CSV columns read back as text by their name, whatever the cells hold.
TEXT_FIELDS = ("sampler", "checkpoint", "mask", "noise_mask")  # mask: the frame's mask expression (preset mask:)
_INT_TEXT = re.compile(r"[+-]?\d+")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path next to ``path``; on success move it over ``path`` in one step."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent or ".", prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _as_column(name: str, values, count: int) -> np.ndarray:
    """A read-only 1-D copy: int64 for integer/bool data, float64 otherwise."""
    if name in RESERVED:
        raise ValueError(f"column name {name!r} is reserved ({', '.join(RESERVED)})")
    array = np.asarray(values)
    if array.ndim != 1 or len(array) != count:
        raise ValueError(f"column {name!r} has shape {array.shape}, expected ({count},)")
    array = array.astype(np.int64 if array.dtype.kind in "iub" else np.float64, copy=True)
    array.setflags(write=False)
    return array


def _cell(value) -> str:
    """CSV text of a number: ints plain, floats via repr (round-trips exactly)."""
    return str(int(value)) if isinstance(value, (int, np.integer)) else repr(float(value))


def _as_texts(name: str, values, count: int) -> tuple[str, ...]:
    """A text column (one of TEXT_FIELDS) as a tuple of str, one per frame."""
    if name not in TEXT_FIELDS:
        raise ValueError(f"text column {name!r} is not one of {', '.join(TEXT_FIELDS)}")
    texts = tuple(str(v) for v in values)
    if len(texts) != count:
        raise ValueError(f"text column {name!r} has {len(texts)} values, expected {count}")
    return texts


class FrameTable:
    """Columns of per-frame numbers (insertion order kept), text columns (sampler, checkpoint) and one PromptFrame
    per frame."""

    def __init__(self, columns: Mapping[str, np.ndarray], prompts: Sequence[PromptFrame], *,
                 frames: Sequence[int] | None = None, texts: Mapping[str, Sequence[str]] | None = None):
        count = len(prompts)
        self._columns = {name: _as_column(name, values, count) for name, values in columns.items()}
        self._texts = {name: _as_texts(name, values, count) for name, values in (texts or {}).items()}
        clash = set(self._columns) & set(self._texts)
        if clash:
            raise ValueError(f"columns {sorted(clash)} are both numeric and text")
        self._prompts = tuple(prompts)
        self._frames = np.arange(count, dtype=np.int64) if frames is None else _as_column("frames", frames, count)

    def __len__(self) -> int:
        return len(self._prompts)

    @property
    def names(self) -> list[str]:
        """Numeric column names, in order."""
        return list(self._columns)

    @property
    def frames(self) -> np.ndarray:
        """The frame number of each row (0..n-1 unless the table holds a slice)."""
        return self._frames

    @property
    def prompts(self) -> tuple[PromptFrame, ...]:
        return self._prompts

    @property
    def text_names(self) -> list[str]:
        """Text column names, in order."""
        return list(self._texts)

    def texts(self, name: str) -> tuple[str, ...]:
        """The values of one text column."""
        if name not in self._texts:
            raise KeyError(f"no text column {name!r}; text columns: {', '.join(self._texts) or 'none'}")
        return self._texts[name]

    def column(self, name: str) -> np.ndarray:
        """The values of one numeric column (read-only)."""
        if name not in self._columns:
            raise KeyError(f"no column {name!r}; columns: {', '.join(self._columns)}")
        return self._columns[name]

    def row(self, i: int) -> dict:
        """Row i as plain Python values: frame, numeric columns, text columns, blend_weight, prompt texts."""
        p = self._prompts[i]
        row = {"frame": int(self._frames[i])}
        for name, values in self._columns.items():
            row[name] = values[i].item()
        for name, texts in self._texts.items():
            row[name] = texts[i]
        row["blend_weight"] = float(p.blend_weight)
        row.update({field: getattr(p, field) for field in PROMPT_FIELDS})
        return row

    def varying(self) -> list[str]:
        """Names of numeric columns whose value changes over the frames."""
        return [n for n, v in self._columns.items() if len(v) and np.any(v != v[0])]

    def _indices(self, frames: Iterable[int] | None) -> list[int]:
        """Row indices for the given frame numbers (all rows if None)."""
        if frames is None:
            return list(range(len(self)))
        where = {int(f): i for i, f in enumerate(self._frames)}
        missing = [f for f in frames if int(f) not in where]
        if missing:
            raise ValueError(f"frames not in the table: {missing[:5]}")
        return [where[int(f)] for f in frames]

    def to_csv(self, path: str | os.PathLike, frames: Iterable[int] | None = None) -> None:
        """Write frame, numeric columns, text columns, blend_weight, prompt texts; atomically (temp + replace)."""
        header = ["frame", *self._columns, *self._texts, *TAIL_FIELDS]
        plain = set(PROMPT_FIELDS) | set(self._texts)
        with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            for i in self._indices(frames):
                row = self.row(i)
                writer.writerow([row[h] if h in plain else _cell(row[h]) for h in header])

    @classmethod
    def from_csv(cls, path: str | os.PathLike) -> FrameTable:
        """Read a table written by to_csv; all-integer columns come back as int64, TEXT_FIELDS as text."""
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            records = list(reader)
        if not header or header[0] != "frame" or tuple(header[-len(TAIL_FIELDS):]) != TAIL_FIELDS:
            raise ValueError(f"{path}: not a schedule table (header {header!r})")
        names = header[1:-len(TAIL_FIELDS)]
        cells = list(zip(*records)) if records else [()] * len(header)
        columns = {name: _parse_cells(cells[1 + j]) for j, name in enumerate(names) if name not in TEXT_FIELDS}
        texts = {name: cells[1 + j] for j, name in enumerate(names) if name in TEXT_FIELDS}
        weight_at = 1 + len(names)
        prompts = [PromptFrame(r[weight_at + 1], r[weight_at + 2], r[weight_at + 3], r[weight_at + 4],
                               float(r[weight_at])) for r in records]
        return cls(columns, prompts, frames=_parse_cells(cells[0]), texts=texts)

    def plot(self, path: str | os.PathLike) -> None:
        """Small line plot per varying column (or a note that all values are constant); atomic."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        names = self.varying()
        fig = Figure(figsize=(8, max(1.6 * len(names), 1.6)), dpi=80)
        FigureCanvasAgg(fig)
        if not names:
            fig.text(0.5, 0.5, "all values constant", ha="center", va="center")
        for k, name in enumerate(names):
            axes = fig.add_subplot(len(names), 1, k + 1)
            axes.plot(self._frames, self._columns[name], linewidth=1)
            axes.set_ylabel(name, fontsize=8)
            axes.tick_params(labelsize=7)
        if names:
            axes.set_xlabel("frame", fontsize=8)
            fig.tight_layout()
        suffix = Path(path).suffix.lstrip(".") or "png"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=suffix)


def _parse_cells(cells: Sequence[str]) -> np.ndarray:
    """int64 if every cell is an integer literal (and there is at least one), else float64."""
    if cells and all(_INT_TEXT.fullmatch(c) for c in cells):
        return np.array([int(c) for c in cells], dtype=np.int64)
    return np.array([float(c) for c in cells], dtype=np.float64)
