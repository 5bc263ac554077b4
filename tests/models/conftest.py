"""Fixtures for the model tests: a private anim cache, the tiny model, offline hub, a prompt parser."""

from __future__ import annotations

import re

import pytest
import torch


@pytest.fixture(autouse=True)
def _offline_hub(monkeypatch):
    """No test here may reach the network: the hub is offline (anim reads this at call time)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def anim_cache(tmp_path_factory):
    """A private anim cache folder (tiny model, generated configs) for this test session."""
    return tmp_path_factory.mktemp("anim-cache")


@pytest.fixture(scope="session")
def tiny_dir(anim_cache):
    from anim.models import tiny_model_dir

    return tiny_model_dir(anim_cache)


@pytest.fixture(scope="session")
def tiny_models(anim_cache):
    """Shared tiny SDModels on CPU; tests must not modify it (LoRA tests load their own)."""
    from anim.models import load_models

    return load_models("tiny", device="cpu", cache_dir=anim_cache)


def _matching(text: str, start: int) -> int:
    """Index of the bracket closing the one at `start`, or -1."""
    pairs = {"(": ")", "[": "]"}
    depth, i = 0, start
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] in pairs:
            depth += 1
        elif text[i] in ")]":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def _parse(text: str, weight: float) -> list[tuple[str, float]]:
    """Recursive A1111 attention parse of text without BREAK."""
    out, buf, i = [], "", 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            buf, i = buf + text[i + 1], i + 2
            continue
        end = _matching(text, i) if char in "([" else -1
        if end == -1:
            buf, i = buf + char, i + 1
            continue
        if buf:
            out.append((buf, weight))
            buf = ""
        inner = text[i + 1:end]
        explicit = re.fullmatch(r"(.*):\s*([+-]?\d*\.?\d+)\s*", inner, re.S) if char == "(" else None
        if explicit:
            out += _parse(explicit[1], weight * float(explicit[2]))
        else:
            out += _parse(inner, weight * (1.1 if char == "(" else 1 / 1.1))
        i = end + 1
    if buf:
        out.append((buf, weight))
    return out


def standin_parse_weighted(text: str) -> list[tuple[str, float]]:
    """Minimal stand-in for anim.keyframes.parse_weighted (used only if that is not importable)."""
    out: list[tuple[str, float]] = []
    for n, part in enumerate(re.split(r"\bBREAK\b", text)):
        if n:
            out.append(("BREAK", -1.0))
        out += _parse(part, 1.0)
    return out


@pytest.fixture(scope="session")
def parse_weighted():
    """The real A1111 prompt parser when it exists, else the test stand-in."""
    try:
        from anim.keyframes import parse_weighted as real
    except ImportError:
        return standin_parse_weighted
    return real


@pytest.fixture
def encoder(tiny_models, parse_weighted):
    """A fresh PromptEncoder on the tiny text encoder (own cache per test)."""
    from anim.conditioning import PromptEncoder

    return PromptEncoder.from_models(tiny_models, parser=parse_weighted)


@pytest.fixture(scope="session")
def rand_image():
    """A fixed random image (1,3,64,64) in [0,1]."""
    gen = torch.Generator().manual_seed(7)
    return torch.rand(1, 3, 64, 64, generator=gen)
