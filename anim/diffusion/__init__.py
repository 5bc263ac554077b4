"""Diffusion calls on loaded models: samplers, prompt conditioning (SD1.5, SDXL), img2img/txt2img with
ControlNet, and lockstep batching of several jobs' denoising."""
