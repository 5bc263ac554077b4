"""Each frame's masks from the preset's `mask:` section and the FrameTable's `mask` / `noise_mask` expressions:
the named masks read once, the mask video's frame, mediapipe's human mask of the frame's image; composed by
anim.keyframes.mask_expr, then turned into what diffusion needs (anim.diffusion.masked.MaskInput, the overlay)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from anim.coherence.masks import (
    adjust_mask,
    as_tensor,
    binary,
    blur_mask,
    fill_masked,
    grey_of,
    latent_mask,
    overlay_mask,
    read_alpha,
    read_mask,
)
from anim.diffusion.masked import MaskInput
from anim.keyframes.mask_expr import Ref, evaluate, parse_mask_expr
from anim.media.tensors import to_uint8_hwc


def make_human_masker(model: int):
    """The {human_mask} model (mediapipe's bundled selfie segmentation); tests hand in a fake instead."""
    from anim.control.human_mask import HumanMasker

    return HumanMasker(model)


@dataclass
class FrameMask:
    """One frame's masks as (1, 1, H, W) in {0, 1} after `invert`: where it changes (None: the whole frame, no
    masking) and where noise goes (None: everywhere)."""

    change: torch.Tensor | None
    noise: torch.Tensor | None


@dataclass
class Diffusion:
    """What a masked diffusion call needs: its init (filled), the latent mask, and the overlay mask (or None)."""

    init: torch.Tensor
    mask: MaskInput
    overlay: torch.Tensor | None


class FrameMasks:
    """The masks of every frame of a run; files and the mask video are read once, the human masker made on first
    use by `make_human(model)`."""

    def __init__(self, preset, device, make_human=None) -> None:
        self.settings, self.device = preset.mask, device
        self.width, self.height = preset.width, preset.height
        self._make_human = make_human or make_human_masker
        self._human = self._video = None
        self._files: dict[str, np.ndarray] = {}
        self._trees: dict[str, object] = {}
        self._last: tuple[int, FrameMask] | None = None
        self.init_mask = self._init_mask(preset)

    def _init_mask(self, preset) -> np.ndarray | None:
        """{init_mask}: the init image's alpha (use_alpha, when not blank) else the mask file's grey levels,
        brightness/contrast adjusted, as booleans; None without either."""
        m = self.settings
        levels = read_alpha(preset.init_image, self.width, self.height, "init_image") if m.use_alpha else None
        if levels is None and m.file and not m.is_video:
            levels = read_mask(m.file, self.width, self.height, "mask.file")
        return None if levels is None else binary(adjust_mask(levels, m.brightness, m.contrast))

    def _tree(self, text: str):
        if text not in self._trees:
            self._trees[text] = parse_mask_expr(text, self.settings.names())
        return self._trees[text]

    def _leaf(self, ref: Ref, frame: int, image_u8: np.ndarray) -> np.ndarray:
        """One named or file mask of the frame as booleans (H, W)."""
        shape = (self.height, self.width)
        if ref.kind == "file" or ref.value in self.settings.named:
            path = ref.value if ref.kind == "file" else self.settings.named[ref.value]
            if path not in self._files:
                self._files[path] = binary(read_mask(path, self.width, self.height, f"mask [{path}]"))
            return self._files[path]
        if ref.value == "everywhere":
            return np.ones(shape, dtype=bool)
        if ref.value == "init_mask":
            return self.init_mask if self.init_mask is not None else np.zeros(shape, dtype=bool)
        if ref.value == "video_mask":
            return binary(grey_of(self._video_source().frame(frame)))
        if self._human is None:
            self._human = self._make_human(self.settings.human_model)
        return binary(self._human(image_u8), 0.5)

    def _video_source(self):
        if self._video is None:
            from anim.control.sources import open_source

            key = "mask.video" if self.settings.video else "mask.file"
            self._video = open_source(self.settings.video_path, width=self.width, height=self.height, resize="crop",
                                      what=key)
        return self._video

    def compose(self, text: str, frame: int, image_u8: np.ndarray) -> np.ndarray:
        """The boolean mask of expression `text` at `frame` (`image_u8`: the frame's image, for {human_mask})."""
        return evaluate(self._tree(text), lambda ref: self._leaf(ref, frame, image_u8))

    def for_frame(self, frame: int, row: dict, image: torch.Tensor) -> FrameMask:
        """The frame's masks (kept for the frame, so step 3 and step 5 share them). A blank (all black) mask is
        ignored, as Deforum does: the frame is not masked."""
        if self._last is not None and self._last[0] == frame:
            return self._last[1]
        image_u8 = to_uint8_hwc(image)
        masks = []
        for column in ("mask", "noise_mask"):
            values = self.compose(row[column], frame, image_u8)
            masks.append(as_tensor(values, self.settings.invert, self.device) if values.any() else None)
        self._last = (frame, FrameMask(*masks))
        return self._last[1]

    def diffusion(self, change: torch.Tensor, init: torch.Tensor, seed: int) -> Diffusion | None:
        """The masked call's parts (A1111 img2img with a mask), or None when the mask changes nothing (all white
        with the `original` fill: the call is a plain img2img)."""
        m = self.settings
        if m.fill == "original" and bool(change.min() >= 1):
            return None
        blurred = blur_mask(change, m.blur_px)
        filled = fill_masked(init, blurred) if m.fill != "original" else init
        small = latent_mask(blurred, init.shape[-2] // 8, init.shape[-1] // 8)
        shown = overlay_mask(blur_mask(change, m.overlay_blur_px)) if m.overlay else None
        return Diffusion(filled, MaskInput(small, m.fill, int(seed)), shown)

    def close(self) -> None:
        """Release the mask video and the human masker."""
        if self._video is not None:
            self._video.close()
        if self._human is not None and hasattr(self._human, "close"):
            self._human.close()
