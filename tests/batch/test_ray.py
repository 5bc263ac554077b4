"""The Ray backend on a local Ray instance started by the batch (`--ray local`): 2 jobs, reported like local."""
from __future__ import annotations

import pytest

from tests.batch.util import batch_cli, rows, write_preset

pytest.importorskip("ray")


def test_ray_backend_reports_like_the_local_one(tmp_path):
    folder, root = tmp_path / "presets", tmp_path / "out"
    write_preset(folder, "good")
    write_preset(folder, "broken", denoise="0:(0.4), 2:(bad_name(t))")
    result = batch_cli(folder, "--out", root, "--ray", "local", timeout=240)
    assert result.returncode == 1, result.stderr
    table = rows(root)
    assert table["good"]["status"] == "done" and table["good"]["frames"] == 3
    assert table["good"]["worker"].startswith("ray:")
    assert table["broken"]["status"] == "failed" and "bad_name" in table["broken"]["error"]
    assert (root / "good" / "video.mp4").exists() and (root / "contact_sheet.png").exists()
