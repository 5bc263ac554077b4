"""Video in and out through the ffmpeg binary bundled with imageio-ffmpeg.

Encoding is libx264/yuv420p with no scale filter (frames are never silently resized), optional
audio muxed with ``-shortest``, written to a temp file beside the target and renamed into place.
Every failure is an ``InputError`` naming the path and ffmpeg's last meaningful stderr line.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Sequence

import imageio_ffmpeg
import numpy as np

from anim.errors import InputError
from anim.media.frames import IMAGE_SUFFIXES

# ffmpeg's closing lines that say nothing about the cause.
_GENERIC_STDERR = ("conversion failed!", "exiting normally", "error opening input file ", "error opening output file ",
                   "at least one output file must be specified")
# Lines that name a cause; preferred over the statistics ffmpeg prints last (`video:..kB ... kb/s:...`).
_CAUSE = re.compile(r"error|no space|denied|invalid|no such file|read-only|not supported|unknown|could not|cannot",
                    re.IGNORECASE)
_LOG_PREFIX = re.compile(r"^\[[^\]]*@ 0x[0-9a-f]+\]\s*")
_FAILED_INPUT = re.compile(r"^Error opening input file (.+)\.$", re.MULTILINE)
_AUDIO_STREAM = re.compile(r"^\s*Stream #\d+:\d+.*?: Audio:", re.MULTILINE)


@dataclass(frozen=True)
class VideoInfo:
    """What ``probe_video`` learns about a file."""

    width: int
    height: int
    fps: float
    n_frames: int
    duration_s: float
    has_audio: bool


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary shipped with imageio-ffmpeg (or IMAGEIO_FFMPEG_EXE)."""
    return imageio_ffmpeg.get_ffmpeg_exe()


def last_meaningful_line(stderr: str) -> str:
    """The last stderr line that names a cause, without ffmpeg's ``[ctx @ 0x..]`` prefix."""
    every = [_LOG_PREFIX.sub("", line).strip() for line in stderr.splitlines()]
    lines = [line for line in every if line and not line.lower().startswith(_GENERIC_STDERR)]
    for line in reversed(lines):
        if _CAUSE.search(line):
            return line
    if lines:
        return lines[-1]
    every = [line for line in every if line]
    return every[-1] if every else "ffmpeg gave no message"


