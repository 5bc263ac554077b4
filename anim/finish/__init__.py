"""Finishing a render: upscale, interpolate and encode every format, each step resumable (anim.finish.run)."""
from anim.finish.job import (
    FINISH_STATE,
    FORMAT_FILES,
    FRAMES_INTERPOLATED,
    FRAMES_UPSCALED,
    FinishJob,
    check_finish_inputs,
    needs_finishing,
)
from anim.finish.run import finish, finish_complete

__all__ = ["FINISH_STATE", "FORMAT_FILES", "FRAMES_INTERPOLATED", "FRAMES_UPSCALED", "FinishJob", "check_finish_inputs",
           "finish", "finish_complete", "needs_finishing"]
