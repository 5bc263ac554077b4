"""The finished frames as each format an editor or a browser opens, through the bundled ffmpeg.

mp4: H.264 (or H.265 with `codec: h265`), yuv420p, faststart, AAC sound. webm: VP9 yuv420p, Opus sound.
gif: one palette made for the whole clip (palettegen/paletteuse), the longer side capped at gif_max_side, no sound.
prores: ProRes 422 (prores_ks profile 2, yuv422p10le) in .mov, PCM sound. Every file appears by rename when whole.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from anim.media.video import fps_rational, run_ffmpeg

GIF_MAX_FPS = 50  # GIF delays are whole centiseconds and players slow anything faster than 2 cs down
AUDIO_CODECS = {"mp4": ["-c:a", "aac", "-b:a", "192k"], "webm": ["-c:a", "libopus", "-b:a", "160k"],
                "prores": ["-c:a", "pcm_s16le"]}


def video_codec_args(fmt: str, codec: str, crf: int) -> list[str]:
    """ffmpeg's video encoder arguments of a format (`crf` is x264's 0..51 scale; VP9's is mapped onto 0..63)."""
    if fmt == "mp4" and codec == "h264":
        return ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", str(int(crf)), "-movflags", "+faststart"]
    if fmt == "mp4":
        return ["-c:v", "libx265", "-pix_fmt", "yuv420p", "-crf", str(int(crf)), "-tag:v", "hvc1",
                "-x265-params", "log-level=error", "-movflags", "+faststart"]
    if fmt == "webm":
        return ["-c:v", "libvpx-vp9", "-pix_fmt", "yuv420p", "-crf", str(round(int(crf) * 63 / 51)), "-b:v", "0",
                "-row-mt", "1", "-deadline", "good", "-cpu-used", "4"]
    if fmt == "prores":
        return ["-c:v", "prores_ks", "-profile:v", "2", "-pix_fmt", "yuv422p10le", "-vendor", "apl0"]
    raise ValueError(f"no video encoder for format {fmt!r}")


def atempo_chain(speed: float) -> list[str]:
    """atempo filters whose product is `speed` (each within atempo's 0.5..100): the sound stretched, pitch kept."""
    if abs(speed - 1.0) < 1e-9:
        return []
    steps = []
    while speed < 0.5:
        steps.append("atempo=0.5")
        speed /= 0.5
    return steps + [f"atempo={speed:.6g}"]


def audio_args(fmt: str, audio: Path | None, audio_start_s: float, speed: float, fps_out: float) -> tuple[list, list]:
    """(input arguments, mapping and codec arguments) for the sound: from `audio_start_s` on, played at `speed`,
    padded a hair and cut to the video (-shortest) so the last frame is never lost to AAC's frame rounding."""
    if audio is None or fmt not in AUDIO_CODECS:
        return [], []
    inputs = (["-ss", f"{audio_start_s:.6f}"] if audio_start_s > 0 else []) + ["-i", str(audio)]
    pad_s = 2.0 / float(fps_out) + 0.05
    filters = ",".join([*atempo_chain(speed), f"apad=pad_dur={pad_s:.4f}"])
    return inputs, ["-map", "1:a:0", "-af", filters, *AUDIO_CODECS[fmt], "-shortest"]


def gif_size(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(width, height) scaled down so the longer side is at most `max_side` (never up), aspect kept."""
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def gif_filter(fps: float, size: tuple[int, int], out_size: tuple[int, int]) -> str:
    """One palette for the whole clip (motion-weighted), Sierra dithering; fps capped at GIF_MAX_FPS."""
    steps = [f"fps={GIF_MAX_FPS}"] if fps > GIF_MAX_FPS else []
    if out_size != size:
        steps.append(f"scale={out_size[0]}:{out_size[1]}:flags=lanczos")
    chain = ",".join([*steps, "split[a][b]"])
    return f"[0:v]{chain};[a]palettegen=stats_mode=diff[p];[b][p]paletteuse=dither=sierra2_4a[v]"


def encode_args(fmt: str, *, pattern: str, n_frames: int, fps: float, size: tuple[int, int], output,
                audio: Path | None, audio_start_s: float, speed: float, out_name: str) -> list[str]:
    """The ffmpeg arguments that encode `n_frames` PNGs of `pattern` at `fps` as `fmt` into `out_name`. For mp4
    with H.264 they are those of the render's own encoder (anim.media.video.encode_args)."""
    video_input = ["-framerate", fps_rational(fps), "-start_number", "0", "-i", pattern]
    if fmt == "gif":
        out_size = gif_size(*size, output.gif_max_side)
        frames = [] if fps > GIF_MAX_FPS else ["-frames:v", str(n_frames)]
        return [*video_input, "-filter_complex", gif_filter(fps, size, out_size), "-map", "[v]", *frames,
                "-loop", "0", out_name]
    audio_in, audio_out = audio_args(fmt, audio, audio_start_s, speed, fps)
    return [*video_input, *audio_in, "-map", "0:v:0", *audio_out, "-frames:v", str(n_frames),
            *video_codec_args(fmt, output.codec, output.crf), out_name]


def encode_format(fmt: str, out_path: Path, **kwargs) -> Path:
    """Encode one format into `out_path` through a hidden temp file renamed into place when ffmpeg succeeded."""
    out_path = Path(out_path)
    fd, temp = tempfile.mkstemp(dir=out_path.parent, prefix=f".{out_path.stem}.", suffix=out_path.suffix)
    os.close(fd)
    try:
        run_ffmpeg(encode_args(fmt, out_name=temp, **kwargs), out_path, f"encoding {fmt}")
        os.replace(temp, out_path)
    finally:
        Path(temp).unlink(missing_ok=True)
    return out_path
