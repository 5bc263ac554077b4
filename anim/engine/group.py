"""Cross-job lockstep: K compatible runs rendered together, their diffusion batched into one UNet call per step.

Each run keeps its own engine loop (anim.engine.loop.render_run) in its own thread: its camera, coherence,
control maps, writer and resume state are untouched. Only step 5 (img2img) goes through a shared
`Rounds` object: a round starts when every member still rendering waits for diffusion, and it takes
the requests of the lowest frame index, in member order. So which frames share a UNet batch is a pure
function of the members, their order and their frame schedules, never of thread timing.

Batching changes float summation order, so a frame rendered in a group differs in its last bits from
the same frame rendered alone. Exact resume therefore needs the same rounds again: the group is recorded
in each run folder (lockstep.json) and a resumed group restarts every member at the earliest frame any
member is missing (members that are further along render those frames again, to the same bytes).
"""
from __future__ import annotations

import json
import math
import threading
from pathlib import Path

from anim.errors import ModelError
from anim.keyframes.networks import mentions_networks
from anim.media.files import atomic_write_text
from anim.media.png import is_complete_png
from anim.preset.schema import is_on
from anim.runfolder import GROUP, Run, is_finished


class GroupUnsupported(ModelError):
    """The model cannot be rendered in lockstep (SDXL, guidance-embedding UNets): render the runs alone."""


def lockstep_key(preset) -> tuple | None:
    """What runs must share to be rendered in one group (same loaded models, same size); None: never grouped.

    LoRA weights are set on the shared UNet per frame, so runs with LoRAs (`loras:` or <lora:NAME> tags in the
    prompts) render alone; so do runs with cross-frame attention or latent fusion (they work inside each frame's
    UNet calls and scheduler steps, which a group shares), AnimateDiff runs (their windows are their own batches) and runs with A1111's noise
    settings (has_noise_settings). Runs with a checkpoint_schedule render alone (a group shares one loaded model);
    a sampler_schedule groups (every lockstep item builds its own scheduler from its frame's sampler).
    """
    if preset.loras or has_lora_tags(preset) or has_cross_frame(preset) or is_on(preset.coherence.fusion.weight) \
            or preset.engine == "animatediff" or has_noise_settings(preset) \
            or preset.checkpoint_schedule is not None or preset.mask is not None:  # a group shares one model;
        # a sampler_schedule is per item; masks act inside each frame's scheduler steps
        return None
    return (preset.model, preset.vae, preset.allow_pickle, preset.device, preset.dtype,
            preset.performance.model_dump_json(), int(preset.width), int(preset.height))


def has_noise_settings(preset) -> bool:
    """Whether a run asks for A1111's variation seeds, noise multiplier, DDIM eta or blank-frame rerolls: a
    group's shared noise and steps do not carry them, so such runs render alone."""
    return (is_on(preset.subseed_strength) or preset.noise_multiplier != 1.0 or is_on(preset.ddim_eta)
            or preset.ancestral_eta != 1.0 or preset.reroll_blank_frames != "ignore")


def has_lora_tags(preset) -> bool:
    """Whether a prompt (or the global positive prompt) tags a LoRA: <lora:NAME:WEIGHT> or <lyco:...>."""
    return mentions_networks([*(str(text) for text in preset.prompts.values()), preset.positive_prompt])


def has_cross_frame(preset) -> bool:
    """Whether cross-frame attention is on at some frame (a weight schedule that is not plain 0)."""
    return is_on(preset.coherence.cross_frame.weight)


def first_missing(run: Run) -> int:
    """The first frame of `run` that is not a whole PNG on disk (max_frames when all are)."""
    for frame in range(run.preset.max_frames):
        if not is_complete_png(run.frame_path(frame)):
            return frame
    return run.preset.max_frames


def restart_frame(runs: list[Run]) -> int | None:
    """Where a (resumed) group starts: the earliest missing frame, moved back to a key frame of every
    member (a multiple of each cadence); None when every member has all its frames."""
    missing = [first_missing(run) for run in runs]
    unfinished = [m for m, run in zip(missing, runs) if m < run.preset.max_frames]
    if not unfinished:
        return None
    step = math.lcm(*(max(1, int(run.preset.cadence)) for run in runs))
    return (min(unfinished) // step) * step


def read_group(run_dir: Path) -> list[str] | None:
    """The member names (run folder names, in order) of the group a run was rendered in, if any."""
    path = Path(run_dir) / GROUP
    if not path.is_file():
        return None
    try:
        members = json.loads(path.read_text()).get("members")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None
    return [str(m) for m in members] if isinstance(members, list) else None


def write_group(runs: list[Run]) -> None:
    """Record the group (member folder names in order) in every member's run folder, before any frame."""
    members = [run.dir.name for run in runs]
    for slot, run in enumerate(runs):
        run.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run.dir / GROUP, json.dumps({"version": 1, "members": members, "slot": slot}, indent=1))


