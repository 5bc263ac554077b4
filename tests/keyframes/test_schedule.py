"""Schedules: Deforum semantics on tiny inputs with exact expected values."""

import numpy as np
import pytest

from anim.errors import ScheduleError
from anim.keyframes import parse_schedule, resolve_key
from anim.keyframes.interp import ease_in, ease_in_out, ease_out, natural_cubic


def values(spec, max_frames=10, seed=0):
    return parse_schedule(spec, "motion.zoom").evaluate(max_frames, seed)


def expect(spec, expected, max_frames=None, seed=0):
    expected = np.asarray(expected, dtype=np.float64)
    np.testing.assert_allclose(values(spec, max_frames or len(expected), seed), expected, rtol=0, atol=1e-12)


# -- the DOMAIN.md examples ------------------------------------------------------------------------

def test_domain_numeric_then_expression():
    expected = [5 + 1.5 * f for f in range(10)] + [2.0 * f for f in range(10, 20)]
    expect("0:(5), 10:(2*t)", expected)
    assert values("0:(5), 10:(2*t)", 20)[9] == 18.5


def test_domain_expression_then_numeric():
    expect("0:(2*t), 10:(5)", [2.0 * f for f in range(10)] + [5.0] * 10)


# -- numeric vs expression keyframes -------------------------------------------------------------

@pytest.mark.parametrize("spec, expected", [
    ("0:(0), 4:(8)", [0, 2, 4, 6, 8, 8]),                      # linear, then hold
    ("0:(1.), 4:(8)", [1, 1, 1, 1, 8, 8]),                     # '1.' is an expression: held, then jump
    ("0:(1e0), 4:(8)", [1, 1, 1, 1, 8, 8]),                    # so is '1e0'
    ("0:( 1 ), 4:(8)", [1, 1, 1, 1, 8, 8]),                    # Deforum: inner spaces make an expression
    ("0:1, 4:8", [1, 2.75, 4.5, 6.25, 8, 8]),                  # parentheses are optional
    ("0:('1'), 4:(\"8\")", [1, 2.75, 4.5, 6.25, 8, 8]),        # quotes are decoration
    ("  0 : ( 1 ) ,4:((8))", [1, 1, 1, 1, 8, 8]),              # spaces around, '( 1 )' still an expression
    ("0:(-.5), 2:(+1.5)", [-0.5, 0.5, 1.5, 1.5]),              # signs and bare decimals are numbers
    ("0:(t), 3:(10)", [0, 1, 2, 10, 10]),                      # expression until the next key
    ("0:(0), 2:(t*t), 4:(0)", [0, 2, 4, 9, 0, 0]),             # numeric toward an expression key's value
    ("0:(0), max_f/2:(4), 2:(8)", [0, 4, 8, 8, 8]),            # a max_f key meeting a literal one: the later wins
])
def test_keyframe_kinds(spec, expected):
    expect(spec, expected)


@pytest.mark.parametrize("spec, expected", [
    ("0:(0), max_f:(10)", [0, 2.5, 5, 7.5, 10]),
    ("0:(0), max_f/2:(4), max_f:(0)", [0, 2, 4, 2, 0]),
    ("0:(0), (max_f/3):(1)", [0, 1, 1, 1, 1]),                 # 4/3 truncates to 1
    ("0:(0), 'max_f-2':(2)", [0, 1, 2, 2, 2]),
    ("0:(max_f), 1:(s)", [4, 9, 9, 9, 9]),
])
def test_max_f_keys_and_variables(spec, expected):
    expect(spec, expected, seed=9)


def test_commas_inside_calls_are_not_separators():
    expect("0:(where(t>2, 1, 0)), 5:(min(t, 5))", [0, 0, 0, 1, 1, 5, 5])
    expect("0:(clamp(t, 1, 3)), 4:(max(1, 2, t))", [1, 1, 2, 3, 4, 5])


def test_first_key_not_zero_holds_backwards():
    expect("3:(6), 5:(2)", [6, 6, 6, 6, 4, 2, 2])
    expect("2:(t*10)", [20, 20, 20, 30])


