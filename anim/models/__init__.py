"""Every model load, in one layer: hub id, local diffusers folder, single-file checkpoint, built-in tiny,
VAE, LoRA, ControlNet and depth models; device and dtype resolution. Nothing here runs diffusion."""
from anim.models.depth import load_depth_model
from anim.models.load import (
           SDModels,
           load_controlnet,
           load_models,
           resolve_device,
           resolve_dtype,
)
from anim.models.loras import apply_loras, set_lora_weights
from anim.models.tiny import tiny_controlnet_dir, tiny_model_dir

__all__ = ["SDModels", "apply_loras", "load_controlnet", "load_depth_model", "load_models", "resolve_device",
           "resolve_dtype", "set_lora_weights", "tiny_controlnet_dir", "tiny_model_dir"]
