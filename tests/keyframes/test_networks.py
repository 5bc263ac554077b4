"""<lora:NAME:WEIGHT> tags: parsed as A1111 parses them (against an oracle written from A1111's extra_networks.py
parse_prompt + ExtraNetworkParams and the Lora extension's activate), cut from the text, weights per frame."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anim.errors import ScheduleError
from anim.keyframes import resolve_prompts
from anim.keyframes.networks import (
    column_network,
    frame_networks,
    mentions_networks,
    network_column,
    prompt_networks,
    tag_text,
)
from anim.keyframes.prompts import smoothstep


def a1111_networks(prompt: str) -> tuple[str, list[tuple[str, str, float, float, int | None, dict]]]:
    """Oracle: A1111's reading of a prompt. The text with every <word:args> removed, and per tag
    (kind, name, te, unet, dyn, named args); raises where A1111 would (float(), int(), positional[0])."""
    found = []

    def cut(match):
        positional, named = [], {}
        for item in match.group(2).split(":"):
            parts = item.split("=", 2)
            if len(parts) == 2:
                named[parts[0]] = parts[1]
            else:
                positional.append(item)
        found.append((match.group(1), positional, named))
        return ""

    text = re.sub(r"<(\w+):([^>]+)>", cut, prompt)
    out = []
    for kind, positional, named in found:
        name = positional[0]
        te = float(positional[1]) if len(positional) > 1 else 1.0
        te = float(named.get("te", te))
        unet = float(positional[2]) if len(positional) > 2 else te
        unet = float(named.get("unet", unet))
        dyn = int(positional[3]) if len(positional) > 3 else None
        dyn = int(named["dyn"]) if "dyn" in named else dyn
        out.append((kind, name, te, unet, dyn, named))
    return text, out


def anim_supports(tags) -> bool:
    """What anim documents it takes: LoRA kinds with a name, one finite weight, no dyn, no other named args."""
    return all(kind in ("lora", "lyco") and name and te == unet and math.isfinite(te) and dyn is None
               and set(named) <= {"te", "unet"} for kind, name, te, unet, dyn, named in tags)


ARGS = st.sampled_from(["cat", "detail_v2", "0.5", "1", "-1", " 0.25 ", "te=0.5", "unet=0.5", "te=2", "unet=2",
                        "dyn=4", "foo=1", "", "abc", "nan", "1e400", "a=b=c", "2"])
TAGS = st.builds(lambda kind, args: f"<{kind}:{':'.join(args)}>",
                 st.sampled_from(["lora", "lyco", "hypernet", "LoRA"]), st.lists(ARGS, min_size=1, max_size=5))
PIECES = st.one_of(TAGS, st.sampled_from(["a cat", ", ", " ", "(oil:1.2)", "<", ">", ":", "<lora:", "x>", "`"]))


@settings(max_examples=400, deadline=None)
@given(st.lists(PIECES, max_size=6).map("".join))
def test_tags_read_as_a1111_reads_them(prompt):
    try:
        text, tags = a1111_networks(prompt)
    except (ValueError, IndexError):
        tags = None  # A1111 fails on it: anim must refuse it too
    if tags is None or not anim_supports(tags):
        with pytest.raises(ScheduleError):
            prompt_networks(prompt)
        return
    expected: dict[str, float] = {}
    for _, name, te, *_ in tags:
        expected[name] = expected.get(name, 0.0) + te  # A1111 applies a name tagged twice twice
    assert prompt_networks(prompt) == (text.strip(), expected)


def test_examples_and_messages():
    assert prompt_networks("a cat <lora:x:0.8>") == ("a cat", {"x": 0.8})
    assert prompt_networks("<lyco:x> a cat, <lora:y:te=0.5:unet=0.5>") == ("a cat,", {"x": 1.0, "y": 0.5})
    assert prompt_networks("<lora:x:0.5><lora:x:0.25>") == ("", {"x": 0.75})
    for prompt, message in (("<lora:x:abc>", "weight 'abc' is not a number"),
                            ("<lora:x:1:0.5>", "separate text-encoder"),
                            ("<lora:x:1:1:8>", "DyLoRA"), ("<lora:x:lbw=OUTD>", "unknown argument 'lbw'"),
                            ("<hypernet:x:1>", "only LoRA tags"), ("<lora::1>", "no LoRA name"),
                            ("<lora:x:inf>", "not a finite number")):
        with pytest.raises(ScheduleError, match=re.escape(message)):
            prompt_networks(f"a cat {prompt}")


def test_columns_and_infotext_tags():
    assert column_network(network_column("detail v2")) == "detail v2" and column_network("lora0_weight") is None
    assert tag_text("x", 0.5) == "<lora:x:0.5>" and tag_text("x", 1.0) == "<lora:x:1>"
    assert mentions_networks(["a", "b <lyco:x>"]) and not mentions_networks(["a <hypernet:x>", "x > y: z"])


def test_weights_follow_keyframes_and_blend_with_the_crossfade():
    rows = resolve_prompts({0: "a <lora:x:0> --neg ugly <lora:z:1>", 4: "b <lora:x:1> <lora:y:0.5>"}, 6,
                           blend_frames=4)
    stripped, weights = frame_networks(rows)
    w = smoothstep(np.arange(4) / 4)  # the crossfade toward key 4 over frames 0..3
    assert list(weights) == ["x", "y"]  # tags in negative prompts load nothing
    np.testing.assert_allclose(weights["x"], [*((1 - w) * 0 + w * 1), 1, 1])
    np.testing.assert_allclose(weights["y"], [*(w * 0.5), 0.5, 0.5])
    assert [r.prompt for r in stripped] == ["a"] * 4 + ["b"] * 2
    assert [r.blend_prompt for r in stripped] == ["b"] * 6
    assert [r.negative_prompt for r in stripped] == ["ugly"] * 4 + [""] * 2
    assert [r.blend_weight for r in stripped] == [r.blend_weight for r in rows]


def test_backtick_weights_are_evaluated_per_frame_before_the_tag_is_read():
    rows = resolve_prompts({0: "a cat <lora:x:`t/4`>", 3: "a cat <lora:x:`where(t>3, 2, 0.5)`>"}, 5)
    stripped, weights = frame_networks(rows)
    assert weights["x"].tolist() == [0.0, 0.25, 0.5, 0.5, 2.0]
    assert {r.prompt for r in stripped} == {"a cat"}


def test_frames_without_tags_are_zero_and_errors_name_the_frame():
    _, weights = frame_networks(resolve_prompts({0: "a", 2: "b <lora:x:0.7>", 3: "c"}, 4))
    assert weights["x"].tolist() == [0.0, 0.0, 0.7, 0.0]
    assert frame_networks(resolve_prompts({0: "a"}, 2))[1] == {}
    with pytest.raises(ScheduleError, match=r"frame 3: <lora:x:abc>: weight 'abc'"):
        frame_networks(resolve_prompts({0: "a", 3: "b <lora:x:abc>"}, 5))


def test_a_weight_replaced_by_a_named_one_may_be_any_float():
    """A1111 reads the positional weight with float() and then replaces it with te=: 'nan' there is harmless
    (found by hypothesis), 'abc' still fails as A1111's float() does."""
    assert prompt_networks("<lora:cat:te=0.5:nan>") == ("", {"cat": 0.5})
    with pytest.raises(ScheduleError, match="not a number"):
        prompt_networks("<lora:cat:abc:te=0.5>")
    with pytest.raises(ScheduleError, match="not a finite number"):
        prompt_networks("<lora:cat:0.5:unet=nan>")
