"""anim: keyframed Stable Diffusion animation and video pipeline on diffusers."""

__version__ = "0.1.0"
