"""Safe arithmetic expressions for schedules: own tokenizer, recursive-descent parser, numpy evaluation.

Nothing here goes near Python's eval: text becomes a small tree of closures over numpy ufuncs,
so only the operators, functions and names listed below can ever run. Evaluation is vectorised
over an array of frames ``t`` and done in float64 with numpy errors silenced; callers check the
result for non-finite values (they know which frame and schedule to blame).

Grammar, loosest binding first (chains of one level are kept flat, so long sums never nest deep)::

    a | b            1.0 where either is non-zero
    a & b            1.0 where both are non-zero
    ~ a              1.0 where a is zero (binds looser than comparisons: ~t > 5 is ~(t > 5))
    a < b <= c ...   comparisons (< <= > >= == !=), chained like Python, giving 1.0 / 0.0
    a + b - c        sums
    a * b / c % d    products; % is floor modulo like Python (np.mod)
    -a, +a           unary signs
    a ** b           power, right-associative; -2**2 == -4 and 2**-1 == 0.5
"""

from __future__ import annotations

import functools
import re
import types
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import numpy as np

from anim.errors import ScheduleError

MAX_EXPR_CHARS = 10_000
MAX_PARSE_DEPTH = 200  # active parser calls; two per parenthesis level, so ~100 levels of nesting

VARIABLES = ("t", "max_f", "s")
CONSTANTS = {"pi": np.float64(np.pi), "e": np.float64(np.e)}

_OR, _AND, _NOT, _CMP, _ADD, _MUL = 1, 2, 3, 4, 5, 6
_BINARY_LEVEL = {
    "|": _OR, "&": _AND,
    "<": _CMP, "<=": _CMP, ">": _CMP, ">=": _CMP, "==": _CMP, "!=": _CMP,
    "+": _ADD, "-": _ADD, "*": _MUL, "/": _MUL, "%": _MUL,
}
_ARITH = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide, "%": np.mod}
_COMPARE = {
    "<": np.less, "<=": np.less_equal, ">": np.greater,
    ">=": np.greater_equal, "==": np.equal, "!=": np.not_equal,
}

_TOKEN_RE = re.compile(
    r"(?P<ws>\s+)"
    r"|(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>\*\*|<=|>=|==|!=|[-+*/%<>&|~(),])"
)


class ExprError(ScheduleError):
    """A problem in one expression's text: ``reason`` names the token, ``column`` is 1-based."""

    def __init__(self, reason: str, column: int):
        super().__init__(f"{reason} at column {column}")
        self.reason = reason
        self.column = column


def _clamp(x, lo, hi):
    """clamp(x, lo, hi): x limited to [lo, hi] (hi wins if lo > hi)."""
    return np.minimum(np.maximum(x, lo), hi)


def _where(cond, a, b):
    """where(cond, a, b): a where cond is non-zero, else b (only the chosen branch reaches the result)."""
    return np.where(np.not_equal(cond, 0), a, b)


def _fold(ufunc):
    """min/max over two or more arguments, element-wise."""
    return lambda *args: functools.reduce(ufunc, args)


_ONE_ARG = {
    "sin": np.sin, "cos": np.cos, "tan": np.tan,
    "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan,
    "arcsin": np.arcsin, "arccos": np.arccos, "arctan": np.arctan,
    "sinh": np.sinh, "cosh": np.cosh, "tanh": np.tanh,
    "asinh": np.arcsinh, "acosh": np.arccosh, "atanh": np.arctanh,
    "arcsinh": np.arcsinh, "arccosh": np.arccosh, "arctanh": np.arctanh,
    "exp": np.exp, "expm1": np.expm1, "log": np.log, "log10": np.log10, "log1p": np.log1p,
    "sqrt": np.sqrt, "abs": np.abs, "floor": np.floor, "ceil": np.ceil, "round": np.round,
}
# name -> (min args, max args or None for "any number", implementation)
FUNCTIONS: dict[str, tuple[int, int | None, Callable]] = {
    **{name: (1, 1, fn) for name, fn in _ONE_ARG.items()},
    "atan2": (2, 2, np.arctan2), "arctan2": (2, 2, np.arctan2),
    "min": (2, None, _fold(np.minimum)), "max": (2, None, _fold(np.maximum)),
    "clamp": (3, 3, _clamp), "where": (3, 3, _where),
}


class _Token(NamedTuple):
    kind: str  # num | name | op | end
    text: str
    column: int  # 1-based


def _arity_text(low: int, high: int | None) -> str:
    """Human wording of a function's argument count, e.g. '1 argument' or 'at least 2 arguments'."""
    if high is None:
        return f"at least {low} arguments"
    return f"{low} argument" + ("" if low == 1 else "s")


