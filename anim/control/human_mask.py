"""{human_mask}: where the people are, from mediapipe's selfie segmentation (its model ships inside the mediapipe
wheel: nothing is downloaded). Deforum's human_mask used RobustVideoMatting weights fetched from the web."""
from __future__ import annotations

import threading
import warnings
from pathlib import Path

import numpy as np

from anim.control.annotators import MEDIAPIPE_INSTALL, _silenced_stderr
from anim.errors import ModelError

MODELS = {0: "selfie_segmentation.tflite", 1: "selfie_segmentation_landscape.tflite"}


def _import_selfie_segmentation():
    """mediapipe's legacy selfie segmentation solution, or a ModelError saying how to install it."""
    import os

    os.environ.setdefault("GLOG_minloglevel", "2")
    try:
        import mediapipe as mp

        solution = mp.solutions.selfie_segmentation
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"mask {{human_mask}} needs mediapipe ({type(exc).__name__}: {str(exc)[:100]}); "
                         f"install it with: {MEDIAPIPE_INSTALL}") from None
    folder = Path(mp.__file__).parent / "modules" / "selfie_segmentation"
    if not all((folder / name).is_file() for name in MODELS.values()):
        raise ModelError(f"mask {{human_mask}}: mediapipe has no bundled selfie segmentation model in {folder}; "
                         f"reinstall it with: {MEDIAPIPE_INSTALL}")
    return solution


class HumanMasker:
    """Callable: (H, W, 3) uint8 RGB -> (H, W) float32 in [0, 1], high where a person is. model 0 is the general
    model (256x256), 1 the landscape one (144x256), as mediapipe's model_selection."""

    def __init__(self, model: int = 0) -> None:
        if model not in MODELS:
            raise ModelError(f"mask.human_model must be 0 or 1, got {model!r}")
        solution = _import_selfie_segmentation()
        self._segmenter = solution.SelfieSegmentation(model_selection=int(model))
        self._lock = threading.Lock()

    def __call__(self, image_u8: np.ndarray) -> np.ndarray:
        """The person probability of every pixel."""
        if image_u8.ndim != 3 or image_u8.shape[2] != 3 or image_u8.dtype != np.uint8:
            raise ValueError(f"human mask needs an (H, W, 3) uint8 image, got {image_u8.shape} {image_u8.dtype}")
        with self._lock, warnings.catch_warnings(), _silenced_stderr():
            warnings.simplefilter("ignore", UserWarning)
            result = self._segmenter.process(np.ascontiguousarray(image_u8))
        mask = result.segmentation_mask
        if mask is None:
            return np.zeros(image_u8.shape[:2], dtype=np.float32)
        return np.clip(np.asarray(mask, dtype=np.float32), 0.0, 1.0)

    def close(self) -> None:
        """Free the mediapipe graph."""
        self._segmenter.close()
