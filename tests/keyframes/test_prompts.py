"""Prompt keyframes, crossfade windows, --neg, globals, and A1111 attention weights."""

import pytest

from anim.errors import ScheduleError
from anim.keyframes import PromptFrame, parse_weighted, resolve_prompts


def plain(prompt, negative=""):
    return PromptFrame(prompt, negative, prompt, negative, 0.0)


def test_latest_keyframe_wins_and_first_holds_backwards():
    rows = resolve_prompts({2: "b", "4": "c"}, 6)
    assert [r.prompt for r in rows] == ["b", "b", "b", "b", "c", "c"]
    assert all(r == plain(r.prompt) for r in rows)


def test_neg_split_and_globals_joined():
    rows = resolve_prompts({0: " a cat --neg ugly ", 1: "a dog"}, 2,
                           negative_prompt=" blurry ", positive_prompt="oil painting")
    assert rows[0] == plain("oil painting, a cat", "ugly, blurry")  # the global positive is prepended (Deforum)
    assert rows[1] == plain("oil painting, a dog", "blurry")


def test_empty_parts_are_skipped():
    rows = resolve_prompts({0: "--neg bad", 1: ""}, 2)
    assert rows == [plain("", "bad"), plain("")]


def test_max_f_keys_and_duplicates():
    rows = resolve_prompts({0: "a", "max_f/2": "b", 2: "c"}, 5)   # max_f/2 = 2: the later 2 wins
    assert [r.prompt for r in rows] == ["a", "a", "c", "c", "c"]


def test_blend_window_weights_are_smoothstep():
    rows = resolve_prompts({0: "a --neg x", 6: "b --neg y"}, 8, blend_frames=4)
    assert [r.prompt for r in rows] == ["a"] * 6 + ["b"] * 2
    assert [r.blend_prompt for r in rows] == ["a", "a", "b", "b", "b", "b", "b", "b"]
    assert [r.blend_negative_prompt for r in rows[2:6]] == ["y"] * 4
    assert [r.negative_prompt for r in rows[2:6]] == ["x"] * 4
    # window [2, 6): u = 0, 1/4, 1/2, 3/4 -> 3u^2 - 2u^3
    assert [r.blend_weight for r in rows] == pytest.approx([0, 0, 0, 5 / 32, 0.5, 27 / 32, 0, 0])
    assert rows[6] == plain("b", "y")


def test_blend_window_is_clipped_by_previous_key():
    rows = resolve_prompts({0: "a", 2: "b", 3: "c"}, 4, blend_frames=5)
    assert [(r.prompt, r.blend_prompt, r.blend_weight) for r in rows] == [
        ("a", "b", 0.0), ("a", "b", 0.5), ("b", "c", 0.0), ("c", "c", 0.0)]


def test_blend_zero_is_a_hard_cut():
    rows = resolve_prompts({0: "a", 2: "b"}, 4, blend_frames=0)
    assert rows == [plain("a"), plain("a"), plain("b"), plain("b")]


def test_prompt_errors():
    with pytest.raises(ScheduleError, match="prompts: expected a non-empty mapping"):
        resolve_prompts({}, 3)
    with pytest.raises(ScheduleError, match=r"prompts\[0\]: prompt must be text"):
        resolve_prompts({0: 5}, 3)
    with pytest.raises(ScheduleError, match="prompts: unknown name 'x' at column 1"):
        resolve_prompts({"x": "a"}, 3)
    with pytest.raises(ScheduleError, match="blend frames"):
        resolve_prompts({0: "a"}, 3, blend_frames=-1)


R, S = 1.1, 1 / 1.1


@pytest.mark.parametrize("text, expected", [
    ("a (b) [c] (d:1.3) ((e))", [("a ", 1), ("b", R), (" ", 1), ("c", S), (" ", 1), ("d", 1.3), (" ", 1),
                                 ("e", R * R)]),
    ("", [("", 1.0)]),
    ("plain text", [("plain text", 1.0)]),
    ("(x: 1.3 )", [("x", 1.3)]),
    ("((x:2))", [("x", 2 * R)]),
    ("[[x]]", [("x", S * S)]),
    ("([x])", [("x", R * S)]),
    (r"\(x\) \[y\] \\", [("(x) [y] \\", 1.0)]),
    ("a\\b", [("ab", 1.0)]),
    ("a (b", [("a ", 1), ("b", R)]),
    ("a [b", [("a ", 1), ("b", S)]),
    ("a) b]", [("a) b]", 1.0)]),
    ("a:b", [("a:b", 1.0)]),
    ("(a:b)", [("a:b", R)]),
    ("a BREAK b", [("a", 1), ("BREAK", -1), ("b", 1)]),
    ("BREAK", [("BREAK", -1)]),
    ("aBREAK b", [("aBREAK b", 1)]),
    ("(a BREAK b)", [("a", R), ("BREAK", -1), ("b", R)]),
    ("a (b) c", [("a ", 1), ("b", R), (" c", 1)]),
    ("(a)(b)", [("ab", R)]),
    ("(x:-0.5)", [("x", -0.5)]),
])
def test_parse_weighted(text, expected):
    result = parse_weighted(text)
    assert [t for t, _ in result] == [t for t, _ in expected]
    assert [w for _, w in result] == pytest.approx([w for _, w in expected], rel=1e-15)


def test_parse_weighted_exact_a1111_floats():
    assert parse_weighted("((e))") == [("e", 1.1 * 1.1)]
    assert parse_weighted("[c]") == [("c", 1 / 1.1)]