class _Parser:
    """Recursive descent with an explicit depth counter; tokens are read lazily so the first problem
    in reading order is the one reported."""

    def __init__(self, text: str):
        self.text = text
        self.pos = 0
        self.depth = 0
        self.names: dict[str, int] = {}
        self._next: _Token | None = None

    # -- tokens ---------------------------------------------------------------------------------
    def _scan(self) -> _Token:
        """Read the token starting at self.pos (skipping blanks) and move past it."""
        text = self.text
        match = _TOKEN_RE.match(text, self.pos)
        if match and match.lastgroup == "ws":
            self.pos = match.end()
            match = _TOKEN_RE.match(text, self.pos)
        column = self.pos + 1
        if self.pos >= len(text):
            return _Token("end", "", column)
        if self.pos >= MAX_EXPR_CHARS or (match is not None and match.end() > MAX_EXPR_CHARS):
            raise ExprError(f"expression too long ({len(text)} characters, limit {MAX_EXPR_CHARS}) "
                            f"at {text[self.pos:self.pos + 10]!r}", column)
        if match is None:
            raise ExprError(f"unexpected character {text[self.pos]!r}", column)
        self.pos = match.end()
        kind = match.lastgroup
        if kind == "num" and self.pos < len(text) and (text[self.pos].isalnum() or text[self.pos] in "._"):
            bad = re.match(r"[\w.]*", text[self.pos:]).group(0)
            raise ExprError(f"malformed number {match.group(0) + bad!r}", column)
        return _Token(kind, match.group(0), column)

    def peek(self) -> _Token:
        """The next token, scanned only now so errors come in reading order."""
        if self._next is None:
            self._next = self._scan()
        return self._next

    def advance(self) -> _Token:
        token = self.peek()
        if token.kind != "end":
            self._next = None
        return token

    def _enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_PARSE_DEPTH:
            token = self.peek()
            raise ExprError(f"expression nested too deeply (more than {MAX_PARSE_DEPTH // 2} levels) near {token.text!r}",
                            token.column)

    # -- grammar --------------------------------------------------------------------------------
    def parse(self) -> tuple:
        if not self.text.strip():
            raise ExprError("empty expression", 1)
        node = self.binary(_OR)
        token = self.peek()
        if token.kind != "end":
            raise ExprError(f"unexpected {token.text!r}", token.column)
        return node

    def binary(self, min_level: int) -> tuple:
        """Operators at min_level or looser-binding-than-unary, as flat chains per level."""
        self._enter()
        try:
            token = self.peek()
            if token.text == "~" and token.kind == "op" and min_level <= _NOT:
                self.advance()
                left = ("not", self.binary(_NOT))
            else:
                left = self.unary()
            while True:
                token = self.peek()
                level = _BINARY_LEVEL.get(token.text) if token.kind == "op" else None
                if level is None or level < min_level:
                    return left
                operands, ops = [left], []
                while token.kind == "op" and _BINARY_LEVEL.get(token.text) == level:
                    ops.append(self.advance().text)
                    operands.append(self.binary(level + 1))
                    token = self.peek()
                left = ("chain", level, tuple(operands), tuple(ops))
        finally:
            self.depth -= 1

    def unary(self) -> tuple:
        """Signs, then an atom with an optional right-associative ** whose exponent may be signed."""
        self._enter()
        try:
            token = self.peek()
            if token.kind == "op" and token.text in ("+", "-"):
                self.advance()
                operand = self.unary()
                return operand if token.text == "+" else ("neg", operand)
            if token.kind == "op" and token.text == "~":
                raise ExprError("'~' needs parentheses here", token.column)
            base = self.atom()
            if self.peek().text == "**":
                self.advance()
                return ("pow", base, self.unary())
            return base
        finally:
            self.depth -= 1

    def atom(self) -> tuple:
        token = self.advance()
        if token.kind == "num":
            return ("num", np.float64(float(token.text)))
        if token.kind == "name":
            return self.name(token)
        if token.text == "(":
            if self.peek().text == ")":
                raise ExprError("empty parentheses '()'", token.column)
            node = self.binary(_OR)
            self.expect_close(token)
            return node
        if token.kind == "end":
            raise ExprError("expression ends where a value is expected", token.column)
        raise ExprError(f"unexpected {token.text!r}", token.column)

    def expect_close(self, opener: _Token) -> None:
        token = self.peek()
        if token.text == ")":
            self.advance()
        elif token.kind == "end":
            raise ExprError("unclosed '('", opener.column)
        else:
            raise ExprError(f"unexpected {token.text!r}", token.column)

    def name(self, token: _Token) -> tuple:
        name = token.text
        if name not in FUNCTIONS and name not in VARIABLES and name not in CONSTANTS:
            raise ExprError(f"unknown name {name!r}", token.column)
        calls = self.peek().text == "("
        if name in FUNCTIONS:
            if not calls:
                raise ExprError(f"function {name!r} needs arguments, like {name}(...)", token.column)
            return self.call(token)
        if name in VARIABLES or name in CONSTANTS:
            if calls:
                raise ExprError(f"{name!r} is not a function", token.column)
            if name in CONSTANTS:
                return ("num", CONSTANTS[name])
            self.names.setdefault(name, token.column)
            return ("var", name)

    def call(self, name_token: _Token) -> tuple:
        opener = self.advance()
        args = []
        if self.peek().text != ")":
            args.append(self.binary(_OR))
            while self.peek().text == ",":
                self.advance()
                args.append(self.binary(_OR))
        self.expect_close(opener)
        low, high, _ = FUNCTIONS[name_token.text]
        if len(args) < low or (high is not None and len(args) > high):
            raise ExprError(f"{name_token.text}() takes {_arity_text(low, high)}, got {len(args)}",
                            name_token.column)
        return ("call", name_token.text, tuple(args))


