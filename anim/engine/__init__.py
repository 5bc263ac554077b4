"""The frame loop (steps 1-8 of DESIGN.md), its makers and state, the model cache, lockstep groups."""
from anim.engine.loop import Rendered, Stopped, render_run

__all__ = ["Rendered", "Stopped", "render_run"]
