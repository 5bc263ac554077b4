"""ControlNet units: control-frame sources, annotators (controlnet-aux, offline pose), map cache."""
from anim.control.annotators import Annotator, PoseOffline, get_annotator
from anim.control.cache import MapCache, cache_key
from anim.control.sources import open_source
from anim.control.units import ControlUnits
from anim.media.frames import FrameSource, resize_frame
from anim.media.video import source_audio

__all__ = ["Annotator", "ControlUnits", "FrameSource", "MapCache", "PoseOffline", "cache_key", "get_annotator",
           "open_source", "resize_frame", "source_audio"]
