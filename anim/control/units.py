"""ControlNet units for the frame loop: each unit's model, frame source, annotator and map cache.

Built once per render (every ControlNet loaded once, shared between units naming the same model);
`for_frame` turns one frame's row into the ControlInput list the Diffuser takes. A unit whose
weight is 0 on a frame (or whose guidance window is empty) is left out, so its network never runs.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from anim.control.annotators import Annotator, get_annotator
from anim.control.cache import MapCache, cache_key
from anim.control.sources import PoseJsonSource, open_source
from anim.control.unit_settings import threshold_options
from anim.diffusion.diffuse import ControlInput
from anim.errors import AnimError, InputError
from anim.media.frames import FrameSource, resize_frame
from anim.media.tensors import from_uint8_hwc, to_uint8_hwc
from anim.models import load_controlnet as default_load_controlnet
from anim.preset.schedules import control_column

LOOPBACK = "loopback"


@dataclass
class Unit:
    """One ControlNet unit, ready: `source`/`cache` are None for loopback units; control_mode is A1111's."""

    index: int
    model: object
    annotator: Annotator
    source: FrameSource | None
    cache: MapCache | None
    control_mode: str = "balanced"


class ControlUnits:
    """All ControlNet units of a render; counters `annotate_calls`, `annotate_seconds`, `cache_hits`."""

    def __init__(self, units: list, *, run_dir: Path, width: int, height: int, device, dtype,
                 allow_pickle: bool = False, load_controlnet: Callable = default_load_controlnet,
                 nth: int = 1, start_s: float = 0.0, end_s: float | None = None) -> None:
        self.width, self.height = int(width), int(height)
        self.device = torch.device(device)
        self.annotate_calls, self.annotate_seconds, self.cache_hits, self.source_seconds = 0, 0.0, 0, 0.0
        nets: dict[str, object] = {}
        self.units: list[Unit] = []
        for index, spec in enumerate(units):
            net = nets.get(spec.model)
            if net is None:
                net = nets[spec.model] = _labelled(index, lambda: load_controlnet(
                    spec.model, device=self.device, dtype=dtype, allow_pickle=allow_pickle))
            annotator = _labelled(index, lambda: _annotator(spec, self.device, allow_pickle))
            self.units.append(self._unit(index, spec, net, annotator, Path(run_dir), (nth, start_s, end_s)))

    def _unit(self, index: int, spec, net, annotator: Annotator, run_dir: Path, span: tuple) -> Unit:
        """Open the unit's source and map cache (none for loopback)."""
        if str(spec.input).strip().lower() == LOOPBACK:
            if annotator.name == "pose_json":
                raise InputError(f"controlnet.{index}: annotator pose_json needs `input:` a folder of OpenPose "
                                 "JSON files, not loopback")
            return Unit(index, net, annotator, None, None, _mode(spec))
        nth, start_s, end_s = span
        source = open_source(spec.input, width=self.width, height=self.height, resize=spec.resize, nth=nth,
                             start_s=start_s, end_s=end_s, what=f"controlnet.{index}.input")
        _check_pairing(index, source, annotator)
        key = cache_key(source=source.identity(), annotator=annotator.settings(), width=self.width,
                        height=self.height, resize=spec.resize)
        return Unit(index, net, annotator, source, MapCache(run_dir, index, key), _mode(spec))

    # ------------------------------------------------------------ per frame

    def for_frame(self, index: int, row: dict, loopback: torch.Tensor | None) -> list[ControlInput]:
        """ControlInputs for frame `index` with the row's cn{i}_weight / _guidance_start / _guidance_end.

        Units at weight 0, with an empty guidance window, or (loopback units) without a previous
        frame yet are left out.
        """
        controls = []
        for unit in self.units:
            weight, start, end = unit_schedule(row, unit.index)
            if weight == 0.0 or end <= start:
                continue
            map_u8 = self.map_for(unit, index, loopback)
            if map_u8 is None:
                continue
            image = from_uint8_hwc(map_u8, self.device)
            controls.append(ControlInput(unit.model, image, weight=weight, guidance_start=start, guidance_end=end,
                                         control_mode=unit.control_mode))
        return controls

    def map_for(self, unit: Unit, index: int, loopback: torch.Tensor | None = None) -> np.ndarray | None:
        """A unit's (H, W, 3) uint8 control map for frame `index`: cached, or annotated now."""
        if unit.source is None:
            if loopback is None:
                return None
            frame = to_uint8_hwc(loopback)
            if frame.shape[:2] != (self.height, self.width):
                frame = resize_frame(frame, self.width, self.height, "stretch")
            return self._annotate(unit, frame)
        source_index = min(max(int(index), 0), unit.source.n_frames - 1)
        cached = unit.cache.get(source_index)
        if cached is not None:
            self.cache_hits += 1
            return cached
        started = time.perf_counter()
        frame = unit.source.frame(source_index)
        self.source_seconds += time.perf_counter() - started
        map_u8 = self._annotate(unit, frame)
        unit.cache.put(source_index, map_u8)
        return map_u8

    def _annotate(self, unit: Unit, frame: np.ndarray) -> np.ndarray:
        """Run the unit's annotator, counting calls and seconds."""
        started = time.perf_counter()
        map_u8 = _labelled(unit.index, lambda: unit.annotator(frame))
        self.annotate_seconds += time.perf_counter() - started
        self.annotate_calls += 1
        return map_u8

    def prepare(self, frames: Iterable[int]) -> int:
        """Annotate ahead: make (or find) the cached maps of these frames for every non-loopback unit.

        Returns how many maps were annotated now.
        """
        before = self.annotate_calls
        for unit in self.units:
            if unit.source is None:
                continue
            wanted = sorted({min(max(int(i), 0), unit.source.n_frames - 1) for i in frames})
            for index in wanted:
                if not unit.cache.path(index).is_file():
                    self.map_for(unit, index)
        return self.annotate_calls - before

    # ------------------------------------------------------------ info

    @property
    def uses_loopback(self) -> bool:
        """True when some unit annotates the warped previous output (the engine must pass it)."""
        return any(unit.source is None for unit in self.units)

    def note(self) -> str:
        """One line for the log: maps annotated, seconds, cache hits."""
        return (f"control: {len(self.units)} unit(s), {self.annotate_calls} map(s) annotated in "
                f"{self.annotate_seconds:.1f} s, {self.cache_hits} from cache, decode {self.source_seconds:.1f} s")

    def close(self) -> None:
        """Stop video decoders and free annotator resources."""
        for unit in self.units:
            if unit.source is not None:
                unit.source.close()
            if hasattr(unit.annotator, "close"):
                unit.annotator.close()