class Rounds:
    """Collects the diffusion requests of the member threads and runs them in deterministic rounds.

    `port(slot)` is the member's diffuse(frame, **kwargs); `leave(slot)` is called when its loop ends.
    `log` records (frame, member slots) per round, for tests and the run log.
    """

    def __init__(self, diffuser, slots: int) -> None:
        self.diffuser = diffuser
        self._cond = threading.Condition()
        self._active = set(range(slots))
        self._pending: dict[int, tuple[int, dict]] = {}
        self._results: dict[int, object] = {}
        self.log: list[tuple[int, tuple[int, ...]]] = []

    def port(self, slot: int):
        """The diffuse(frame, **kwargs) callable of member `slot`."""
        return lambda frame, **kwargs: self.submit(slot, int(frame), kwargs)

    def submit(self, slot: int, frame: int, kwargs: dict):
        """Wait for the round that holds this request; its image (or its error, raised here)."""
        with self._cond:
            self._pending[slot] = (frame, kwargs)
            self._cond.notify_all()
            while slot not in self._results:
                if self._ready():
                    self._run_round()
                else:
                    self._cond.wait()
            outcome = self._results.pop(slot)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def leave(self, slot: int) -> None:
        """Member `slot` renders no more (finished, stopped or failed): rounds stop waiting for it."""
        with self._cond:
            self._active.discard(slot)
            self._cond.notify_all()

    def _ready(self) -> bool:
        """Every member still rendering is waiting, so no request with a lower frame can come."""
        return bool(self._pending) and all(slot in self._pending for slot in self._active)

    def _run_round(self) -> None:
        """Diffuse the pending requests of the lowest frame together (called with the lock held: every
        active member is waiting on it anyway)."""
        from anim.diffusion.lockstep import Item

        frame = min(f for f, _ in self._pending.values())
        slots = sorted(s for s, (f, _) in self._pending.items() if f == frame)
        requests = [self._pending.pop(s)[1] for s in slots]
        self.log.append((frame, tuple(slots)))
        try:
            images = self.diffuser([Item(**kwargs) for kwargs in requests])
        except Exception as exc:  # noqa: BLE001 - each member of the round gets the error
            images = [exc] * len(slots)
        self._results.update(zip(slots, images))
        self._cond.notify_all()


def render_group(runs: list[Run], *, cache=None, low_memory: bool = False, should_stop=None,
                 render=None) -> list[BaseException | None]:
    """Render `runs` in lockstep (they must share lockstep_key); one error or None per run, in order.

    `should_stop` is one callable per run (or None); `render` replaces anim.engine.loop.render_run in tests.
    """
    from anim.diffusion.lockstep import LockstepDiffuser
    from anim.engine.cache import ModelCache
    from anim.engine.loop import render_run

    keys = {lockstep_key(run.preset) for run in runs}
    if None in keys or len(keys) != 1:
        raise ValueError("render_group: the runs do not share models and size (anim.engine.group.lockstep_key)")
    render = render or render_run
    stops = list(should_stop) if should_stop is not None else [None] * len(runs)
    cache = cache or ModelCache()
    first = runs[0].preset
    models, encoder, _ = cache.get(first, low_memory)
    try:
        diffuser = LockstepDiffuser(models, encoder=encoder)
    except ModelError as exc:
        raise GroupUnsupported(f"lockstep group not possible: {exc}") from None
    rounds = Rounds(diffuser, len(runs))
    write_group(runs)
    start = restart_frame(runs)
    errors: list[BaseException | None] = [None] * len(runs)

    def member(slot: int) -> None:
        run = runs[slot]
        try:
            if start is None or run.preset.max_frames <= start:  # nothing to diffuse: the video at most
                if is_finished(run):
                    return
                render(run, quiet=True, cache=cache, should_stop=stops[slot], low_memory=low_memory)
            else:
                render(run, quiet=True, cache=cache, should_stop=stops[slot], low_memory=low_memory,
                       redo_from=start, diffuse=rounds.port(slot))
        except BaseException as exc:  # noqa: BLE001 - reported per member
            errors[slot] = exc
        finally:
            rounds.leave(slot)

    threads = [threading.Thread(target=member, args=(slot,), name=f"anim-group-{slot}") for slot in range(len(runs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors

