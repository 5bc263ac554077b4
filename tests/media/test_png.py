"""Frame output: A1111 parameters text, PNG metadata round trip, atomic background writer."""
from __future__ import annotations

import numpy as np
import pytest

from anim.media.png import (
    FrameWriter,
    a1111_parameters,
    is_complete_png,
    png_bytes,
    read_png_metadata,
    read_png_u8,
)

ROW = {"frame": 3, "steps": 20, "cfg_scale": 7.0, "seed": 123, "prompt": "a cat, (oil:1.2)",
       "negative_prompt": "blurry", "blend_weight": 0.0}


def test_a1111_parameters_format():
    text = a1111_parameters(ROW, width=512, height=768, sampler_label="Euler a", model_hash="abcd1234ef",
                            model_name="sd15", denoise=0.45)
    lines = text.splitlines()
    assert lines[0] == "a cat, (oil:1.2)"
    assert lines[1] == "Negative prompt: blurry"
    assert lines[2].startswith("Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 123, Size: 512x768, "
                               "Model hash: abcd1234ef, Model: sd15, Denoising strength: 0.45")
    assert "Frame: 3" in lines[2]


def test_a1111_parameters_without_negative_and_txt2img():
    text = a1111_parameters({**ROW, "negative_prompt": ""}, width=64, height=64, sampler_label="DDIM",
                            model_hash="x", model_name="a, b", denoise=None)
    assert "Negative prompt" not in text and "Denoising" not in text
    assert 'Model: "a, b"' in text  # values with commas are quoted, as A1111 does


def test_png_round_trip(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    path = tmp_path / "f.png"
    path.write_bytes(png_bytes(image, "params", {**ROW, "prompt": "ünïcode"}))
    text, row = read_png_metadata(path)
    assert text == "params" and row["prompt"] == "ünïcode" and row["seed"] == 123
    assert np.array_equal(read_png_u8(path), image)
    assert png_bytes(image, "params", ROW) == png_bytes(image, "params", ROW)  # deterministic bytes


def test_truncated_png_is_not_complete(tmp_path):
    image = np.zeros((8, 8, 3), np.uint8)
    data = png_bytes(image, "p", ROW)
    whole, cut = tmp_path / "a.png", tmp_path / "b.png"
    whole.write_bytes(data)
    cut.write_bytes(data[:-5])
    assert is_complete_png(whole) and not is_complete_png(cut) and not is_complete_png(tmp_path / "none.png")


def test_writer_writes_in_order_then_calls_back(tmp_path):
    done = []
    writer = FrameWriter(after_write=lambda i: done.append((i, (tmp_path / f"{i}.png").exists())))
    for i in range(5):
        writer.submit(i, tmp_path / f"{i}.png", np.full((8, 8, 3), i, np.uint8), "p", ROW)
    writer.close()
    assert done == [(i, True) for i in range(5)]
    assert not list(tmp_path.glob(".*.tmp"))


def test_writer_error_surfaces(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    writer = FrameWriter()
    writer.submit(0, blocker / "sub" / "0.png", np.zeros((4, 4, 3), np.uint8), "p", ROW)
    with pytest.raises(OSError):
        writer.close()


def test_a1111_parameters_carry_the_frames_lora_tags_and_hashes():
    row = {**ROW, "lora:ink wash": 0.25, "lora:detail": 0.0, "lora:x,y": 1.0, "lora0_weight": 0.5}
    hashes = {"ink wash": "0123456789ab", "detail": "ffffffffffff", "x,y": "aaaaaaaaaaaa"}
    text = a1111_parameters(row, width=64, height=64, sampler_label="Euler", model_hash="abcd1234ef",
                            model_name="sd15", denoise=0.5, lora_hashes=hashes)
    prompt, _, pairs = text.splitlines()
    assert prompt == "a cat, (oil:1.2) <lora:ink wash:0.25> <lora:x,y:1>"  # a LoRA at weight 0 acts on nothing
    assert pairs.endswith(', Lora hashes: "ink wash: 0123456789ab, xy: aaaaaaaaaaaa"')  # A1111 drops ':' and ','
    assert a1111_parameters(row, width=64, height=64, sampler_label="Euler", model_hash="abcd1234ef",
                            model_name="sd15", denoise=0.5).splitlines()[0] == prompt  # no hashes: tags only
