"""Test helper: write a diffusers ControlNetModel as an A1111-layout single file (`control_model.*`).

No key map is written here: the A1111 name of every weight is found by running diffusers' own
converter (convert_controlnet_checkpoint) on a probe state dict whose values are their own key names,
so the converter's output says which A1111 name lands on which diffusers key. Only the ResNet part
names need one more look: they are read off the str.replace calls diffusers' converter makes.
"""

from __future__ import annotations

from pathlib import Path

import torch

PROBE = "PROBE"
BLOCKS = 16  # more input blocks / hint layers than any ControlNet has; extras land on no real key


class _Names(dict):
    """A state dict that answers every lookup with the key's own name and holds every non-diffusers name."""

    def __init__(self, keys, diffusers_keys) -> None:
        super().__init__({k: k for k in keys})
        self.diffusers_keys = set(diffusers_keys)

    def __contains__(self, key) -> bool:
        return key not in self.diffusers_keys

    def __getitem__(self, key):
        return key

    def get(self, key, default=None):
        return key


def _resnet_renames() -> list[tuple[str, str]]:
    """(A1111, diffusers) name pairs of diffusers' ResNet key converter, in the order it applies them."""
    from diffusers.loaders.single_file_utils import update_unet_resnet_ldm_to_diffusers

    pairs: list[tuple[str, str]] = []

    class Traced(str):
        def replace(self, old, new, count=-1):
            pairs.append((old, new))
            return Traced(str.replace(self, old, new, count))

    update_unet_resnet_ldm_to_diffusers([Traced("")], {}, {})
    return pairs


def _probe_keys() -> list[str]:
    """A1111 block prefixes (input blocks, middle block, hint layers), each with a probe suffix."""
    keys = [f"input_blocks.{i}.{part}.{PROBE}" for i in range(BLOCKS) for part in (0, 1)]
    keys += [f"middle_block.{k}.{PROBE}" for k in range(3)]
    return keys + [f"input_hint_block.{n}.{PROBE}" for n in range(1, BLOCKS)] + ["time_embed.0.weight"]


def _to_a1111(key: str, names: dict, prefixes: dict, renames: list[tuple[str, str]]) -> str:
    """The A1111 name of one diffusers key: named outright by the converter, or by its block's prefix."""
    if key in names:
        return names[key]
    block = max((p for p in prefixes if key.startswith(p + ".")), key=len)
    rest = key[len(block) + 1:]
    if ".resnets." in block:
        for old, new in reversed(renames):
            rest = rest.replace(new, old)
    return f"{prefixes[block]}.{rest}"


def a1111_names(net) -> dict[str, str]:
    """{diffusers key: A1111 key without `control_model.`} for a ControlNetModel, from diffusers' converter."""
    from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING, convert_controlnet_checkpoint

    keys = list(net.state_dict())
    out = convert_controlnet_checkpoint(_Names(_probe_keys(), keys), dict(net.config))
    names = {k: v for k, v in out.items() if k in keys}
    prefixes = {k.removesuffix("." + PROBE): v.removesuffix("." + PROBE) for k, v in out.items() if k.endswith(PROBE)}
    kind = "addition_embed_type" if net.config.addition_embed_type else "class_embed_type"
    names.update({k: v for k, v in DIFFUSERS_TO_LDM_MAPPING["controlnet"][kind].items() if k in keys})
    renames = _resnet_renames()
    return {k: _to_a1111(k, names, prefixes, renames) for k in keys}


def save_a1111_controlnet(net, path: Path) -> Path:
    """Write the ControlNet's weights as `control_model.<A1111 name>` tensors in one .safetensors file."""
    from safetensors.torch import save_file

    state = net.state_dict()
    names = a1111_names(net)
    assert len(set(names.values())) == len(names), "two weights got one A1111 name"
    save_file({f"control_model.{names[k]}": v.detach().contiguous() for k, v in state.items()}, str(path))
    return Path(path)


def same_weights(a, b) -> bool:
    """True when two modules hold identical tensors under identical names."""
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
