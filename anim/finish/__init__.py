"""Finishing a render: upscale, interpolate and encode every format, each step resumable (anim.finish.run).

Importing this package stays light (no torch, no ffmpeg): the run folder and `--dry-run` read its names.
"""
from pathlib import Path

from anim.finish.job import (
    FINISH_STATE,
    FORMAT_FILES,
    FRAMES_INTERPOLATED,
    FRAMES_UPSCALED,
    FinishJob,
    check_finish_inputs,
    needs_finishing,
)
from anim.finish.state import finish_complete

__all__ = ["FINISH_STATE", "FORMAT_FILES", "FRAMES_INTERPOLATED", "FRAMES_UPSCALED", "FinishJob", "check_finish_inputs",
           "finish", "finish_complete", "needs_finishing"]


def finish(job: FinishJob, **options) -> Path | None:
    """Run the finishing steps of `job` (anim.finish.run.finish, imported on first use)."""
    from anim.finish.run import finish as run_steps

    return run_steps(job, **options)
