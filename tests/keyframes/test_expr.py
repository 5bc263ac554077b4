"""Safe expression evaluator: tiny inputs, exact values, clean rejections."""

import math

import numpy as np
import pytest

from anim.errors import ScheduleError
from anim.keyframes.expr import FUNCTIONS, ExprError, compile_expr

T = np.array([0.0, 1.0, 2.0, 3.0])


def ev(text, t=T, max_f=9.0, s=7.0):
    return compile_expr(text).evaluate(t, max_f, s)


@pytest.mark.parametrize("text, expected", [
    ("1", 1.0), ("1.5", 1.5), (".5", 0.5), ("1.", 1.0), ("1e-3", 0.001), ("2E2", 200.0), ("1.5e+1", 15.0),
    ("pi", math.pi), ("e", math.e), ("max_f", 9.0), ("s", 7.0),
    ("1+2*3", 7.0), ("(1+2)*3", 9.0), ("10-4-3", 3.0), ("8/4/2", 1.0), ("2*3%4", 2.0),
    ("7%3", 1.0), ("-7%3", 2.0), ("7%-3", -2.0), ("7.5%2", 1.5),
    ("-2**2", -4.0), ("2**-1", 0.5), ("2**3**2", 512.0), ("(-2)**2", 4.0), ("--2", 2.0), ("+-+2", -2.0),
    ("-2**-2", -0.25), ("2*-3", -6.0), ("1+-1", 0.0),
    ("1<2", 1.0), ("2<1", 0.0), ("1<=1", 1.0), ("1>=2", 0.0), ("2>1", 1.0), ("1==1", 1.0), ("1!=1", 0.0),
    ("1<2<3", 1.0), ("1<3<2", 0.0), ("3>2>1", 1.0), ("1==1==1", 1.0), ("1+1<3", 1.0),
    ("(1<2)&(2<3)", 1.0), ("1<2 & 3<2", 0.0), ("1<2 | 3<2", 1.0), ("0|0", 0.0), ("~0", 1.0), ("~2>1", 0.0),
    ("~(2>1) | 1", 1.0), ("1 | 0 & 0", 1.0),
])
def test_scalar_values(text, expected):
    assert ev(text) == pytest.approx([expected] * 4, abs=0, rel=1e-15)


@pytest.mark.parametrize("text, fn", [
    ("sin(t)", np.sin), ("cos(t)", np.cos), ("tan(t)", np.tan),
    ("asin(t/4)", lambda t: np.arcsin(t / 4)), ("arcsin(t/4)", lambda t: np.arcsin(t / 4)),
    ("acos(t/4)", lambda t: np.arccos(t / 4)), ("arccos(t/4)", lambda t: np.arccos(t / 4)),
    ("atan(t)", np.arctan), ("arctan(t)", np.arctan),
    ("atan2(t, 2)", lambda t: np.arctan2(t, 2)), ("arctan2(1, t)", lambda t: np.arctan2(1, t)),
    ("sinh(t)", np.sinh), ("cosh(t)", np.cosh), ("tanh(t)", np.tanh),
    ("asinh(t)", np.arcsinh), ("arcsinh(t)", np.arcsinh), ("acosh(t+1)", lambda t: np.arccosh(t + 1)),
    ("arccosh(t+1)", lambda t: np.arccosh(t + 1)), ("atanh(t/4)", lambda t: np.arctanh(t / 4)),
    ("arctanh(t/4)", lambda t: np.arctanh(t / 4)),
    ("exp(t)", np.exp), ("expm1(t)", np.expm1), ("log(t+1)", lambda t: np.log(t + 1)),
    ("log10(t+1)", lambda t: np.log10(t + 1)), ("log1p(t)", np.log1p), ("sqrt(t)", np.sqrt),
    ("abs(t-2)", lambda t: np.abs(t - 2)), ("floor(t/2)", lambda t: np.floor(t / 2)),
    ("ceil(t/2)", lambda t: np.ceil(t / 2)), ("round(t/2)", lambda t: np.round(t / 2)),
    ("min(t, 1.5)", lambda t: np.minimum(t, 1.5)), ("max(t, 1.5)", lambda t: np.maximum(t, 1.5)),
    ("min(t, 2, 0.5+t)", lambda t: np.minimum(np.minimum(t, 2), 0.5 + t)),
    ("max(1, t, 2.5)", lambda t: np.maximum(np.maximum(1, t), 2.5)),
    ("clamp(t, 1, 2)", lambda t: np.clip(t, 1, 2)), ("where(t>1, 10, -t)", lambda t: np.where(t > 1, 10, -t)),
])
def test_every_function(text, fn):
    np.testing.assert_allclose(ev(text), fn(T), rtol=1e-15, atol=0)


