"""Frame coherence on device tensors: colour matching, contrast, unsharp mask, seeded noise (color.py,
filters.py), and the loop's coherence steps built from them and from optical flow (stages.py)."""
from anim.coherence.color import (
           COLOR_SPACES,
           HistogramReference,
           match_histograms,
           prepare_reference,
)
from anim.coherence.filters import (
           NOISE_TYPES,
           add_noise,
           apply_contrast,
           seeded_noise,
           unsharp_mask,
)

__all__ = ["COLOR_SPACES", "NOISE_TYPES", "HistogramReference", "add_noise", "apply_contrast", "match_histograms",
           "prepare_reference", "seeded_noise", "unsharp_mask"]
