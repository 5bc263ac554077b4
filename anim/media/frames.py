"""Frame sources on disk: one image or a folder of images, resized to the render size.

Every source yields frames already resized (crop = cover + centre crop, fit = letterbox on black,
stretch), indexed from 0 and clamped to the last frame; only the few most recently used frames are kept.
"""
from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from anim.errors import InputError
from anim.media.images import cover_geometry, cover_resize, read_rgb

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
RESIZE_MODES = ("crop", "fit", "stretch")
RECENT_FRAMES = 8  # decoded frames kept per source (re-reads of the same frame, clamped tails)


# ---------------------------------------------------------------- resizing


def resize_transform(src_w: int, src_h: int, width: int, height: int, mode: str) -> tuple[float, float, float, float]:
    """(scale_x, scale_y, offset_x, offset_y) that maps source pixels to the resized frame."""
    if mode == "stretch":
        return width / src_w, height / src_h, 0.0, 0.0
    if mode == "crop":  # the geometry cover_resize uses for the pixels
        new_w, new_h, left, top = cover_geometry(src_w, src_h, width, height)
        return new_w / src_w, new_h / src_h, -float(left), -float(top)
    if mode == "fit":
        new_w, new_h = _fit_size(src_w, src_h, width, height)
        return new_w / src_w, new_h / src_h, float((width - new_w) // 2), float((height - new_h) // 2)
    raise InputError(f"resize mode {mode!r}: use one of {', '.join(RESIZE_MODES)}")


def _fit_size(src_w: int, src_h: int, width: int, height: int) -> tuple[int, int]:
    """Largest size with the source's aspect that fits inside width x height."""
    scale = min(width / src_w, height / src_h)
    return min(width, max(1, round(src_w * scale))), min(height, max(1, round(src_h * scale)))


def resize_frame(image_u8: np.ndarray, width: int, height: int, mode: str) -> np.ndarray:
    """An (H, W, 3) uint8 frame resized to height x width by `mode` (Lanczos, like init images)."""
    h, w = image_u8.shape[:2]
    if (w, h) == (width, height):
        return np.ascontiguousarray(image_u8)
    if mode == "crop":
        return cover_resize(image_u8, width, height)
    if mode == "stretch":
        return np.asarray(Image.fromarray(image_u8).resize((width, height), Image.Resampling.LANCZOS))
    if mode == "fit":
        new_w, new_h = _fit_size(w, h, width, height)
        inner = np.asarray(Image.fromarray(image_u8).resize((new_w, new_h), Image.Resampling.LANCZOS))
        canvas = np.zeros((height, width, 3), dtype=np.uint8)
        top, left = (height - new_h) // 2, (width - new_w) // 2
        canvas[top:top + new_h, left:left + new_w] = inner
        return canvas
    raise InputError(f"resize mode {mode!r}: use one of {', '.join(RESIZE_MODES)}")


def file_identity(path: Path) -> dict:
    """Path, size and modification time: enough to notice an edited input for the map cache."""
    stat = path.stat()
    return {"path": str(path.resolve()), "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def files_identity(folder: Path, files: list[Path]) -> dict:
    """A folder's identity: its path and a digest of every file's name, size and mtime."""
    digest = hashlib.sha256()
    for file in files:
        stat = file.stat()
        digest.update(f"{file.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return {"path": str(folder.resolve()), "files": len(files), "digest": digest.hexdigest()[:16]}


# ---------------------------------------------------------------- sources


class FrameSource:
    """Frames 0..n_frames-1 at width x height; `frame(i)` clamps i to the last frame."""

    kind = "source"
    fps: float | None = None  # frames per second of the yielded sequence (None: not a video)

    def __init__(self, path: Path, width: int, height: int, resize: str, what: str) -> None:
        if resize not in RESIZE_MODES:
            raise InputError(f"{what}: resize {resize!r}: use one of {', '.join(RESIZE_MODES)}")
        self.path, self.width, self.height, self.resize, self.what = Path(path), int(width), int(height), resize, what
        self.n_frames = 0
        self._recent: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def frame(self, index: int) -> np.ndarray:
        """Frame `index` (clamped to [0, n_frames-1]) as a read-only (H, W, 3) uint8 array."""
        index = min(max(int(index), 0), self.n_frames - 1)
        with self._lock:
            if index in self._recent:
                self._recent.move_to_end(index)
                return self._recent[index]
            image = self._load(index)
            image.setflags(write=False)
            self._recent[index] = image
            if len(self._recent) > RECENT_FRAMES:
                self._recent.popitem(last=False)
            return image

    def _load(self, index: int) -> np.ndarray:
        raise NotImplementedError

    def identity(self) -> dict:
        """What the frames depend on (file identities and selection), for the control-map cache."""
        raise NotImplementedError

    def close(self) -> None:
        """Release decoders (a no-op for still images)."""


class ImageSource(FrameSource):
    """One image, the same on every frame."""

    kind = "image"

    def __init__(self, path: Path, width: int, height: int, resize: str, what: str) -> None:
        super().__init__(path, width, height, resize, what)
        self._image = resize_frame(read_rgb(self.path, what), self.width, self.height, resize)
        self.n_frames = 1

    def _load(self, index: int) -> np.ndarray:
        return self._image.copy()

    def identity(self) -> dict:
        return {"kind": self.kind, **file_identity(self.path)}


class FolderSource(FrameSource):
    """A folder of images, one per frame, sorted by file name; all must share one size."""

    kind = "folder"

    def __init__(self, path: Path, files: list[Path], width: int, height: int, resize: str, what: str) -> None:
        super().__init__(path, width, height, resize, what)
        self.files = files
        self.n_frames = len(files)
        self.source_size = _common_size(path, files, what)

    def _load(self, index: int) -> np.ndarray:
        return resize_frame(read_rgb(self.files[index], self.what), self.width, self.height, self.resize)

    def identity(self) -> dict:
        return {"kind": self.kind, **files_identity(self.path, self.files)}


def _common_size(folder: Path, files: list[Path], what: str) -> tuple[int, int]:
    """The (width, height) every image in the folder shares; InputError naming two that differ."""
    first = None
    for file in files:
        try:
            with Image.open(file) as image:
                size = image.size[::-1] if image.getexif().get(0x0112, 1) in (5, 6, 7, 8) else image.size  # EXIF turn
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
            raise InputError(f"{what}: cannot read image {file} ({exc}); re-export it or remove it") from None
        if first is None:
            first = (file, size)
        elif size != first[1]:
            raise InputError(f"{what}: folder {folder} mixes image sizes: {first[0].name} is {first[1][0]}x"
                             f"{first[1][1]} but {file.name} is {size[0]}x{size[1]}; resize them to one size")
    return first[1]