def _run_ffmpeg(args: Sequence[str], path: Path, what: str) -> str:
    """Run ffmpeg quietly; on failure raise InputError naming ``path`` (or the input ffmpeg could
    not open). Returns stderr."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-nostdin", "-y", *map(str, args)]
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = proc.stderr.decode("utf-8", errors="replace")
    if proc.returncode != 0:
        failed_input = _FAILED_INPUT.search(stderr)
        culprit = f"{path}: {what} failed on input {failed_input.group(1)}" if failed_input else f"{path}: {what} failed"
        raise InputError(f"{culprit}: {last_meaningful_line(stderr)}")
    return stderr


def run_ffmpeg(args: Sequence[str], path: Path, what: str) -> str:
    """Run ffmpeg with `args` (the finishing steps' filters and encoders); InputError naming `path` on failure."""
    return _run_ffmpeg(args, path, what)


def fps_rational(fps: float) -> str:
    """Frame rate as ffmpeg's exact rational text, e.g. 29.97002997 -> '30000/1001'."""
    if not fps > 0:
        raise InputError(f"fps must be positive, got {fps}")
    return str(Fraction(fps).limit_denominator(100_000))


# ---- encoding --------------------------------------------------------------------------------


def list_pattern_frames(frames_dir: Path, pattern: str, start_number: int) -> list[Path]:
    """Consecutive frames ``pattern % n`` from ``start_number`` up to the first gap."""
    frames = []
    number = start_number
    while (frames_dir / (pattern % number)).is_file():
        frames.append(frames_dir / (pattern % number))
        number += 1
    return frames


def check_frame_sizes(frames: Sequence[Path]) -> tuple[int, int]:
    """(width, height) shared by every frame; InputError on a missing, unreadable, odd-sized or
    differently sized frame (ffmpeg would rescale it silently)."""
    from PIL import Image

    size = None
    for frame in frames:
        try:
            with Image.open(frame) as img:
                frame_size = img.size
        except FileNotFoundError:
            raise InputError(f"{frame}: frame not found") from None
        except OSError as exc:
            raise InputError(f"{frame}: not a readable image ({exc})") from None
        if size is None:
            size = frame_size
            if size[0] % 2 or size[1] % 2:
                raise InputError(
                    f"{frame}: frame size {size[0]}x{size[1]} is odd; H.264 yuv420p needs even width "
                    "and height (render at an even size)"
                )
        elif frame_size != size:
            raise InputError(f"{frame}: frame size {frame_size[0]}x{frame_size[1]} differs from {size[0]}x{size[1]}")
    if size is None:
        raise InputError("no frames to encode")
    return size


def _link_sequence(frames: Sequence[Path], folder: Path) -> str:
    """Link (or copy) ``frames`` into ``folder`` as 000000.png, ...; returns the input pattern."""
    for index, frame in enumerate(frames):
        target = folder / f"{index:06d}{frame.suffix}"
        try:
            os.symlink(os.path.abspath(frame), target)
        except OSError:  # no symlinks here (e.g. Windows without the privilege)
            shutil.copyfile(frame, target)
    return str(folder / f"%06d{frames[0].suffix}")


def check_encode_inputs(audio: Path | None, crf: int, what: str = "audio") -> None:
    """The audio file exists and has a sound track, and crf is in x264's range (before any frame is made)."""
    if audio is not None and not Path(audio).is_file():
        raise InputError(f"{what}: {audio}: audio file not found")
    if audio is not None and not source_audio(audio):
        raise InputError(f"{what}: {audio} has no sound track ffmpeg can read; give an audio or video file with sound")
    if not 0 <= int(crf) <= 51:
        raise InputError(f"crf must be in 0..51, got {crf}")


def encode_args(video_input: list[str], n_frames: int, fps: float, crf: int, audio: Path | None,
                audio_start_s: float, out_name: str) -> list[str]:
    """ffmpeg arguments after the video input: audio from `audio_start_s` on, H.264 yuv420p at `crf`."""
    args = list(video_input)
    if audio is not None:
        args += (["-ss", f"{audio_start_s:.6f}"] if audio_start_s > 0 else []) + ["-i", str(audio)]
    args += ["-map", "0:v:0"]
    if audio is not None:
        # -shortest, with the audio padded by a hair (two frames + one AAC frame) so streams of equal
        # length never lose the last video frame to AAC's frame rounding
        pad_s = 2.0 / float(fps) + 0.05
        args += ["-map", "1:a:0", "-af", f"apad=pad_dur={pad_s:.4f}", "-c:a", "aac", "-b:a", "192k", "-shortest"]
    return args + ["-frames:v", str(n_frames), "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", str(int(crf)),
                   "-movflags", "+faststart", out_name]


def encode_video(
    frames_dir: Path,
    out_path: Path,
    fps: float,
    crf: int = 18,
    audio: Path | None = None,
    pattern: str = "%06d.png",
    start_number: int = 0,
    frames: Sequence[Path] | None = None,
    audio_start_s: float = 0.0,
) -> Path:
    """Encode ``frames_dir/pattern`` from ``start_number`` (or exactly the ``frames`` paths, for a
    sub-range) to H.264 mp4 at ``fps``; mux ``audio`` from ``audio_start_s`` seconds on (re-encoded
    to AAC, cut to the shorter), so a clip of a longer source keeps its sound in sync.
    Atomic: the target appears only when ffmpeg succeeded. Returns ``out_path``."""
    frames_dir, out_path = Path(frames_dir), Path(out_path)
    if frames is None:
        if not frames_dir.is_dir():
            raise InputError(f"{frames_dir}: frames folder not found")
        frames = list_pattern_frames(frames_dir, pattern, start_number)
        if not frames:
            raise InputError(f"{frames_dir / (pattern % start_number)}: first frame not found")
    frames = [Path(frame) for frame in frames]
    check_frame_sizes(frames)
    check_encode_inputs(audio, crf)

    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=out_path.parent, prefix=f".{out_path.stem}.", suffix=out_path.suffix or ".mp4")
    os.close(fd)
    link_dir = Path(tempfile.mkdtemp(dir=out_path.parent, prefix=f".{out_path.stem}.frames."))
    try:
        input_pattern = _link_sequence(frames, link_dir)
        video_input = ["-framerate", fps_rational(fps), "-start_number", "0", "-i", input_pattern]
        args = encode_args(video_input, len(frames), fps, crf, audio, audio_start_s, tmp_name)
        _run_ffmpeg(args, out_path, "encoding")
        os.replace(tmp_name, out_path)
    finally:
        if os.path.exists(tmp_name):
            os.remove(tmp_name)
        shutil.rmtree(link_dir, ignore_errors=True)
    return out_path


# ---- probing and decoding --------------------------------------------------------------------


def _require_file(path: Path, what: str = "video") -> Path:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: {what} file not found")
    return path


def ffmpeg_header(path: Path) -> str:
    """ffmpeg's description of an input (the stderr of ``ffmpeg -i path``)."""
    proc = subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    return proc.stderr.decode("utf-8", errors="replace")


def probe_video(path: Path) -> VideoInfo:
    """Size, frame rate, frame count (by decoding: exact but slow for long files), duration and
    whether there is an audio stream. InputError on a missing or unreadable file."""
    path = _require_file(path)
    header = ffmpeg_header(path)
    if "Video:" not in header:
        raise InputError(f"{path}: not a readable video: {last_meaningful_line(header)}")
    meta = _video_meta(path)
    try:
        n_frames, n_secs = imageio_ffmpeg.count_frames_and_secs(str(path))
    except (OSError, RuntimeError) as exc:
        raise InputError(f"{path}: not a readable video: {last_meaningful_line(str(exc))}") from None
    width, height = meta["size"]
    fps = float(meta.get("fps") or 0.0)
    duration_s = float(meta.get("duration") or n_secs or (n_frames / fps if fps else 0.0))
    return VideoInfo(int(width), int(height), fps, int(n_frames), duration_s, bool(_AUDIO_STREAM.search(header)))