def test_keys_beyond_the_last_frame_shape_the_curve():
    partial = values("0:(0), 100:(100)", 30)
    assert partial[29] == 29.0
    np.testing.assert_array_equal(partial, values("0:(0), 100:(100)", 101)[:30])


def test_negative_keys_count_as_earlier_anchors():
    expect("-2:(0), 2:(4)", [2, 3, 4, 4])


def test_bare_number_string_and_number_spec():
    expect("1.02", [1.02, 1.02])
    expect(3, [3.0, 3.0, 3.0])
    expect(0.5, [0.5])
    expect("sin(0)+2", [2.0, 2.0])


def test_zero_frames_is_empty():
    assert values("0:(1/t)", 0).shape == (0,)


def test_expression_with_seed_and_functions():
    expect("0:(s + sqrt(t) + abs(-2) % 3)", [9, 10, 9 + np.sqrt(2)], seed=7)


def test_is_constant():
    assert parse_schedule("0:(1), 5:(1)", "z").is_constant
    assert not parse_schedule("0:(1), 5:(2)", "z").is_constant
    assert not parse_schedule("0:(1.)", "z").is_constant


# -- mapping form and eases --------------------------------------------------------------------

def test_mapping_numbers_strings_and_expression_keys():
    expect({0: 0, "4": "8", "max_f": "t"}, [0, 2, 4, 6, 8, 8.2, 8.4, 8.6, 8.8, 9])


def test_step_ease_holds_until_next_key():
    expect({0: {"value": 1, "ease": "step"}, 3: 4, 5: 0}, [1, 1, 1, 4, 2, 0])


@pytest.mark.parametrize("ease, curve", [("ease_in", ease_in), ("ease_out", ease_out),
                                         ("ease_in_out", ease_in_out), ("linear", lambda u: u)])
def test_ease_curves(ease, curve):
    u = np.arange(5) / 4
    expected = list(10 + 20 * curve(u)) + [30.0]
    expect({0: {"value": 10, "ease": ease}, 4: 30}, expected)


