"""A1111 extra-network tags in prompts (``<lora:NAME:WEIGHT>``, ``<lyco:...>``) as per-frame LoRA weights.

The syntax is A1111's (modules/extra_networks.py parse_prompt, and the Lora extension's activate): a tag is
``<KIND:ARGS>`` with KIND a word and ARGS everything up to the next ``>``; ARGS split at ``:``, an argument with
exactly one ``=`` is named, the rest are positional. The first positional is the name (a file stem in lora_dir),
the second the text-encoder weight (default 1, or ``te=``), the third the UNet weight (default: the text-encoder
weight, or ``unet=``). ``lyco`` is A1111's alias of ``lora``. Every tag is cut out of the text before it is
encoded, so tag text never reaches the tokenizer; a name tagged twice in one prompt adds its weights (A1111
applies the network twice). Refused, one error each: other kinds (hypernet, ...), a UNet weight that differs
from the text-encoder weight, DyLoRA's ``dyn`` (a fourth positional), other named arguments, a weight that is not
a finite number.

A1111 reads networks from the positive prompt only: tags in a negative prompt are cut out and load nothing.
In a crossfade (prompt_blend) a LoRA's weight blends like the embeddings: (1 - w) * its weight in the old prompt
+ w * its weight in the new one, with w the frame's blend weight and 0 for a prompt without the tag.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

import numpy as np

from anim.errors import ScheduleError
from anim.keyframes.prompts import PromptFrame, format_value

TAG = re.compile(r"<(\w+):([^>]+)>")  # A1111's extra-network tag
LORA_KINDS = ("lora", "lyco")
COLUMN_PREFIX = "lora:"  # schedule.csv column of a tagged LoRA's weight: lora:NAME
NAMED_ARGS = ("te", "unet")


def network_column(name: str) -> str:
    """The schedule.csv column holding the per-frame weight of the LoRA tagged `name`."""
    return COLUMN_PREFIX + name


def column_network(column: str) -> str | None:
    """The LoRA name of a tag-weight column, or None for any other column."""
    return column[len(COLUMN_PREFIX):] if column.startswith(COLUMN_PREFIX) else None


def tag_text(name: str, weight: float) -> str:
    """The tag A1111 would read back for a LoRA at `weight` (for the PNG infotext)."""
    return f"<lora:{name}:{format_value(float(weight))}>"


def mentions_networks(texts: Iterable[str]) -> bool:
    """Whether any text holds a LoRA tag (cheap: no parsing), e.g. to keep such runs out of lockstep groups."""
    return any(match.group(1) in LORA_KINDS for text in texts for match in TAG.finditer(text or ""))


def strip_tags(text: str) -> str:
    """`text` with every extra-network tag cut out (as A1111 does), trimmed at the ends."""
    return TAG.sub("", text).strip()


def _number(value: str, what: str, tag: str) -> tuple[float, str, str]:
    """(weight, what, text) as A1111 reads it (Python's float: 'nan' and 'inf' read, 'abc' fails); whether it is
    finite is checked on the weight that is finally used (`_finite`), since a named te=/unet= replaces it."""
    try:
        return float(value), what, value
    except ValueError:
        raise ScheduleError(f"{tag}: {what} {value!r} is not a number") from None


def _finite(weight: tuple[float, str, str], tag: str) -> float:
    """The weight a tag uses, refused unless finite."""
    number, what, value = weight
    if not math.isfinite(number):
        raise ScheduleError(f"{tag}: {what} {value!r} is not a finite number")
    return number


def parse_tag(kind: str, args: str, tag: str) -> tuple[str, float]:
    """(name, weight) of one LoRA tag's arguments, by A1111's rules; ScheduleError naming the tag otherwise."""
    positional, named = [], {}
    for item in args.split(":"):
        parts = item.split("=", 2)
        if len(parts) == 2:
            named[parts[0]] = parts[1]
        else:
            positional.append(item)
    if not positional or not positional[0]:
        raise ScheduleError(f"{tag}: no LoRA name (write <{kind}:NAME:WEIGHT>)")
    unknown = [key for key in named if key not in NAMED_ARGS]
    if "dyn" in unknown or len(positional) > 3:
        raise ScheduleError(f"{tag}: DyLoRA dimensions (dyn, a fourth argument) are not supported")
    if unknown:
        raise ScheduleError(f"{tag}: unknown argument {unknown[0]!r} (A1111's are te= and unet=)")
    te = _number(positional[1], "weight", tag) if len(positional) > 1 else (1.0, "weight", "1")
    te = _number(named["te"], "te", tag) if "te" in named else te
    unet = _number(positional[2], "UNet weight", tag) if len(positional) > 2 else te
    unet = _number(named["unet"], "unet", tag) if "unet" in named else unet
    te, unet = _finite(te, tag), _finite(unet, tag)
    if unet != te:
        raise ScheduleError(f"{tag}: separate text-encoder ({te:g}) and UNet ({unet:g}) weights are not supported; "
                            "give one weight")
    return positional[0], te


def prompt_networks(text: str) -> tuple[str, dict[str, float]]:
    """(text without tags, {LoRA name: weight}) of a positive prompt; names in order of first mention."""
    weights: dict[str, float] = {}
    for match in TAG.finditer(text):
        kind = match.group(1)
        if kind not in LORA_KINDS:
            raise ScheduleError(f"{match.group(0)}: only LoRA tags (<lora:NAME:WEIGHT>, <lyco:...>) are supported, "
                                f"not {kind!r}")
        name, weight = parse_tag(kind, match.group(2), match.group(0))
        weights[name] = weights.get(name, 0.0) + weight
    return strip_tags(text), weights


def frame_networks(rows: Sequence[PromptFrame], name: str = "prompts",
                   ) -> tuple[list[PromptFrame], dict[str, np.ndarray]]:
    """The rows with their tags cut out, and one weight per frame for every LoRA tagged in a positive prompt
    (0 on frames without it; blended across crossfades, see the module docstring). Columns in order of first
    mention; an error names the frame and the tag."""
    parsed: dict[str, tuple[str, dict[str, float]]] = {}
    out: list[PromptFrame] = []
    per_frame: list[dict[str, float]] = []
    for frame, row in enumerate(rows):
        try:
            for text in (row.prompt, row.blend_prompt):
                if text not in parsed:
                    parsed[text] = prompt_networks(text)
        except ScheduleError as exc:
            raise ScheduleError(f"{name}: frame {frame}: {exc}") from None
        (prompt, a), (blend, b) = parsed[row.prompt], parsed[row.blend_prompt]
        w = float(row.blend_weight)
        per_frame.append({key: a.get(key, 0.0) + w * (b.get(key, 0.0) - a.get(key, 0.0)) for key in {**a, **b}})
        out.append(PromptFrame(prompt, strip_tags(row.negative_prompt), blend, strip_tags(row.blend_negative_prompt),
                               row.blend_weight))
    names = list(dict.fromkeys(key for _, weights in parsed.values() for key in weights))
    columns = {key: np.array([weights.get(key, 0.0) for weights in per_frame], dtype=np.float64) for key in names}
    return out, columns
