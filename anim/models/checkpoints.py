"""Single-file checkpoints (A1111 / civitai LDM key layout) loaded offline into diffusers modules.

The architecture config comes from a locally generated folder (anim.models.configs) or from the
caller (`config_dir`, e.g. the tiny model's folder), so nothing is fetched from the hub.
"""

from __future__ import annotations

import json
import logging
from contextlib import contextmanager
from pathlib import Path

import torch

from anim.errors import ModelError
from anim.models.configs import arch_config_dir

PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
SAFE_SUFFIXES = (".safetensors",)
SDXL_MARKER = "conditioner.embedders.1."
SD15_MARKER = "cond_stage_model.transformer."
SD2_MARKER = "cond_stage_model.model."
UNET_MARKER = "model.diffusion_model."
NOT_STANDARD = ("anim reads standard SD1.5 / SDXL single files only (not inpainting, distilled or other variants); "
                "use a diffusers folder of this model")


def one_line(exc: BaseException, limit: int = 160) -> str:
    """The first line of an exception's message (or its type name), cut to `limit` characters."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__


def is_pickle(path: Path) -> bool:
    """True for file types that are Python pickles (can run code when loaded)."""
    return Path(path).suffix.lower() in PICKLE_SUFFIXES


def pickle_refusal(path: Path, what: str = "model") -> ModelError:
    """The error for a pickle file the user has not opted into."""
    return ModelError(
        f"{what} file {path} is a Python pickle ({Path(path).suffix}), which can run arbitrary code when "
        "loaded; use a .safetensors version, or set `allow_pickle: true` if you trust its source"
    )


def read_state_dict(path: Path, *, allow_pickle: bool = False, what: str = "model") -> dict[str, torch.Tensor]:
    """Read a .safetensors (or, when allowed, a pickled) weights file into a CPU state dict."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{what} file not found: {path}; check the path")
    suffix = path.suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        if not allow_pickle:
            raise pickle_refusal(path, what)
        return _read_pickle(path, what)
    if suffix not in SAFE_SUFFIXES:
        raise ModelError(f"{what} file {path} has an unknown type {suffix!r}; expected .safetensors")
    return _read_safetensors(path, what)


def _read_safetensors(path: Path, what: str) -> dict[str, torch.Tensor]:
    """Load a safetensors file; a truncated or garbled file becomes a one-line ModelError."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # safetensors raises its own error type plus OSError/ValueError
        reason = one_line(exc, 120)
        raise ModelError(f"{what} file {path} is not a readable safetensors file ({reason}); "
                         "re-download it or pick another file") from None


def _read_pickle(path: Path, what: str) -> dict[str, torch.Tensor]:
    """Load an opted-in pickle with torch's weights-only unpickler (tensors and plain containers only)."""
    try:
        data = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        reason = one_line(exc, 120)
        raise ModelError(f"{what} file {path} could not be read as weights-only checkpoint ({reason}); "
                         "convert it to .safetensors") from None
    while isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict):
        raise ModelError(f"{what} file {path} holds no state dict; expected a Stable Diffusion checkpoint")
    return {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}


def detect_arch(state_dict: dict, path: Path) -> str:
    """Tell SD1.x ('sd15') from SDXL ('sdxl') by the text-encoder key prefixes of an LDM checkpoint."""
    keys = state_dict.keys()
    has = lambda prefix: any(k.startswith(prefix) for k in keys)  # noqa: E731
    if not has(UNET_MARKER):
        raise ModelError(f"{path} has no `model.diffusion_model.*` weights; it is not a full Stable Diffusion "
                         "checkpoint (a LoRA, VAE or embedding?)")
    if has(SDXL_MARKER):
        return "sdxl"
    if has(SD15_MARKER):
        return "sd15"
    if has(SD2_MARKER):
        raise ModelError(f"{path} is a Stable Diffusion 2.x checkpoint, not supported yet; use an SD1.5 or "
                         "SDXL model, or a diffusers folder")
    raise ModelError(f"{path} has no known text-encoder weights; cannot tell SD1.5 from SDXL")


@contextmanager
def quiet_cast_warning():
    """Hide diffusers' spurious 'modules that should be kept in float32: []' warning on single-file loads."""
    log = logging.getLogger("diffusers.models.modeling_utils")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def unet_from_ldm(state_dict: dict, config_dir: Path, dtype: torch.dtype, path: Path | str = "checkpoint"):
    """Build the UNet from `model.diffusion_model.*` keys with the config in config_dir/unet.

    The keys are converted by diffusers' own converter first and checked against the config, so a
    checkpoint of another architecture is named key by key instead of failing deep in the loader.
    """
    from diffusers import UNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    config = UNet2DConditionModel.load_config(str(config_dir), subfolder="unet")
    weights = converted(convert_ldm_unet_checkpoint, state_dict, config, path, "UNet", UNET_MARKER)
    require_fit(UNet2DConditionModel, config, weights, path, "UNet", unused(state_dict, weights, UNET_MARKER))
    with quiet_cast_warning():
        return UNet2DConditionModel.from_single_file(
            weights, config=str(config_dir), subfolder="unet", local_files_only=True, torch_dtype=dtype)