def unit_schedule(row: dict, index: int) -> tuple[float, float, float]:
    """(weight, guidance_start, guidance_end) of unit `index` from a frame row; the window clamped to [0, 1]."""
    weight = float(row[control_column(index, "weight")])
    start = min(max(float(row[control_column(index, "guidance_start")]), 0.0), 1.0)
    end = min(max(float(row[control_column(index, "guidance_end")]), 0.0), 1.0)
    return weight, start, end


def _annotator(spec, device, allow_pickle: bool) -> Annotator:
    """The unit's annotator, with A1111's threshold_a/b, processor_res and pixel_perfect applied."""
    name = str(spec.annotator or "none").strip().lower()
    options = threshold_options(name, getattr(spec, "annotator_options", None), getattr(spec, "threshold_a", None),
                                getattr(spec, "threshold_b", None))
    return get_annotator(spec.annotator, model=spec.annotator_model, device=device, allow_pickle=allow_pickle,
                         options=options, processor_res=getattr(spec, "processor_res", None),
                         pixel_perfect=bool(getattr(spec, "pixel_perfect", False)))


def _mode(spec) -> str:
    """The unit's control mode (balanced | prompt | controlnet)."""
    return str(getattr(spec, "control_mode", "balanced"))


def _check_pairing(index: int, source: FrameSource, annotator: Annotator) -> None:
    """pose_json goes with a folder of OpenPose JSON files, and such a folder only with pose_json or none."""
    is_json = isinstance(source, PoseJsonSource)
    if annotator.name == "pose_json" and not is_json:
        raise InputError(f"controlnet.{index}: annotator pose_json needs `input:` a folder of OpenPose JSON "
                         f"files; {source.path} is a {source.kind}")
    if is_json and annotator.name not in ("pose_json", "none"):
        raise InputError(f"controlnet.{index}: {source.path} holds OpenPose JSON files; use `annotator: pose_json`")


def _labelled(index: int, build: Callable):
    """Run `build`; an anim error gets the unit's place (controlnet.N) in front of its message."""
    try:
        return build()
    except AnimError as exc:
        message = str(exc)
        if message.startswith(f"controlnet.{index}"):
            raise
        raise type(exc)(f"controlnet.{index}: {message}") from None
