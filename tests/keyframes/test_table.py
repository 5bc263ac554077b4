"""FrameTable: rows of plain values, exact CSV round trip, varying columns, plot smoke test."""

import os

import numpy as np
import pytest

from anim.keyframes import FrameTable, PromptFrame, resolve_prompts


def make_table():
    prompts = resolve_prompts({0: 'a, "quoted" cat --neg ugly', 2: "dog\nline two"}, 4, blend_frames=2)
    columns = {"zoom": np.array([1.0, 1.1, 0.1 + 0.2, 1e-300]), "angle": np.zeros(4),
               "seed": np.array([5, 6, 7, 8]), "steps": np.array([20, 20, 20, 20], dtype=np.int32)}
    return FrameTable(columns, prompts)


def test_names_len_column_and_row():
    table = make_table()
    assert len(table) == 4 and table.names == ["zoom", "angle", "seed", "steps"]
    assert table.column("seed").dtype == np.int64 and table.column("zoom").dtype == np.float64
    row = table.row(1)
    assert list(row) == ["frame", "zoom", "angle", "seed", "steps", "blend_weight", "prompt",
                         "negative_prompt", "blend_prompt", "blend_negative_prompt"]
    assert row["frame"] == 1 and row["zoom"] == 1.1 and type(row["seed"]) is int and type(row["zoom"]) is float
    assert row["prompt"] == 'a, "quoted" cat' and row["blend_prompt"] == "dog\nline two"
    assert row["blend_weight"] == 0.5
    with pytest.raises(KeyError):
        table.column("nope")


def test_varying():
    assert make_table().varying() == ["zoom", "seed"]


def test_csv_round_trip_is_exact(tmp_path):
    table = make_table()
    path = tmp_path / "schedule.csv"
    table.to_csv(path)
    header = path.read_text(encoding="utf-8").splitlines()[0]
    assert header == ("frame,zoom,angle,seed,steps,blend_weight,prompt,negative_prompt,blend_prompt,"
                      "blend_negative_prompt")
    back = FrameTable.from_csv(path)
    assert back.names == table.names and len(back) == 4
    for i in range(4):
        assert back.row(i) == table.row(i)
    assert back.column("zoom")[2] == 0.1 + 0.2 and back.column("steps").dtype == np.int64
    assert back.column("angle").dtype == np.float64
    assert [p for p in os.listdir(tmp_path)] == ["schedule.csv"]   # no temp files left


def test_csv_subset_of_frames(tmp_path):
    path = tmp_path / "part.csv"
    make_table().to_csv(path, frames=[2, 3])
    back = FrameTable.from_csv(path)
    assert back.frames.tolist() == [2, 3] and back.row(0)["frame"] == 2
    with pytest.raises(ValueError):
        make_table().to_csv(path, frames=[9])


def test_bad_columns_rejected():
    prompts = [PromptFrame("a", "", "a", "", 0.0)] * 2
    with pytest.raises(ValueError, match="reserved"):
        FrameTable({"prompt": [1, 2]}, prompts)
    with pytest.raises(ValueError, match="shape"):
        FrameTable({"zoom": [1.0]}, prompts)


def test_plot_smoke(tmp_path):
    path = tmp_path / "schedule.png"
    make_table().plot(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    flat = FrameTable({"zoom": np.ones(3)}, [PromptFrame("a", "", "a", "", 0.0)] * 3)
    flat.plot(tmp_path / "flat.png")
    assert (tmp_path / "flat.png").stat().st_size > 0
    assert sorted(os.listdir(tmp_path)) == ["flat.png", "schedule.png"]