@dataclass(frozen=True)
class Codecs:
    """What a file's first video stream is coded as (``h264``, ``yuv420p``), and its first audio codec or None."""

    video: str
    pix_fmt: str
    audio: str | None


_VIDEO_CODEC = re.compile(r"^\s*Stream #\d+:\d+.*?: Video: (\w+)[^,\n]*, (\w+)", re.MULTILINE)
_AUDIO_CODEC = re.compile(r"^\s*Stream #\d+:\d+.*?: Audio: (\w+)", re.MULTILINE)


def probe_codecs(path: Path) -> Codecs:
    """The codec and pixel format of a video file as ffmpeg reads them (no ffprobe in imageio-ffmpeg)."""
    path = _require_file(path)
    header = ffmpeg_header(path)
    video, audio = _VIDEO_CODEC.search(header), _AUDIO_CODEC.search(header)
    if video is None:
        raise InputError(f"{path}: not a readable video: {last_meaningful_line(header)}")
    return Codecs(video.group(1), video.group(2), audio.group(1) if audio else None)


def _video_meta(path: Path) -> dict:
    """imageio-ffmpeg's metadata of a video (size, fps, duration) without decoding it; InputError if unreadable."""
    try:
        reader = imageio_ffmpeg.read_frames(str(path))
        meta = next(reader)
        reader.close()
    except (OSError, RuntimeError, StopIteration) as exc:
        raise InputError(f"{path}: not a readable video: {last_meaningful_line(str(exc))}") from None
    return meta


def video_fps(path: Path) -> float:
    """A video's frame rate (0.0 when unknown), without decoding its frames."""
    return float(_video_meta(_require_file(Path(path))).get("fps") or 0.0)


def read_frames(
    path: Path, *, nth: int = 1, start_s: float | None = None, end_s: float | None = None
) -> Iterator[np.ndarray]:
    """Decode frames as (H, W, 3) uint8 RGB arrays: every ``nth`` one, from ``start_s`` (seek,
    frame accurate) to before ``end_s`` seconds."""
    path = _require_file(path)
    if nth < 1:
        raise InputError(f"nth must be >= 1, got {nth}")
    input_params = ["-ss", f"{start_s:.6f}"] if start_s else []
    output_params = []
    if end_s is not None:
        length_s = end_s - (start_s or 0.0)
        if length_s <= 0:
            return
        output_params = ["-t", f"{length_s:.6f}"]
    try:
        reader = imageio_ffmpeg.read_frames(str(path), input_params=input_params, output_params=output_params)
        width, height = next(reader)["size"]
    except (OSError, RuntimeError, StopIteration) as exc:
        raise InputError(f"{path}: not a readable video: {last_meaningful_line(str(exc))}") from None
    try:
        for index, raw in enumerate(reader):
            if index % nth == 0:
                yield np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3).copy()
    except RuntimeError as exc:
        raise InputError(f"{path}: decoding failed: {last_meaningful_line(str(exc))}") from None
    finally:
        reader.close()


def write_test_video(path: Path, frames: Sequence[np.ndarray], fps: float = 12, crf: int = 10) -> Path:
    """Write (H, W, 3) uint8 RGB frames as an H.264 mp4 (a test or benchmark input; sides multiples of 16)."""
    height, width = frames[0].shape[:2]
    writer = imageio_ffmpeg.write_frames(str(path), (width, height), fps=fps, quality=None,
                                         output_params=["-crf", str(int(crf))], macro_block_size=16)
    writer.send(None)
    for frame in frames:
        writer.send(np.ascontiguousarray(frame))
    writer.close()
    return Path(path)


def make_test_audio(path: Path, seconds: float, freq_hz: float = 440) -> Path:
    """Write a sine tone of ``seconds`` (.wav as PCM, anything else as AAC, e.g. .m4a)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    codec = ["-c:a", "pcm_s16le"] if path.suffix.lower() == ".wav" else ["-c:a", "aac"]
    source = f"sine=frequency={freq_hz}:sample_rate=44100:duration={seconds}"
    _run_ffmpeg(["-f", "lavfi", "-i", source, *codec, str(path)], path, "making test audio")
    return path


_AUDIO_STREAM = re.compile(r"^\s*Stream #\d+:\d+.*?: Audio:", re.MULTILINE)


def source_audio(path: str | Path) -> bool:
    """Whether a video file has an audio stream (for copying the source's sound into the render)."""
    path = Path(path)
    if not path.is_file() or path.suffix.lower() in IMAGE_SUFFIXES:
        return False
    return bool(_AUDIO_STREAM.search(ffmpeg_header(path)))
