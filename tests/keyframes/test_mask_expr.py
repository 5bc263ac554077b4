"""Deforum's composable mask expressions: the parser against an oracle written from Deforum's composable_masks.py
(parentheses reduced first, then `!`, then passes of & | ^ \\ in that order, each left to right)."""
from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anim.errors import PresetError, ScheduleError
from anim.keyframes import parse_text_schedule
from anim.keyframes.mask_expr import MaskExprError, canonical_checker, evaluate, parse_mask_expr, refs

NAMES = ("a", "b", "c", "d")
# every combination of four masks over 16 pixels: each name's bit pattern is one column of a truth table
PIXELS = np.array(list(itertools.product([False, True], repeat=4)))
VALUES = {name: PIXELS[:, i] for i, name in enumerate(NAMES)}


def oracle(text: str) -> np.ndarray:
    """Deforum's reduction, on a token list instead of regular expressions: innermost parentheses first; in a flat
    run, `!` on the mask after it, then & , |, ^, \\ each reduced left to right in its own pass."""
    tokens = text.replace("{", " {").replace("}", "} ").split()
    tokens = [t for tok in tokens for t in (list(tok) if not tok.startswith("{") else [tok])]
    tokens = [t for t in tokens if t.strip()]
    stack: list[list] = [[]]
    for token in tokens:
        if token == "(":
            stack.append([])
        elif token == ")":
            inner = flat(stack.pop())
            stack[-1].append(inner)
        else:
            stack[-1].append(VALUES[token[1:-1]] if token.startswith("{") else token)
    return flat(stack[0])


def flat(items: list):
    """One parenthesis-free run reduced to one mask."""
    out = []
    i = 0
    while i < len(items):
        if isinstance(items[i], str) and items[i] == "!":
            count = 0
            while isinstance(items[i], str) and items[i] == "!":
                count, i = count + 1, i + 1
            out.append(~items[i] if count % 2 else items[i])
        else:
            out.append(items[i])
        i += 1
    for op, fn in (("&", np.logical_and), ("|", np.logical_or), ("^", np.logical_xor),
                   ("\\", lambda x, y: x & ~y)):
        reduced = [out[0]]
        for j in range(1, len(out), 2):
            if out[j] == op:
                reduced[-1] = fn(reduced[-1], out[j + 1])
            else:
                reduced += [out[j], out[j + 1]]
        out = reduced
    assert len(out) == 1
    return out[0]


def ours(text: str) -> np.ndarray:
    return evaluate(parse_mask_expr(text, NAMES), lambda ref: VALUES[ref.value])


@pytest.mark.parametrize("text", [
    "{a}", "!{a}", "{a} & {b}", "{a}|{b}&{c}", "{a} ^ {b} | {c}", "{a} \\ {b} ^ {c}", "{a} & !{b} | {c}",
    "!({a} | {b}) & {c}", "({a} \\ {b}) \\ {c}", "{a} \\ ({b} \\ {c})", "!!{a}", "(({a}))",
    "!({d}^({a}|{b}) )", "{a} | {b} ^ {c} & {d} \\ {a}",
])
def test_precedence_and_parentheses_match_the_oracle(text):
    assert np.array_equal(ours(text), oracle(text))


def expressions():
    leaf = st.sampled_from([f"{{{n}}}" for n in NAMES])
    return st.recursive(leaf, lambda inner: st.one_of(
        st.builds(lambda x: "!" + x, inner),
        st.builds(lambda x: f"({x})", inner),
        st.builds(lambda x, op, y: f"{x} {op} {y}", inner, st.sampled_from(["&", "|", "^", "\\"]), inner)),
        max_leaves=8)


@settings(max_examples=150, deadline=None)
@given(expressions())
def test_any_expression_matches_the_oracle(text):
    assert np.array_equal(ours(text), oracle(text))


def test_everything_binds_as_documented():
    # & before |: a | (b & c); | before ^: (a | b) ^ c; \ loosest: a \ (b ^ c)
    assert np.array_equal(ours("{a} | {b} & {c}"), VALUES["a"] | (VALUES["b"] & VALUES["c"]))
    assert np.array_equal(ours("{a} | {b} ^ {c}"), (VALUES["a"] | VALUES["b"]) ^ VALUES["c"])
    assert np.array_equal(ours("{a} \\ {b} ^ {c}"), VALUES["a"] & ~(VALUES["b"] ^ VALUES["c"]))


def test_files_are_leaves():
    text = "[masks/box 1.png] & !{a}"
    tree = parse_mask_expr(text, NAMES)
    assert [(r.kind, r.value, r.column) for r in refs(tree)] == [("file", "masks/box 1.png", 1),
                                                                 ("name", "a", text.index("{a}") + 1)]


@pytest.mark.parametrize("text, column, words", [
    ("{a} & {zz}", 7, "unknown mask {zz}"),
    ("{a} & ", 7, "expected a mask"),
    ("({a} | {b}", 1, "'(' is not closed"),
    ("{a} | {b})", 10, "unmatched ')'"),
    ("{a} {b}", 5, "expected an operator"),
    ("{a} + {b}", 5, "unexpected '+'"),
    ("{a", 1, "'{' is not closed"),
    ("<cat> & {a}", 1, "word masks"),
    ("", 1, "empty mask expression"),
])
def test_errors_name_the_column(text, column, words):
    with pytest.raises(MaskExprError, match=re.escape(words)) as caught:
        parse_mask_expr(text, NAMES)
    assert caught.value.column == column


def test_schedule_error_names_the_key_frame_and_column():
    text = '0: ({a}), 10: ("{a} & !{boxx}")'
    with pytest.raises(ScheduleError) as caught:
        parse_text_schedule(text, "mask.schedule", canonical_checker(NAMES))
    message = str(caught.value)
    assert message.startswith("mask.schedule: keyframe 10: unknown mask {boxx}")
    assert f"at column {text.index('{boxx}') + 1} " in message


def load_mask_preset(tmp_path, mask_yaml: str):
    """A tiny preset with this `mask:` section, loaded (no model is touched)."""
    from anim.plan import load_preset

    path = tmp_path / "p.yaml"
    path.write_text("model: tiny\nwidth: 64\nheight: 64\nmax_frames: 2\nprompts: {0: a}\nmask:\n" + mask_yaml)
    return load_preset(path)


def test_preset_load_fails_before_any_model(tmp_path):
    with pytest.raises(PresetError, match=r"p.yaml:7: mask.schedule: keyframe 0: unknown mask \{box\} .* column 21"):
        load_mask_preset(tmp_path, "  schedule: '0: ({everywhere} & !{box})'\n")


def test_missing_named_file_fails_at_load(tmp_path):
    with pytest.raises(PresetError, match=r"mask.named.box: file not found: nowhere.png"):
        load_mask_preset(tmp_path, "  named: {box: nowhere.png}\n  schedule: '0: ([gone.png] | {box})'\n")
