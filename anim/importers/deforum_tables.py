"""Deforum's vocabularies mapped to anim's: samplers, colour coherence, flow methods, depth models,
ControlNet preprocessors and resize modes. Plain tables; unknown names are reported by the importer."""
from __future__ import annotations

from anim.preset.samplers import SAMPLERS

# A1111 sampler label (lower case) -> anim sampler name, from anim's own table of labels.
SAMPLER_BY_LABEL = {row.label.lower(): name for name, row in SAMPLERS.items() if name != "pndm"}

# Late-2022 settings store `sampler` as an index into A1111's img2img sampler list of that time
# (k-diffusion samplers, then DDIM; PLMS is not offered for img2img).
SAMPLER_INDEX_2022 = (
    "Euler a", "Euler", "LMS", "Heun", "DPM2", "DPM2 a", "DPM++ 2S a", "DPM++ 2M", "DPM++ SDE", "DPM fast",
    "DPM adaptive", "LMS Karras", "DPM2 Karras", "DPM2 a Karras", "DPM++ 2S a Karras", "DPM++ 2M Karras",
    "DPM++ SDE Karras", "DDIM",
)

# A1111 >= 1.9 splits the schedule out of the sampler label: `scheduler` "Karras" + "DPM++ 2M" = "DPM++ 2M Karras".
SCHEDULER_SUFFIX = {"karras": " Karras", "uniform": "", "": ""}
# "Automatic" is the sampler's own default schedule in A1111's samplers_k_diffusion (others: uniform).
AUTOMATIC_SCHEDULE = {"dpm++ 2m": "karras", "dpm++ sde": "karras", "dpm++ 2s a": "karras", "dpm2": "karras",
                      "dpm2 a": "karras", "dpm++ 2m sde": "exponential", "dpm++ 3m sde": "exponential"}

COLOR_COHERENCE = {
    "none": "none", "lab": "lab", "hsv": "hsv", "rgb": "rgb",
    "match frame 0 lab": "lab", "match frame 0 hsv": "hsv", "match frame 0 rgb": "rgb",
}

# optical_flow_cadence / hybrid flow names -> anim flow_method (RAFT needs allow_pickle; see the importer).
FLOW_METHOD = {"dis medium": "dis", "dis fine": "dis", "dis ultrafine": "dis", "farneback": "farneback",
               "raft": "raft"}

# depth_algorithm -> a transformers depth model on the hub (loaded from the local cache by anim).
DEPTH_MODEL = {
    "midas-3-hybrid": "Intel/dpt-hybrid-midas",
    "midas-3.1-beitlarge": "Intel/dpt-beit-large-512",
    "zoe": "Intel/zoedepth-nyu-kitti",
    "depth-anything-v2-small": "depth-anything/Depth-Anything-V2-Small-hf",
    "depth-anything-v2-base": "depth-anything/Depth-Anything-V2-Base-hf",
    "depth-anything-v2-large": "depth-anything/Depth-Anything-V2-Large-hf",
}

# sd-webui-controlnet preprocessor (module) -> (anim annotator, annotator options).
CN_MODULE = {
    "none": ("none", {}), "canny": ("canny", {}),
    "openpose": ("openpose", {}), "openpose_full": ("openpose", {"include_hand": True, "include_face": True}),
    "openpose_hand": ("openpose", {"include_hand": True}), "openpose_face": ("openpose", {"include_face": True}),
    "openpose_faceonly": ("openpose", {"include_face": True}), "dw_openpose_full": ("openpose", {"include_hand": True,
                                                                                                 "include_face": True}),
    "depth": ("depth", {}), "depth_midas": ("depth", {}), "depth_leres": ("depth", {}),
    "depth_leres++": ("depth", {}), "depth_zoe": ("depth", {}),
    "lineart": ("lineart", {}), "lineart_realistic": ("lineart", {}), "lineart_coarse": ("lineart", {"coarse": True}),
    "softedge_hed": ("softedge", {}), "hed": ("softedge", {}), "softedge_hedsafe": ("softedge", {"safe": True}),
    "scribble_hed": ("scribble", {}), "fake_scribble": ("scribble", {}),
    "mlsd": ("mlsd", {}), "normal_bae": ("normal", {}),
    "tile_resample": ("none", {}),  # tile: the frame itself is the control image
}

# ControlNet resize mode labels of every version -> anim resize.
CN_RESIZE = {
    "just resize": "stretch", "resize": "stretch",
    "crop and resize": "crop", "inner fit (scale to fit)": "crop", "scale to fit (inner fit)": "crop",
    "resize and fill": "fit", "outer fit (shrink to fit)": "fit", "envelope (outer fit)": "fit",
}


def controlnet_model_id(name: str) -> str | None:
    """An A1111 ControlNet model name ("control_v11p_sd15_openpose [cab727d4]") -> the hub id anim loads
    (lllyasviel publishes each v1.1 model under its file stem; v1.0 models as sd-controlnet-<kind>); None for
    other names (SDXL and community models: the user gives the path)."""
    stem = name.split(" [", 1)[0].strip()
    for suffix in (".safetensors", ".pth", ".ckpt", ".pt", "_fp16", "_fp32"):
        stem = stem.removesuffix(suffix)
    if stem.startswith("control_v11"):
        return f"lllyasviel/{stem}"
    if stem.startswith("control_sd15_"):
        return f"lllyasviel/sd-controlnet-{stem.removeprefix('control_sd15_')}"
    return None
