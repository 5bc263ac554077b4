"""state.json: what the next frame is and what it depends on, written after each durable PNG (step 8)."""
from __future__ import annotations

import json

import torch

from anim.errors import PresetError
from anim.media.files import atomic_write_text
from anim.preset import frames_hash
from anim.runfolder import STATE, Run


class RunState:
    """state.json: what the next frame is and what it depends on, written after each durable PNG."""

    def __init__(self, run: Run, mode: str) -> None:
        self.run, self.mode = run, mode
        self.hash = frames_hash(run.preset)
        self.reference_path: str | None = None

    def load(self) -> int | None:
        """Refuse to mix preview and render frames; pick up the recorded colour reference. Returns the torch
        CPU thread count the frames on disk were made with (CPU results depend on it), or None."""
        state = self.run.read_state()
        if state is None:
            return None
        if state.get("mode", "render") != self.mode:
            raise PresetError(f"{self.run.dir}: holds a {state.get('mode')} run; use another --out for --{self.mode}")
        self.reference_path = state.get("color_reference")
        threads = state.get("torch_threads")
        return int(threads) if threads else None

    def written(self, index: int) -> None:
        """Called by the writer thread once frame `index` is on disk."""
        state = {
            "version": 1, "mode": self.mode, "frames_hash": self.hash, "last_frame": index,
            "next_frame": index + 1, "max_frames": self.run.preset.max_frames,
            "color_reference": self.reference_path,
            "rng": {"scheme": "per-frame", "note": "every draw is seeded by the frame's seed (schedule.csv)"},
            "torch_threads": torch.get_num_threads(),
        }
        atomic_write_text(self.run.dir / STATE, json.dumps(state, indent=1))