def test_function_table_is_covered():
    tested = {"sin", "cos", "tan", "asin", "arcsin", "acos", "arccos", "atan", "arctan", "atan2", "arctan2",
              "sinh", "cosh", "tanh", "asinh", "arcsinh", "acosh", "arccosh", "atanh", "arctanh", "exp", "expm1",
              "log", "log10", "log1p", "sqrt", "abs", "floor", "ceil", "round", "min", "max", "clamp", "where"}
    assert set(FUNCTIONS) == tested


def test_vectorised_over_t_and_names_recorded():
    expr = compile_expr("t * max_f + s")
    np.testing.assert_array_equal(expr.evaluate(T, 10, 1), [1.0, 11.0, 21.0, 31.0])
    assert expr.names == {"t": 1, "max_f": 5, "s": 13}


def test_where_ignores_the_unchosen_branch():
    out = ev("where(t>1, 1/(t-1), 0)")
    np.testing.assert_array_equal(out, [0.0, 0.0, 1.0, 0.5])


def test_division_by_zero_gives_inf_not_exception():
    assert np.isinf(ev("1/t")[0]) and np.isnan(ev("0/0")[0]) and np.isinf(ev("10**400")[0])


def test_parse_is_cached():
    assert compile_expr("sin(t)*2") is compile_expr("sin(t)*2")


def test_long_flat_sum_is_fine():
    assert ev("+".join(["1"] * 3000))[0] == 3000.0


def reason(text):
    with pytest.raises(ScheduleError) as info:
        compile_expr(text)
    assert isinstance(info.value, ExprError)
    return str(info.value)


@pytest.mark.parametrize("text, message", [
    ("__import__('os')", "unknown name '__import__' at column 1"),
    ("().__class__", "empty parentheses '()' at column 1"),
    ("t.real", "unexpected character '.' at column 2"),
    ("'a'*9**9", "unexpected character \"'\" at column 1"),
    ("t[0]", "unexpected character '[' at column 2"),
    ("lambda: 1", "unknown name 'lambda' at column 1"),
    ("1 if t else 2", "unexpected 'if' at column 3"),
    ("1 2", "unexpected '2' at column 3"),
    ("(1+2", "unclosed '(' at column 1"),
    ("1+2)", "unexpected ')' at column 4"),
    ("", "empty expression at column 1"),
    ("1+", "expression ends where a value is expected at column 3"),
    ("sin", "function 'sin' needs arguments, like sin(...) at column 1"),
    ("sin(1, 2)", "sin() takes 1 argument, got 2 at column 1"),
    ("where(1, 2)", "where() takes 3 arguments, got 2 at column 1"),
    ("min(1)", "min() takes at least 2 arguments, got 1 at column 1"),
    ("cos()", "cos() takes 1 argument, got 0 at column 1"),
    ("min(1,)", "unexpected ')' at column 7"),
    ("t(2)", "'t' is not a function at column 1"),
    ("1e", "malformed number '1e' at column 1"),
    ("1.2.3", "malformed number '1.2.3' at column 1"),
    ("1 = 2", "unexpected character '=' at column 3"),
    ("1 // 2", "unexpected '/' at column 4"),
    ("1 < ~2", "'~' needs parentheses here at column 5"),
    ("x", "unknown name 'x' at column 1"),
])
def test_rejections_name_token_and_column(text, message):
    assert message in reason(text)


@pytest.mark.parametrize("text", ["(" * 5000 + "1" + ")" * 5000, "-" * 5000 + "1", "2**" * 3000 + "2",
                                  "sin(" * 3000 + "1" + ")" * 3000])
def test_deep_nesting_is_a_schedule_error_not_recursion(text):
    message = reason(text)
    assert "nested too deeply" in message and "at column" in message


def test_over_long_input_rejected_with_column():
    message = reason("1+" * 6000 + "1")
    assert "too long" in message and "at column 10001" in message

