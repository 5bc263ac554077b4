"""Control-frame sources: a video file, a folder of images or OpenPose JSON files, or one image.

The image and video sources live in anim.media; this adds OpenPose JSON folders (skeletons drawn at the
render size) and `open_source`, which picks the source for a path.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from anim.control.pose import draw_openpose, normalised, place_keypoints, read_pose_json
from anim.errors import InputError
from anim.media.frames import (
    IMAGE_SUFFIXES,
    FolderSource,
    FrameSource,
    ImageSource,
    files_identity,
    resize_transform,
)

WAY_OUT = "pass a video file, a folder of images (or OpenPose JSON files), or one image"


class PoseJsonSource(FrameSource):
    """A folder of OpenPose JSON files, one per frame, drawn as openpose skeleton maps.

    Keypoints are in pixels of `canvas_width` x `canvas_height` when the file says so, else in
    image fractions when every coordinate is within [0, 1], else in pixels of the render size.
    """

    kind = "pose_json"

    def __init__(self, path: Path, files: list[Path], width: int, height: int, resize: str, what: str) -> None:
        super().__init__(path, width, height, resize, what)
        self.files = files
        self.n_frames = len(files)

    def keypoints(self, index: int) -> list[np.ndarray]:
        """People on frame `index` as (18, 3) [x_px, y_px, confidence] in render pixels."""
        index = min(max(int(index), 0), self.n_frames - 1)
        people, canvas = read_pose_json(self.files[index])
        if canvas is not None:
            transform = resize_transform(canvas[0], canvas[1], self.width, self.height, self.resize)
        elif normalised(people):
            transform = (float(self.width), float(self.height), 0.0, 0.0)
        else:
            transform = (1.0, 1.0, 0.0, 0.0)
        return [place_keypoints(k, transform) for k in people]

    def _load(self, index: int) -> np.ndarray:
        return draw_openpose(self.keypoints(index), self.width, self.height)

    def identity(self) -> dict:
        return {"kind": self.kind, **files_identity(self.path, self.files)}


def open_source(spec: str | Path, *, width: int, height: int, resize: str = "crop", nth: int = 1,
                start_s: float = 0.0, end_s: float | None = None, what: str = "input") -> FrameSource:
    """Open a video file, an image folder, an OpenPose JSON folder or one image as a FrameSource."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return _open_folder(path, width, height, resize, what)
    if not path.is_file():
        raise InputError(f"{what}: not found: {path}; {WAY_OUT}")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return ImageSource(path, width, height, resize, what)
    from anim.media.videosource import VideoSource

    return VideoSource(path, width, height, resize, what, nth=nth, start_s=start_s, end_s=end_s)


def _open_folder(path: Path, width: int, height: int, resize: str, what: str) -> FrameSource:
    """Images in the folder (sorted by name) or, when there are none, its OpenPose JSON files."""
    files = sorted((p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")), key=lambda p: p.name)
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    if images:
        return FolderSource(path, images, width, height, resize, what)
    poses = [p for p in files if p.suffix.lower() == ".json"]
    if poses:
        return PoseJsonSource(path, poses, width, height, resize, what)
    raise InputError(f"{what}: folder {path} holds no images ({', '.join(IMAGE_SUFFIXES)}) and no .json "
                     "pose files; put the frames there or point to a video")
