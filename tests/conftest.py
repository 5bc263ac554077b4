"""Session-wide test environment: never touch the network, keep anim's model cache private."""
from __future__ import annotations

import os
import tempfile


def pytest_configure(config):
    """Set before any test (and inherited by subprocesses that tests start)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("ANIM_CACHE", tempfile.mkdtemp(prefix="anim-test-cache-"))
    os.environ.setdefault("MPLBACKEND", "Agg")
