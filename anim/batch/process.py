"""This worker process's own state: its model cache, torch's default thread count and its terminate flag.

One WorkerProcess is made by the process that renders (a local worker's entry, a Ray task's process) and
handed down to each job; nothing lives in module globals.
"""
from __future__ import annotations

import gc
import sys
import threading


class WorkerProcess:
    """The models kept between jobs, torch's thread count before any job changed it, and SIGTERM seen."""

    def __init__(self) -> None:
        self.terminated = threading.Event()  # SIGTERM sent to this worker directly, or its parent died
        self._cache = None
        self._default_threads: int | None = None

    def cache(self, threads: int | None):
        """This process's ModelCache, with torch's CPU threads set for the next render (a resumed job before
        may have run with its recorded count)."""
        import torch

        from anim.engine.cache import ModelCache

        if self._default_threads is None:
            self._default_threads = torch.get_num_threads()
        torch.set_num_threads(threads or self._default_threads)
        if self._cache is None:
            self._cache = ModelCache()
        return self._cache

    def reset_cache(self) -> None:
        """Drop this process's models (before a low-memory retry) and give the memory back."""
        self._cache = None
        gc.collect()
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()
