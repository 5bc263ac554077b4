"""ffmpeg encoding while the frames are made, so the video is ready moments after the last frame.

The render hands each frame (the uint8 pixels its PNG holds) to `StreamEncoder.add` in any order
(cadence makes in-betweens after their next key); a feeder thread puts them into ffmpeg's stdin in
frame order, reading frames that were already on disk (a resumed run) from their PNGs. ffmpeg gets
the same pixels and the same arguments as anim.media.video.encode_video, so the file is the same as an
encode of the PNGs afterwards. The target appears only when every frame went in and ffmpeg succeeded.
"""
from __future__ import annotations

import os
import queue
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Callable

import numpy as np

from anim.errors import InputError
from anim.media.video import (
    check_encode_inputs,
    encode_args,
    ffmpeg_exe,
    fps_rational,
    last_meaningful_line,
)

_STOP = object()  # abort: stop feeding
_DONE = object()  # the render made its last frame: a frame still awaited will never come


class StreamEncoder:
    """One ffmpeg process fed frames 0..n_frames-1; `finish()` returns the mp4, `abort()` leaves nothing."""

    def __init__(self, out_path: Path, *, width: int, height: int, fps: float, crf: int, n_frames: int,
                 delivered: set[int], read_frame: Callable[[int], np.ndarray], audio: Path | None = None,
                 audio_start_s: float = 0.0) -> None:
        if width % 2 or height % 2:
            raise InputError(f"frame size {width}x{height} is odd; H.264 yuv420p needs even width and height")
        check_encode_inputs(audio, crf)
        self.out_path, self.n_frames = Path(out_path), int(n_frames)
        self.size = (int(height), int(width))
        self.delivered, self.read_frame = set(delivered), read_frame
        self.out_path.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp_name = tempfile.mkstemp(dir=self.out_path.parent, prefix=f".{self.out_path.stem}.",
                                             suffix=self.out_path.suffix or ".mp4")
        os.close(fd)
        video_input = ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
                       "-framerate", fps_rational(fps), "-i", "pipe:0"]
        args = encode_args(video_input, self.n_frames, fps, crf, audio, audio_start_s, self.tmp_name)
        self._stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([ffmpeg_exe(), "-hide_banner", "-y", *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, stderr=self._stderr)
        self._inbox: queue.Queue = queue.Queue()
        self._error: BaseException | None = None
        self.fed = 0
        self._thread = threading.Thread(target=self._feed, name="anim-encoder", daemon=True)
        self._thread.start()

    def add(self, index: int, image_u8: np.ndarray) -> None:
        """Frame `index` as its PNG holds it (H, W, 3) uint8; any order, each delivered frame once. Raises the
        encoder's error as soon as ffmpeg has failed, so the render stops in one line instead of queueing on
        (ffmpeg stopped and its partial output removed first: nothing is left behind whoever catches it)."""
        if self._error is not None:
            self.abort()
            raise self._error
        self._inbox.put((int(index), image_u8))

    def finish(self) -> Path:
        """Wait for the last frame and for ffmpeg; rename the video into place and return its path.
        Never blocks on a frame the render did not deliver: that is an error naming the frame."""
        self._inbox.put(_DONE)
        self._thread.join()
        self.proc.stdin.close()
        code = self.proc.wait()
        try:
            if self._error is not None:
                raise self._error
            if code != 0 or self.fed != self.n_frames:
                raise InputError(f"{self.out_path}: encoding failed: {self._message()}")
            os.replace(self.tmp_name, self.out_path)
            return self.out_path
        finally:
            self._cleanup()

    def abort(self) -> None:
        """Stop ffmpeg and remove its partial output (the render stopped before the last frame)."""
        self._inbox.put(_STOP)
        self.proc.kill()
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        self._thread.join(timeout=10)
        self.proc.wait()
        self._cleanup()

    def _feed(self) -> None:
        """Write frames to ffmpeg in order: delivered ones from the inbox (reordered), others from disk."""
        waiting: dict[int, np.ndarray] = {}
        try:
            for index in range(self.n_frames):
                if index in self.delivered:
                    while index not in waiting:
                        item = self._inbox.get()
                        if item is _STOP:
                            return
                        if item is _DONE:
                            raise InputError(f"{self.out_path}: frame {index} never reached the encoder "
                                             "(was it made by another process?); render again to encode")
                        waiting[item[0]] = item[1]
                    image = waiting.pop(index)
                else:
                    image = self.read_frame(index)
                self._write(index, image)
        except BaseException as exc:  # noqa: BLE001 - reported by finish()
            self._error = exc

    def _write(self, index: int, image: np.ndarray) -> None:
        if image.shape != (*self.size, 3) or image.dtype != np.uint8:
            raise InputError(f"frame {index}: {image.shape} {image.dtype} is not a {self.size[1]}x{self.size[0]} "
                             "RGB uint8 frame")
        try:
            self.proc.stdin.write(np.ascontiguousarray(image).tobytes())
        except (BrokenPipeError, OSError):
            raise InputError(f"{self.out_path}: encoding failed at frame {index}: {self._message()}") from None
        self.fed += 1

    def _message(self) -> str:
        self._stderr.seek(0)
        return last_meaningful_line(self._stderr.read().decode("utf-8", errors="replace"))

    def _cleanup(self) -> None:
        self._stderr.close()
        if os.path.exists(self.tmp_name):
            os.remove(self.tmp_name)
