"""{human_mask}: mediapipe's bundled selfie segmentation on a real photo of a person (scikit-image's astronaut)."""
from __future__ import annotations

import numpy as np
import pytest

from anim.errors import ModelError

pytest.importorskip("mediapipe")


def test_high_on_the_person_low_in_the_background():
    from skimage import data

    from anim.control.human_mask import HumanMasker

    image = data.astronaut()  # 512x512: Eileen Collins, the flag and a dark background behind her
    masker = HumanMasker(0)
    try:
        mask = masker(image)
    finally:
        masker.close()
    assert mask.shape == image.shape[:2] and mask.dtype == np.float32
    assert mask[80:200, 180:300].mean() > 0.8  # her face
    assert mask[:40, :40].mean() < 0.05 and mask[:40, -40:].mean() < 0.05  # the top corners


def test_a_bad_model_number_is_one_clear_error():
    from anim.control.human_mask import HumanMasker

    with pytest.raises(ModelError, match="human_model must be 0 or 1"):
        HumanMasker(2)
