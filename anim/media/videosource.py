"""A video file as a FrameSource: every nth frame between start_s and end_s, decoded on demand.

One ffmpeg process (imageio-ffmpeg) reads forward; frames between the requested ones are skipped
without conversion. The frame count is found at open by a decode into 8x8 frames through the
same ffmpeg options, so count and reading agree even for variable frame rate files.
"""
from __future__ import annotations

import logging
import math
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import imageio_ffmpeg
import numpy as np

from anim.errors import InputError
from anim.media.frames import FrameSource, file_identity, resize_frame
from anim.media.video import ffmpeg_header, last_meaningful_line

COUNT_SIZE = "8x8"  # frames are shrunk to this while counting, so the count pass costs one decode


class VideoSource(FrameSource):
    """Frames of a video file; `fps` is the source rate divided by nth."""

    kind = "video"

    def __init__(self, path: Path, width: int, height: int, resize: str, what: str, *, nth: int = 1,
                 start_s: float = 0.0, end_s: float | None = None) -> None:
        super().__init__(path, width, height, resize, what)
        self.nth, self.start_s, self.end_s = _check_range(path, what, nth, start_s, end_s)
        header = ffmpeg_header(self.path)
        if "Video:" not in header and "Audio:" in header:
            raise InputError(f"{what}: {path} has sound but no video stream; give a video file or an image folder")
        if "Video:" not in header:
            raise InputError(f"{what}: {path} is not a readable video ({last_meaningful_line(header)}); "
                             "re-encode it (e.g. to H.264 mp4) or use an image folder")
        raw_count, native_fps = self._count()
        if raw_count == 0:
            span = f"between {self.start_s:g} s and {self.end_s:g} s" if self.end_s is not None else (
                f"after {self.start_s:g} s" if self.start_s else "at all")
            raise InputError(f"{what}: video {path} has no frames {span}; check video_start/video_end or the file")
        self.raw_frames = raw_count
        self.n_frames = math.ceil(raw_count / self.nth)
        self.native_fps = native_fps
        self.fps = native_fps / self.nth if native_fps else None
        self._reader: Iterator[bytes] | None = None
        self._next_raw = 0  # raw index of the frame the reader yields next
        self._size = (0, 0)

    # ------------------------------------------------------------ ffmpeg

    def _params(self) -> tuple[list[str], list[str]]:
        """Input (seek) and output (duration) options shared by counting and reading."""
        input_params = ["-ss", f"{self.start_s:.6f}"] if self.start_s > 0 else []
        output_params = ["-t", f"{self.end_s - self.start_s:.6f}"] if self.end_s is not None else []
        return input_params, output_params

    def _open_reader(self, extra_output: list[str]) -> tuple[Iterator[bytes], dict]:
        """An imageio-ffmpeg frame generator and its metadata; InputError naming the file on failure."""
        input_params, output_params = self._params()
        try:
            reader = imageio_ffmpeg.read_frames(str(self.path), input_params=input_params,
                                                output_params=output_params + extra_output)
            meta = next(reader)
        except (OSError, RuntimeError, StopIteration) as exc:
            raise InputError(f"{self.what}: {self.path} is not a readable video "
                             f"({last_meaningful_line(str(exc))}); re-encode it or use an image folder") from None
        return reader, meta

    def _count(self) -> tuple[int, float]:
        """(decoded frames in the selected time range, native fps); frames are shrunk while counting."""
        with _quiet_size_warning():
            reader, meta = self._open_reader(["-s", COUNT_SIZE])
        count = 0
        try:
            for _ in reader:
                count += 1
        except RuntimeError as exc:
            raise InputError(f"{self.what}: decoding {self.path} failed ({last_meaningful_line(str(exc))})") from None
        finally:
            reader.close()
        fps = float(meta.get("fps") or 0.0)
        self._check_count(count, fps, float(meta.get("duration") or 0.0))
        return count, fps

    def _check_count(self, count: int, fps: float, duration_s: float) -> None:
        """Say so when far fewer frames decode than the file's header promises (a damaged or cut file)."""
        end_s = min(duration_s, self.end_s) if self.end_s is not None else duration_s
        promised = (end_s - self.start_s) * fps
        if promised > 0 and count < 0.9 * promised - 1:
            logging.getLogger("anim").warning(
                "%s: %s decodes to %d frames where its header promises about %d (a damaged or cut file?); "
                "rendering the %d that decode", self.what, self.path, count, round(promised), count)

    # ------------------------------------------------------------ frames

    def _load(self, index: int) -> np.ndarray:
        """Decode forward to raw frame index*nth (restarting when asked for an earlier one)."""
        target = index * self.nth
        if self._reader is None or target < self._next_raw:
            self._restart()
        raw = None
        try:
            while self._next_raw <= target:
                raw = next(self._reader)
                self._next_raw += 1
        except StopIteration:
            raw = None
        except RuntimeError as exc:
            raise InputError(f"{self.what}: decoding {self.path} failed ({last_meaningful_line(str(exc))})") from None
        if raw is None:  # the file ended earlier than counted (it changed since): use the last frame we hold
            if self._recent:
                return next(reversed(self._recent.values())).copy()
            raise InputError(f"{self.what}: {self.path} ended before frame {index}; the file changed while rendering")
        width, height = self._size
        frame = np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3)
        return resize_frame(frame.copy(), self.width, self.height, self.resize)

    def _restart(self) -> None:
        """Start a fresh decoder at the beginning of the selected range."""
        self.close()
        with _quiet_size_warning():  # ffmpeg turns rotated videos upright: that size is the right one
            self._reader, meta = self._open_reader([])
        self._size = tuple(int(v) for v in meta["size"])
        self._next_raw = 0

    def close(self) -> None:
        """Stop the ffmpeg process, if one is running."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def identity(self) -> dict:
        return {"kind": self.kind, **file_identity(self.path), "nth": self.nth, "start_s": self.start_s,
                "end_s": self.end_s}


class _DropSizeWarning(logging.Filter):
    """Hide imageio-ffmpeg's note that the (deliberately shrunk) counting frames differ in size."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "is different from the source frame size" not in record.getMessage()


@contextmanager
def _quiet_size_warning():
    """Drop that one imageio-ffmpeg warning while the counting reader starts."""
    logger, drop = logging.getLogger("imageio_ffmpeg"), _DropSizeWarning()
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


def _check_range(path: Path, what: str, nth: int, start_s: float, end_s: float | None) -> tuple:
    """Validated (nth, start_s, end_s)."""
    if int(nth) < 1:
        raise InputError(f"{what}: {path}: nth must be 1 or more (every nth frame), got {nth}")
    start_s = float(start_s or 0.0)
    if start_s < 0:
        raise InputError(f"{what}: {path}: start must be 0 s or later, got {start_s:g} s")
    if end_s is not None and float(end_s) <= start_s:
        raise InputError(f"{what}: {path}: end {float(end_s):g} s is not after start {start_s:g} s; "
                         "raise video_end or leave it empty")
    return int(nth), start_s, (float(end_s) if end_s is not None else None)