# -- evaluation: the tree becomes nested closures taking an environment dict ----------------------
Env = dict


def _build(node: tuple) -> Callable[[Env], np.ndarray]:
    """Turn a parsed node into a function of the environment {'t', 'max_f', 's'}."""
    kind = node[0]
    if kind == "num":
        value = node[1]
        return lambda env: value
    if kind == "var":
        name = node[1]
        return lambda env: env[name]
    if kind == "neg":
        inner = _build(node[1])
        return lambda env: np.negative(inner(env))
    if kind == "not":
        inner = _build(node[1])
        return lambda env: np.where(np.equal(inner(env), 0), 1.0, 0.0)
    if kind == "pow":
        base, exponent = _build(node[1]), _build(node[2])
        return lambda env: np.power(base(env), exponent(env))
    if kind == "call":
        fn = FUNCTIONS[node[1]][2]
        args = tuple(_build(arg) for arg in node[2])
        return lambda env: fn(*(arg(env) for arg in args))
    return _build_chain(node[1], tuple(_build(x) for x in node[2]), node[3])


def _build_chain(level: int, parts: tuple, ops: tuple) -> Callable[[Env], np.ndarray]:
    """A flat chain of one precedence level: arithmetic folds left, comparisons chain like Python."""
    if level == _OR:
        return lambda env: np.where(functools.reduce(np.logical_or, [np.not_equal(p(env), 0) for p in parts]), 1.0, 0.0)
    if level == _AND:
        return lambda env: np.where(functools.reduce(np.logical_and, [np.not_equal(p(env), 0) for p in parts]), 1.0, 0.0)
    if level == _CMP:
        def compare(env):
            values = [p(env) for p in parts]
            truth = [_COMPARE[op](a, b) for op, a, b in zip(ops, values, values[1:])]
            return np.where(functools.reduce(np.logical_and, truth), 1.0, 0.0)
        return compare
    funcs = tuple(_ARITH[op] for op in ops)

    def arithmetic(env):
        acc = parts[0](env)
        for fn, part in zip(funcs, parts[1:]):
            acc = fn(acc, part(env))
        return acc
    return arithmetic


@dataclass(frozen=True)
class Expr:
    """A parsed expression: ``text`` as given, ``names`` maps each variable used to its first column."""

    text: str
    names: types.MappingProxyType = field(compare=False)
    _fn: Callable = field(repr=False, compare=False)

    def evaluate(self, t, max_f: float, s: float = 0.0) -> np.ndarray:
        """Values at frames ``t`` (any shape), float64, same shape as t; may hold inf/nan."""
        t = np.asarray(t, dtype=np.float64)
        env = {"t": t, "max_f": np.float64(max_f), "s": np.float64(s)}
        with np.errstate(all="ignore"):
            result = self._fn(env)
        return np.array(np.broadcast_to(result, t.shape), dtype=np.float64)

    def value_at(self, t: float, max_f: float, s: float = 0.0) -> float:
        """The value at a single frame, as a Python float."""
        return float(self.evaluate(np.array([t], dtype=np.float64), max_f, s)[0])

    def check_names(self, allowed: tuple[str, ...], where: str) -> None:
        """Raise ExprError on the first variable outside ``allowed`` (e.g. 't' in a frame key)."""
        for name, column in sorted(self.names.items(), key=lambda item: item[1]):
            if name not in allowed:
                raise ExprError(f"{name!r} cannot be used in {where} (only {', '.join(allowed)})", column)


@functools.lru_cache(maxsize=4096)
def compile_expr(text: str) -> Expr:
    """Parse ``text`` into an Expr, raising ExprError (a ScheduleError) naming token and column."""
    parser = _Parser(text)
    tree = parser.parse()
    return Expr(text, types.MappingProxyType(dict(parser.names)), _build(tree))
