"""Deforum's composable mask expressions (mask_schedule / noise_mask_schedule), parsed without eval.

Grammar (Deforum's composable_masks.py, read as it intends): `{name}` a named mask (everywhere, init_mask,
video_mask, human_mask or a preset `mask.named` entry), `[path]` a mask file, parentheses, and the operators
`!` (not, prefix), then `&` (and), `|` (or), `^` (xor), `\\` (difference: a and not b), in that order of binding
(Deforum reduces `&` first, then `|`, `^`, `\\`), each left-associative. Deforum's word masks (`<cat>`, CLIPSeg)
are refused. Parsing is pure; `evaluate` combines boolean numpy arrays looked up by name or path.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

BUILTIN = ("everywhere", "init_mask", "video_mask", "human_mask")
BINARY = ("\\", "^", "|", "&")  # loosest first: the parser's precedence levels
MAX_EXPR_CHARS = 10_000


class MaskExprError(ValueError):
    """A bad mask expression; `column` is 1-based in the text given to the parser."""

    def __init__(self, reason: str, column: int) -> None:
        super().__init__(reason)
        self.column = column


@dataclass(frozen=True)
class Ref:
    """A leaf: a named mask (`{name}`, kind 'name') or a file (`[path]`, kind 'file'), with its column."""

    kind: str
    value: str
    column: int


@dataclass(frozen=True)
class Not:
    """`!operand`."""

    operand: object


@dataclass(frozen=True)
class Op:
    """`left OP right` for OP in & | ^ \\."""

    op: str
    left: object
    right: object


def _tokens(text: str) -> list[tuple[str, str, int]]:
    """(kind, value, column) tokens: 'name', 'file', 'op' (! & | ^ \\), '(' and ')'; blanks skipped."""
    out, i = [], 0
    while i < len(text):
        char = text[i]
        if char.isspace():
            i += 1
        elif char in "{[":
            close = "}" if char == "{" else "]"
            end = text.find(close, i + 1)
            if end < 0:
                raise MaskExprError(f"'{char}' is not closed by '{close}'", i + 1)
            value = text[i + 1:end].strip()
            if not value:
                raise MaskExprError(f"empty {char}{close}", i + 1)
            out.append(("name" if char == "{" else "file", value, i + 1))
            i = end + 1
        elif char == "<":
            raise MaskExprError("word masks (<...>, Deforum's CLIPSeg) are not supported", i + 1)
        elif char in "!&|^\\()":
            out.append(("op" if char not in "()" else char, char, i + 1))
            i += 1
        else:
            raise MaskExprError(f"unexpected {char!r} (expected {{name}}, [file], ! & | ^ \\ or parentheses)", i + 1)
    return out


class _Parser:
    """Recursive descent over the tokens; one level per binary operator, `!` and parentheses at the bottom."""

    def __init__(self, text: str) -> None:
        self.text, self.tokens, self.at = text, _tokens(text), 0

    def column(self) -> int:
        return self.tokens[self.at][2] if self.at < len(self.tokens) else len(self.text) + 1

    def peek(self, op: str) -> bool:
        return self.at < len(self.tokens) and self.tokens[self.at][:2] == ("op", op)

    def parse(self):
        if not self.tokens:
            raise MaskExprError("empty mask expression (write {everywhere} for the whole frame)", 1)
        tree = self.binary(0)
        if self.at < len(self.tokens):
            kind, value, column = self.tokens[self.at]
            reason = "unmatched ')'" if kind == ")" else f"expected an operator before {value!r}"
            raise MaskExprError(reason, column)
        return tree

    def binary(self, level: int):
        if level == len(BINARY):
            return self.unary()
        op = BINARY[level]
        left = self.binary(level + 1)
        while self.peek(op):
            self.at += 1
            left = Op(op, left, self.binary(level + 1))
        return left

    def unary(self):
        if self.at >= len(self.tokens):
            raise MaskExprError("expected a mask after the operator", self.column())
        kind, value, column = self.tokens[self.at]
        self.at += 1
        if kind == "op" and value == "!":
            return Not(self.unary())
        if kind in ("name", "file"):
            return Ref(kind, value, column)
        if kind == "(":
            inner = self.binary(0)
            if self.at >= len(self.tokens) or self.tokens[self.at][0] != ")":
                raise MaskExprError("'(' is not closed", column)
            self.at += 1
            return inner
        raise MaskExprError(f"expected {{name}}, [file], '!' or '(' but found {value!r}", column)


def parse_mask_expr(text: str, known: Iterable[str] | None = None):
    """The expression tree of `text`; with `known`, every `{name}` must be one of them (MaskExprError naming the
    column otherwise)."""
    if len(text) > MAX_EXPR_CHARS:
        raise MaskExprError(f"mask expression too long ({len(text)} characters, limit {MAX_EXPR_CHARS})", 1)
    tree = _Parser(text).parse()
    if known is not None:
        allowed = tuple(known)
        for ref in refs(tree):
            if ref.kind == "name" and ref.value not in allowed:
                raise MaskExprError(f"unknown mask {{{ref.value}}} (known: {', '.join(allowed)})", ref.column)
    return tree


def refs(tree) -> list[Ref]:
    """Every leaf of the tree, left to right."""
    if isinstance(tree, Ref):
        return [tree]
    if isinstance(tree, Not):
        return refs(tree.operand)
    return refs(tree.left) + refs(tree.right)


def evaluate(tree, lookup: Callable[[Ref], np.ndarray]) -> np.ndarray:
    """The boolean mask of the tree, each leaf's boolean array from `lookup`."""
    if isinstance(tree, Ref):
        return np.asarray(lookup(tree), dtype=bool)
    if isinstance(tree, Not):
        return ~evaluate(tree.operand, lookup)
    a, b = evaluate(tree.left, lookup), evaluate(tree.right, lookup)
    if tree.op == "&":
        return a & b
    if tree.op == "|":
        return a | b
    if tree.op == "^":
        return a ^ b
    return a & ~b


def canonical_checker(known: Iterable[str]) -> Callable[[str], str]:
    """A text schedule `canonical` (anim.keyframes.texts) that checks each keyframe's expression against the
    `known` names and keeps the text as written."""
    allowed = tuple(known)

    def check(text: str) -> str:
        parse_mask_expr(text, allowed)
        return text

    return check