def test_ease_curve_values():
    u = np.array([0.0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(ease_in(u), [0, 1 / 64, 1 / 8, 27 / 64, 1])
    np.testing.assert_allclose(ease_out(u), [0, 37 / 64, 7 / 8, 63 / 64, 1])
    np.testing.assert_allclose(ease_in_out(u), [0, 1 / 16, 0.5, 15 / 16, 1])


def test_cubic_passes_through_keys_and_is_c1():
    keys, anchors = np.array([0.0, 3.0, 5.0, 9.0]), np.array([0.0, 6.0, -2.0, 1.0])
    spec = {int(k): {"value": float(a), "ease": "cubic"} for k, a in zip(keys, anchors)}
    out = values(spec, 10)
    np.testing.assert_allclose(out[keys.astype(int)], anchors, atol=1e-12)
    np.testing.assert_allclose(out, natural_cubic(keys, anchors, np.arange(10.0)), atol=1e-12)
    h = 1e-6
    for k in keys[1:-1]:
        left = (natural_cubic(keys, anchors, [k]) - natural_cubic(keys, anchors, [k - h])) / h
        right = (natural_cubic(keys, anchors, [k + h]) - natural_cubic(keys, anchors, [k])) / h
        assert left == pytest.approx(right, abs=1e-4)


def test_natural_cubic_known_values():
    # knots (0,0),(1,1),(2,0): M1 = -3, so S(0.5) = 0.6875; natural ends have zero curvature
    np.testing.assert_allclose(natural_cubic([0, 1, 2], [0, 1, 0], [0.5, 1.0, 1.5]), [0.6875, 1.0, 0.6875])
    np.testing.assert_allclose(natural_cubic([0, 2], [1, 3], [1.0]), [2.0])


def test_cubic_only_on_marked_segments():
    out = values({0: 0, 2: {"value": 2, "ease": "cubic"}, 4: 0, 6: 2}, 7)
    np.testing.assert_allclose(out[:3], [0, 1, 2])
    np.testing.assert_allclose(out[4:], [0, 1, 2])
    assert out[3] == pytest.approx(float(natural_cubic([0, 2, 4, 6], [0, 2, 0, 2], [3.0])[0]))


# -- errors --------------------------------------------------------------------------------------

def error(spec, max_frames=10):
    with pytest.raises(ScheduleError) as info:
        parse_schedule(spec, "motion.zoom").evaluate(max_frames)
    message = str(info.value)
    assert "\n" not in message and message.startswith("motion.zoom")
    return message


@pytest.mark.parametrize("spec, message", [
    ("0:(__import__('os'))", "motion.zoom: unknown name '__import__' at column 4 in \"0:(__import__('os'))\""),
    ("0:(().__class__)", "empty parentheses '()' at column 4"),
    ("0:(t.real)", "unexpected character '.' at column 5"),
    ("0:('a'*9**9)", "unexpected character \"'\" at column 4"),
    ("0:(1), 5:(t[0])", "unexpected character '[' at column 12"),
    ("0:(1), t:(2)", "'t' cannot be used in a frame key (only max_f) at column 8"),
    ("0:(1), 5", 'expected "FRAME:(VALUE)" at column 8'),
    ("0:(1), :(2)", "missing frame number at column 8"),
    ("0:(1), 4:", "missing value at column 10"),
    ("0:(1", "unclosed '(' at column 3"),
    ("0:(1))", "unmatched ')' at column 6"),
    ("0:(x)", "unknown name 'x' at column 4"),
])
def test_syntax_errors_name_token_and_column(spec, message):
    assert message in error(spec)


def test_deep_nesting_in_a_schedule():
    assert "nested too deeply" in error("0:" + "(" * 5000 + "t" + ")" * 5000)
    # Deforum strips every parenthesis before its number test, so this one is just the number 1
    assert values("0:" + "(" * 5000 + "1" + ")" * 5000, 2).tolist() == [1.0, 1.0]


@pytest.mark.parametrize("spec", ["", "   ", ",", " , ,", {}])
def test_no_keyframes(spec):
    assert "no keyframes" in error(spec)


def test_division_by_zero_names_the_frame():
    assert error("0:(1/(t-5))") == 'motion.zoom: value is inf (not finite) at frame 5 in "0:(1/(t-5))"'
    assert "at frame 3" in error("0:(sqrt(2-t))")
    assert "at frame 0" in error("0:(10**400)")


def test_where_guards_division():
    assert values("0:(where(t>5, 1/(t-5), 0))", 8)[6:].tolist() == [1.0, 0.5]


def test_bad_key_expression_at_runtime():
    assert "frame key 'max_f/0' gives inf" in error("0:(1), max_f/0:(2)")


@pytest.mark.parametrize("spec, message", [
    ({0: {"value": 1, "ease": "bouncy"}}, "unknown ease 'bouncy'"),
    ({0: {"ease": "step"}}, "needs 'value'"),
    ({0: {"value": "t", "ease": "cubic"}}, "does not apply to an expression"),
    ({0: True}, "value must be a number"),
    ({0: "2*x"}, "motion.zoom[0]: unknown name 'x' at column 3 in \"2*x\""),
    ({"t": 1}, "'t' cannot be used in a frame key"),
    ({0: float("nan")}, "is not finite"),
    ([1, 2], "expected a schedule string"),
])
def test_mapping_errors(spec, message):
    assert message in error(spec)


def test_resolve_key():
    assert [resolve_key(k, 19) for k in (5, "5", "(5)", "'7'", "max_f/2", "max_f", 3.9, "-1")] == \
        [5, 5, 5, 7, 9, 19, 3, -1]
    with pytest.raises(ScheduleError, match="unknown name 'x' at column 1"):
        resolve_key("x", 10, name="prompts")


@pytest.mark.parametrize("spec", ["0:(1), 2:(1), 2:(5), 4:(1)", "0:(t), 0:(7)", "0:(1), 5:(1), (5):(2)"])
def test_two_keyframes_on_one_literal_frame_are_refused(spec):
    """Issue Q: `5:(1), 5:(2)` is a typo, not a value (Deforum silently kept the later one)."""
    with pytest.raises(ScheduleError, match="has two keyframes"):
        parse_schedule(spec, "zoom")
