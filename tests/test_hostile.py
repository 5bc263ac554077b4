"""Issue Q: hostile and broken input never hangs, never mixes runs, always ends in one line (exit 2).

One test per class of the hostile sweep; each renders the tiny model at 64x64 with 2 steps when it needs frames.
"""
from __future__ import annotations

import errno
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anim.cli import main
from anim.errors import InputError, PresetError

ROOT = Path(__file__).resolve().parent.parent
SMOKE = str(ROOT / "presets" / "smoke.yaml")
TINY = ["max_frames=3", "width=64", "height=64", "steps=2"]


def one_line_error(capsys, argv) -> str:
    """Run the CLI in-process; assert exit code 2 and a single stderr line; return it."""
    assert main([*argv, "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def frames(run: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((run / "frames").glob("*.png"))}


# ---- 1. bounded YAML ----------------------------------------------------------------------------


def bomb_text(levels: int = 9) -> str:
    lines = ["model: tiny", "prompts: {0: a}", "a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def test_yaml_alias_bomb_and_huge_documents_are_one_quick_error(tmp_path, capsys):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(bomb_text())
    started = time.process_time()
    line = one_line_error(capsys, [str(bomb), "--dry-run", "--out", str(tmp_path / "r")])
    assert time.process_time() - started < 1.0
    assert "bomb.yaml" in line and "expands to more than" in line
    huge = tmp_path / "huge.yaml"
    huge.write_text("model: tiny\nprompts: {0: '" + "a" * (5 * 2**20) + "'}\n")
    assert "MiB of YAML" in one_line_error(capsys, [str(huge), "--dry-run", "--out", str(tmp_path / "h")])
    selfref = tmp_path / "self.yaml"
    selfref.write_text("model: tiny\nprompts: {0: a}\nx: &x [*x]\n")
    assert "contains itself" in one_line_error(capsys, [str(selfref), "--dry-run", "--out", str(tmp_path / "s")])


# ---- 2. a frame damaged inside ------------------------------------------------------------------


def flip_inside_idat(path: Path) -> None:
    """Change one byte inside the image data; signature and IEND stay valid."""
    data = bytearray(path.read_bytes())
    at = data.index(b"IDAT") + 40
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_frame_damaged_inside_is_made_again_on_resume(tmp_path):
    from anim.media.png import is_complete_png, read_png_u8

    run = tmp_path / "r"
    assert main([SMOKE, *TINY, "--out", str(run), "--quiet"]) == 0
    reference = frames(run)
    damaged = run / "frames" / "000001.png"
    flip_inside_idat(damaged)
    assert not is_complete_png(damaged)
    with pytest.raises(InputError, match="000001.png"):
        read_png_u8(damaged)
    assert main(["--resume", str(run), "--quiet"]) == 0
    assert frames(run) == reference


# ---- 3. one process per run folder; the guard does not hang on one file ---------------------------


def test_a_run_folder_is_held_by_one_process(tmp_path):
    run = tmp_path / "r"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from anim.runfolder import open_run; "
         f"r = open_run({SMOKE!r}, ['max_frames=2'], out=__import__('pathlib').Path({str(run)!r})); "
         "print('held', flush=True); time.sleep(60)"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        from anim.runfolder import open_run

        with pytest.raises(PresetError, match=rf"pid {holder.pid}.*another --out"):
            open_run(SMOKE, ["max_frames=2"], out=run)
    finally:
        holder.kill()
        holder.wait()
    open_run(SMOKE, ["max_frames=2"], out=run).close()  # a killed holder leaves nothing stuck


def test_frames_of_another_preset_are_refused_without_the_resolved_file(tmp_path, capsys):
    run = tmp_path / "r"
    assert main([SMOKE, *TINY, "--out", str(run), "--quiet"]) == 0
    (run / "preset.resolved.yaml").unlink()
    assert "state.json records" in one_line_error(capsys, [SMOKE, *TINY, "seed=999", "--out", str(run)])
    (run / "state.json").unlink()
    assert "000000.png was made with other values" in one_line_error(capsys, [SMOKE, *TINY, "seed=999", "--out",
                                                                               str(run)])
    assert main([SMOKE, *TINY, "--out", str(run), "--quiet"]) == 0  # the same preset continues


def test_the_stream_encoder_never_waits_for_a_frame_that_will_not_come(tmp_path):
    from anim.media.stream import StreamEncoder

    encoder = StreamEncoder(tmp_path / "v.mp4", width=64, height=64, fps=8, crf=20, n_frames=3,
                            delivered={0, 1, 2}, read_frame=lambda i: np.zeros((64, 64, 3), np.uint8))
    encoder.add(0, np.zeros((64, 64, 3), np.uint8))
    started = time.monotonic()
    with pytest.raises(InputError, match="frame 1 never reached the encoder"):
        encoder.finish()
    assert time.monotonic() - started < 30
    assert not (tmp_path / "v.mp4").exists()


# ---- 4. one line, never a traceback ---------------------------------------------------------------


def test_broken_files_and_full_disks_are_one_line(tmp_path, capsys, monkeypatch):
    big = tmp_path / "big.png"
    Image.new("1", (20000, 20000)).save(big)
    line = one_line_error(capsys, [SMOKE, *TINY, f"init_image={big}", "--out", str(tmp_path / "a")])
    assert "big.png" in line and "scale it down" in line
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert "is a file" in one_line_error(capsys, [SMOKE, *TINY, "--dry-run", "--out", str(a_file)])
    line = one_line_error(capsys, [SMOKE, *TINY, "prompts={0: \"a \\ud800 b\"}", "--dry-run", "--out",
                                   str(tmp_path / "u")])
    assert "prompts.0" in line and "surrogate" in line

    import anim.media.png

    def full_disk(path, payload):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(anim.media.png, "atomic_write_bytes", full_disk)
    line = one_line_error(capsys, [SMOKE, *TINY, "--out", str(tmp_path / "full")])
    assert "000000.png: No space left on device" in line


@pytest.mark.parametrize("state, key", [([], "(top)"), ({"torch_threads": "two"}, "torch_threads"),
                                        ({"torch_threads": -1}, "torch_threads"),
                                        ({"color_reference": 5}, "color_reference"),
                                        ({"color_reference": "../../etc/x.png"}, "color_reference")])
def test_a_broken_state_file_is_named_in_one_line(tmp_path, capsys, state, key):
    run = tmp_path / "r"
    assert main([SMOKE, *TINY, "max_frames=2", "--out", str(run), "--quiet"]) == 0
    (run / "frames" / "000001.png").unlink()
    (run / "state.json").write_text(json.dumps(state))
    line = one_line_error(capsys, ["--resume", str(run)])
    assert "state.json" in line and key in line


def test_metrics_csv_into_a_folder_is_one_line(tmp_path):
    from anim.media.video import encode_video

    src = tmp_path / "src"
    src.mkdir()
    for i in range(3):
        Image.fromarray(np.full((32, 32, 3), 40 * i, np.uint8)).save(src / f"{i:06d}.png")
    video = encode_video(src, tmp_path / "v.mp4", fps=4, crf=20)
    result = subprocess.run([sys.executable, "-m", "anim.metrics", "warp-error", str(video), "--csv", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr


# ---- 5. the pickle promise holds for RAFT --------------------------------------------------------


def test_raft_flow_asks_allow_pickle(tmp_path, capsys):
    line = one_line_error(capsys, [SMOKE, *TINY, "flow_method=raft", "--dry-run", "--out", str(tmp_path / "r")])
    assert "allow_pickle" in line
    assert main([SMOKE, *TINY, "flow_method=raft", "allow_pickle=true", "--dry-run", "--out",
                 str(tmp_path / "ok"), "--quiet"]) == 0


# ---- 6. images load as a viewer shows them -------------------------------------------------------


def test_sixteen_bit_orientation_and_alpha(tmp_path):
    from anim.media.images import ALPHA_BACKGROUND, read_rgb

    ramp = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 16).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    grey = read_rgb(tmp_path / "deep.png", "init_image")[..., 0].astype(int)
    assert np.abs(grey - np.round(ramp / 257)).max() <= 1  # real tones, not clipped to white
    assert grey.mean() < 140
    wide = Image.fromarray(np.zeros((10, 20, 3), np.uint8))
    exif = wide.getexif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    wide.save(tmp_path / "turned.jpg", exif=exif)
    assert read_rgb(tmp_path / "turned.jpg", "init_image").shape == (20, 10, 3)
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0], rgba[:2, :, 3] = 200, 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    flat = read_rgb(tmp_path / "alpha.png", "init_image")
    assert tuple(flat[0, 0]) == (200, 0, 0) and tuple(flat[3, 3]) == ALPHA_BACKGROUND


# ---- 8. nonsense values are refused with the valid range -----------------------------------------


@pytest.mark.parametrize("override, key", [("denoise=1.5", "denoise"), ("denoise=-1", "denoise"),
                                           ("steps=0", "steps"), ('steps="0:(1e9)"', "steps"),
                                           ("cfg_scale=-3", "cfg_scale")])
def test_out_of_range_schedules_are_refused(tmp_path, capsys, override, key):
    line = one_line_error(capsys, [SMOKE, override, "--dry-run", "--out", str(tmp_path / "r")])
    assert f"{key}: is" in line and "valid values are" in line


# ---- 9. no --force across a size change ------------------------------------------------------------


def test_force_does_not_mix_frame_sizes(tmp_path, capsys):
    run = tmp_path / "r"
    assert main([SMOKE, *TINY, "max_frames=2", "--out", str(run), "--quiet"]) == 0
    line = one_line_error(capsys, [SMOKE, *TINY, "width=128", "--out", str(run), "--force"])
    assert "64x64" in line and "128x64" in line


# ---- 7. checks come first and point to the right place -------------------------------------------


def test_inputs_are_checked_before_any_frame_and_named(tmp_path, capsys):
    not_audio = tmp_path / "song.wav"
    not_audio.write_bytes(b"not audio" * 50)
    line = one_line_error(capsys, [SMOKE, *TINY, f"output.audio={not_audio}", "--out", str(tmp_path / "a")])
    assert line.startswith("anim: error: output.audio:") and "song.wav" in line
    assert not list((tmp_path / "a" / "frames").glob("*.png"))  # refused before the first frame
    line = one_line_error(capsys, [SMOKE, "prompts={0: 5}", "--dry-run", "--out", str(tmp_path / "p")])
    assert "override 'prompts={0: 5}'" in line
    line = one_line_error(capsys, [SMOKE, "controlnet.5.weight=1", "--dry-run", "--out", str(tmp_path / "c")])
    assert "override 'controlnet.5.weight=1'" in line and "no item 5" in line


def test_an_audio_only_init_video_is_named_as_such(tmp_path, capsys):
    from anim.media.video import make_test_audio

    sound = make_test_audio(tmp_path / "tone.wav", seconds=1.0)
    line = one_line_error(capsys, [SMOKE, f"init_video={sound}", "max_frames=null", "--dry-run", "--out",
                                   str(tmp_path / "r")])
    assert "has sound but no video stream" in line


def test_ffmpeg_messages_name_the_cause_not_the_statistics():
    from anim.media.video import last_meaningful_line

    stderr = ("[mp4 @ 0x55d] av_interleaved_write_frame(): No space left on device\n"
              "Error writing trailer of out.mp4: No space left on device\n"
              "frame=    8 fps=0.0 q=-1.0 Lsize=      12kB time=00:00:01.00 bitrate=  98.3kbits/s speed=4x\n"
              "video:10kB audio:0kB subtitle:0kB other streams:0kB global headers:0kB muxing overhead: kb/s:262.50\n"
              "Conversion failed!\n")
    assert last_meaningful_line(stderr) == "Error writing trailer of out.mp4: No space left on device"


# ---- 11. small things ----------------------------------------------------------------------------


def test_finished_runs_are_not_encoded_again_and_kill_leftovers_are_swept(tmp_path):
    run = tmp_path / "r"
    assert main([SMOKE, *TINY, "max_frames=2", "--out", str(run), "--quiet"]) == 0
    video = run / "video.mp4"
    made = video.stat().st_mtime_ns
    leftovers = [run / "frames" / ".000001.png.abc.tmp", run / ".state.json.xyz.tmp"]
    for path in leftovers:
        path.write_bytes(b"half")
    assert main(["--resume", str(run), "--quiet"]) == 0
    assert video.stat().st_mtime_ns == made
    assert not any(path.exists() for path in leftovers)
    assert main([SMOKE, *TINY, "max_frames=2", "output.crf=30", "--out", str(run), "--quiet"]) == 0
    assert video.stat().st_mtime_ns > made  # an output setting changed: encoded again


def test_sigterm_on_a_render_says_so(tmp_path):
    proc = subprocess.Popen([sys.executable, "render.py", SMOKE, "max_frames=200", "width=64", "height=64",
                             "steps=2", "--out", str(tmp_path / "r"), "--quiet"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not list((tmp_path / "r" / "frames").glob("*.png")) and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.terminate()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and "terminated (SIGTERM)" in err and "--resume" in err


def test_a_cut_video_says_how_many_frames_it_lost(tmp_path, caplog):
    import imageio_ffmpeg

    from anim.media.video import encode_video
    from anim.media.videosource import VideoSource

    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(0)
    for i in range(24):
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(src / f"{i:06d}.png")
    whole = encode_video(src, tmp_path / "v.mp4", fps=8, crf=20)
    moov_first = tmp_path / "fs.mp4"  # index at the front, so a cut file still decodes its first part
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(whole), "-c", "copy",
                    "-movflags", "+faststart", str(moov_first)], check=True)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(moov_first.read_bytes()[: moov_first.stat().st_size // 2])
    with caplog.at_level("WARNING", logger="anim"):
        assert VideoSource(whole, 64, 64, "crop", "init_video").n_frames == 24
        assert not caplog.records
        frames = VideoSource(cut, 64, 64, "crop", "init_video").n_frames
    assert frames < 24 and f"decodes to {frames} frames" in caplog.text and "cut.mp4" in caplog.text