def converted(convert, state_dict: dict, config: dict, path, component: str, prefix: str = "") -> dict:
    """diffusers-named weights from diffusers' converter; a weight it cannot find becomes a ModelError."""
    try:
        return convert(checkpoint=state_dict, config=config)
    except KeyError as exc:
        key = str(exc.args[0]) if exc.args else "?"
        raise ModelError(f"{path}: the {component} lacks weight {prefix}{key} that its architecture needs; "
                         f"{NOT_STANDARD}") from None


def unused(state_dict: dict, weights: dict, prefix: str | tuple[str, ...]) -> list[str]:
    """`prefix` weights of the file that the converter left out (it moves tensors, so identity tells)."""
    taken = {id(v) for v in weights.values()}
    return [f"{k} unused" for k, v in state_dict.items() if k.startswith(prefix) and id(v) not in taken]


def fit_problems(cls, config: dict, weights: dict) -> list[str]:
    """Keys of `weights` that do not fit the module `config` builds: missing, wrong shape, unexpected."""
    from accelerate import init_empty_weights

    with init_empty_weights():
        expected = {k: list(v.shape) for k, v in cls.from_config(config).state_dict().items()}
    problems = []
    for key, shape in expected.items():
        value = weights.get(key)
        if value is None:
            problems.append(f"{key} missing")
        elif list(value.shape) != shape:
            problems.append(f"{key} is {list(value.shape)}, expected {shape}")
    return problems + [f"{key} unexpected" for key in weights if key not in expected]


def require_fit(cls, config: dict, weights: dict, path, component: str, extra: tuple | list = (),
                shown: int = 3) -> None:
    """One ModelError naming the file and the first few keys that do not fit the config."""
    problems = fit_problems(cls, config, weights) + list(extra)
    if problems:
        count = "1 key differs" if len(problems) == 1 else f"{len(problems)} keys differ"
        raise ModelError(f"{path}: the {component} does not match its architecture config ({count}: "
                         f"{'; '.join(problems[:shown])}); {NOT_STANDARD}")


def vae_from_ldm(state_dict: dict, config_dir: Path, dtype: torch.dtype):
    """Build the VAE from `first_stage_model.*` keys (or an unprefixed standalone VAE file)."""
    from diffusers import AutoencoderKL

    with quiet_cast_warning():
        return AutoencoderKL.from_single_file(
            state_dict, config=str(config_dir), subfolder="vae", local_files_only=True, torch_dtype=dtype)


def clip_from_ldm(cls, state_dict: dict, config_dir: Path, subfolder: str, dtype: torch.dtype):
    """Build a CLIP text encoder from the checkpoint's cond_stage_model / conditioner weights."""
    from diffusers.loaders.single_file_utils import create_diffusers_clip_model_from_ldm

    return create_diffusers_clip_model_from_ldm(
        cls, state_dict, subfolder=subfolder, config=str(config_dir), torch_dtype=dtype, local_files_only=True)


def require_loaded(module, component: str, path: Path) -> None:
    """Fail when a component kept placeholder (meta) weights because the checkpoint lacked them."""
    missing = [name for name, p in module.named_parameters() if p.device.type == "meta"]
    if missing:
        raise ModelError(f"{path} lacks {len(missing)} {component} weights (e.g. {missing[0]}); "
                         "is it the architecture its keys suggest? pass a matching config")


def load_single_file(path: Path, *, allow_pickle: bool, dtype: torch.dtype,
                     config_dir: Path | None = None) -> dict:
    """Load an LDM-layout checkpoint into diffusers components; returns a dict of parts and metadata."""
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    state_dict = read_state_dict(path, allow_pickle=allow_pickle)
    arch = detect_arch(state_dict, path)
    cfg = Path(config_dir) if config_dir else arch_config_dir(arch)
    try:
        parts = {"unet": unet_from_ldm(state_dict, cfg, dtype, path),
                 "text_encoder": clip_from_ldm(CLIPTextModel, state_dict, cfg, "text_encoder", dtype),
                 "tokenizer": CLIPTokenizer.from_pretrained(str(cfg / "tokenizer")),
                 "vae": vae_from_ldm(state_dict, cfg, dtype)}
        if arch == "sdxl":
            parts["text_encoder_2"] = clip_from_ldm(
                CLIPTextModelWithProjection, state_dict, cfg, "text_encoder_2", dtype)
            parts["tokenizer_2"] = CLIPTokenizer.from_pretrained(str(cfg / "tokenizer_2"))
    except ModelError:
        raise
    except Exception as exc:
        reason = one_line(exc, 160)
        raise ModelError(f"could not build {arch} model from {path} ({reason})") from None
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        if name in parts:
            require_loaded(parts[name], name, path)
    parts["scheduler_config"] = json.loads((cfg / "scheduler" / "scheduler_config.json").read_text())
    parts["arch"] = arch
    return parts


def vae_from_file(path: Path, *, allow_pickle: bool, dtype: torch.dtype, arch: str,
                  config_dir: Path | None = None):
    """Load a standalone VAE file (LDM or diffusers key layout) for the given base architecture."""
    state_dict = read_state_dict(path, allow_pickle=allow_pickle, what="VAE")
    cfg = Path(config_dir) if config_dir else arch_config_dir(arch)
    try:
        vae = vae_from_ldm(state_dict, cfg, dtype)
    except Exception as exc:
        reason = one_line(exc, 160)
        raise ModelError(f"VAE file {path} does not fit a {arch} VAE ({reason})") from None
    require_loaded(vae, "VAE", path)
    return vae
