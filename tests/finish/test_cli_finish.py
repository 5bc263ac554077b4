"""`render.py finish RUN_DIR [output.key=value ...]`: the finishing steps alone, on a rendered run."""
from __future__ import annotations

import yaml

from anim.cli import main
from anim.media.video import probe_codecs, probe_video
from anim.runfolder import open_run


def preview_run(tmp_path, **output):
    """A 4-frame 64x64 --preview run (camera path only: no model) with the given output section."""
    preset = tmp_path / "p.yaml"
    preset.write_text(yaml.safe_dump({"model": "tiny", "width": 64, "height": 64, "fps": 4, "max_frames": 4,
                                      "prompts": {0: "a"}, "motion": {"mode": "2d", "zoom": "0:(1.05)"},
                                      "output": output}))
    run_dir = tmp_path / "run"
    assert main([str(preset), "--preview", "--out", str(run_dir), "--quiet"]) == 0
    return run_dir


def test_finish_adds_formats_to_a_finished_run_and_records_them(tmp_path, capsys):
    run_dir = preview_run(tmp_path)
    assert not (run_dir / "finish.json").exists()  # the plain render streams video.mp4, no finishing
    mp4_made = (run_dir / "video.mp4").stat().st_mtime_ns
    assert main(["finish", str(run_dir), "output.formats=[mp4, gif]", "output.interpolate={factor: 2}"]) == 0
    assert f"finished {run_dir}: {run_dir / 'video.mp4'}" in capsys.readouterr().out
    assert probe_video(run_dir / "video.gif").n_frames == 8 and probe_video(run_dir / "video.mp4").n_frames == 8
    assert (run_dir / "video.mp4").stat().st_mtime_ns > mp4_made
    stored = yaml.safe_load((run_dir / "preset.resolved.yaml").read_text())["output"]
    assert stored["formats"] == ["mp4", "gif"] and stored["interpolate"]["factor"] == 2
    from anim.runfolder import is_finished

    run = open_run(None, [], resume=run_dir)
    try:
        assert is_finished(run)
    finally:
        run.close()
    gif_made = (run_dir / "video.gif").stat().st_mtime_ns
    assert main(["finish", str(run_dir)]) == 0  # all done with these settings: nothing is made again
    assert (run_dir / "video.gif").stat().st_mtime_ns == gif_made
    assert main(["finish", str(run_dir), "output.codec=h265", "--redo"]) == 0
    assert probe_codecs(run_dir / "video.mp4").video == "hevc"


def test_finish_refuses_other_keys_missing_frames_and_non_run_folders(tmp_path, capsys):
    run_dir = preview_run(tmp_path)
    assert main(["finish", str(run_dir), "seed=3"]) == 2
    assert "finish changes output.* keys only" in capsys.readouterr().err
    (run_dir / "frames" / "000002.png").unlink()
    assert main(["finish", str(run_dir)]) == 2
    assert "1 frame(s) not rendered yet (first " in capsys.readouterr().err
    assert main(["finish", str(tmp_path)]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_render_refuses_absent_weights_before_any_frame(tmp_path, capsys):
    preset = tmp_path / "p.yaml"
    preset.write_text(yaml.safe_dump({"model": "tiny", "width": 64, "height": 64, "max_frames": 2,
                                      "prompts": {0: "a"},
                                      "output": {"upscale": {"model": str(tmp_path / "4x.pth")}}}))
    assert main([str(preset), "--preview", "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert "output.upscale.model: " in capsys.readouterr().err
    assert not (tmp_path / "run" / "frames").exists()
