"""A1111 settings through render.py: a variation seed at strength 0 leaves a frame as it was and changes it above
0, clip skip changes frames, both are written into the PNG parameters as A1111 writes them, perlin octaves reach
the noise, and a strength without a subseed is refused."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from anim.coherence.stages import prepare_init
from anim.preset import Preset

BASE = {"model": "tiny", "width": 64, "height": 64, "max_frames": 3, "seed": 5, "steps": 3,
        "prompts": {0: "a lighthouse"}, "motion": {"mode": "none"}, "denoise": 0.5, "noise": 0.0,
        "color_coherence": "none", "output": {"video": False}}


def render(tmp_path, name, **changes):
    from anim.cli import main

    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**BASE, **changes}, sort_keys=False))
    assert main([str(path), "--out", str(tmp_path / name), "--quiet"]) == 0
    frames = sorted((tmp_path / name / "frames").glob("*.png"))
    return [np.asarray(Image.open(p).convert("RGB")) for p in frames], [Image.open(p).info["parameters"] for p in frames]


def test_variation_seed_and_clip_skip_in_frames_and_parameters(tmp_path):
    plain, _ = render(tmp_path, "plain")
    varied, params = render(tmp_path, "varied", subseed=9, subseed_strength="0:(0), 1:(0), 2:(0.6)")
    assert np.array_equal(varied[0], plain[0]) and np.array_equal(varied[1], plain[1])
    assert not np.array_equal(varied[2], plain[2])
    assert "Variation seed" not in params[1] and "Variation seed: 9, Variation seed strength: 0.6" in params[2]
    skipped, params = render(tmp_path, "skip", clip_skip=2)
    assert not np.array_equal(skipped[0], plain[0]) and "Clip skip: 2" in params[0]


def test_perlin_octaves_reach_the_noise():
    image = torch.full((1, 3, 64, 64), 0.5)
    row = {"contrast": 1.0, "unsharp_amount": 0.0, "noise": 0.3, "seed": 3}
    one = Preset.model_validate({**BASE, "noise_type": "perlin", "perlin_octaves": 1, "color_coherence": "none"})
    many = Preset.model_validate({**BASE, "noise_type": "perlin", "perlin_octaves": 5, "color_coherence": "none"})
    assert not torch.equal(prepare_init(image, None, row, one), prepare_init(image, None, row, many))


def test_a_strength_without_a_subseed_is_refused():
    with pytest.raises(ValueError, match="subseed_strength is set but subseed is -1"):
        Preset.model_validate({**BASE, "subseed_strength": 0.5})
