"""Keyframes: safe expressions, Deforum-style schedules, prompts, seeds, resolved per frame.

Pure numpy; resolved once before any model loads so ``--dry-run`` shows exactly what will run.
"""

from anim.errors import ScheduleError
from anim.keyframes.expr import Expr, compile_expr
from anim.keyframes.keys import resolve_key
from anim.keyframes.prompts import PromptFrame, resolve_prompts
from anim.keyframes.schedule import Schedule, parse_schedule
from anim.keyframes.seeds import resolve_seeds
from anim.keyframes.table import FrameTable
from anim.keyframes.texts import TextSchedule, parse_text_schedule
from anim.keyframes.weights import parse_weighted

__all__ = [
    "ScheduleError", "Expr", "compile_expr", "resolve_key", "PromptFrame", "resolve_prompts",
    "Schedule", "parse_schedule", "resolve_seeds", "FrameTable", "parse_weighted", "TextSchedule",
    "parse_text_schedule",
]
