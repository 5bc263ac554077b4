"""Annotators (ControlNet preprocessors): an RGB frame in, an 8-bit RGB control map of the same size out.

`get_annotator(name, ...)` builds one. Weighted controlnet-aux annotators load only weights that
are already on this machine (a local folder or the hub cache) and, being pickles, only with
allow_pickle; `pose_offline` needs no download at all (mediapipe's bundled BlazePose model).
Canny and the weighted annotators work at a resolution: A1111's processor_res / pixel_perfect
(anim.control.unit_settings).
"""
from __future__ import annotations

import os
import sys
import threading
import warnings
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np

from anim.control.pose import blazepose_to_openpose, draw_openpose
from anim.control.unit_settings import working_side
from anim.errors import ModelError, PresetError

DEFAULT_ANNOTATOR_REPO = "lllyasviel/Annotators"
MEDIAPIPE_INSTALL = "make install (the lock has it), or pip install -e '.[pose]' && pip install --no-deps mediapipe==0.10.14"
POSE_MODEL = Path("modules") / "pose_landmark" / "pose_landmark_full.tflite"

# name -> (controlnet_aux class, weight files in the folder/repo, fixed call arguments, option defaults)
WEIGHTED = {
    "openpose": ("OpenposeDetector", ("body_pose_model.pth", "hand_pose_model.pth", "facenet.pth"),
                 {"include_body": True}, {"include_hand": False, "include_face": False}),
    "depth": ("MidasDetector", ("dpt_hybrid-midas-501f0c75.pt",), {}, {}),
    "lineart": ("LineartDetector", ("sk_model.pth", "sk_model2.pth"), {}, {"coarse": False}),
    "softedge": ("HEDdetector", ("ControlNetHED.pth",), {}, {"safe": False}),
    "scribble": ("HEDdetector", ("ControlNetHED.pth",), {"scribble": True}, {"safe": False}),
    "mlsd": ("MLSDdetector", ("mlsd_large_512_fp32.pth",), {}, {"thr_v": 0.1, "thr_d": 0.1}),
    "normal": ("NormalBaeDetector", ("scannet.pt",), {}, {}),
}
DETECT_RESOLUTION_PX = 512  # weighted annotators see the frame at this short side, as they were trained


class Annotator:
    """Callable (H, W, 3) uint8 -> (H, W, 3) uint8 control map; settings() feeds the map cache key."""

    name = "annotator"
    has_resolution = False  # works at a resolution of its own (processor_res / pixel_perfect apply)

    def __init__(self, options: dict | None = None, defaults: dict | None = None, *,
                 pixel_perfect: bool = False) -> None:
        self.options = _merge_options(self.name, defaults or {}, options or {})
        self.pixel_perfect = bool(pixel_perfect) and self.has_resolution
        self.calls = 0

    def __call__(self, image_u8: np.ndarray) -> np.ndarray:
        _check_image(image_u8, self.name)
        self.calls += 1
        result = np.ascontiguousarray(self._annotate(image_u8))
        return _same_size(result, image_u8.shape[1], image_u8.shape[0])

    def _annotate(self, image_u8: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def settings(self) -> dict:
        """Name and every option that changes the map."""
        return {"name": self.name, **self.options, **({"pixel_perfect": True} if self.pixel_perfect else {})}

    def _side(self, image_u8: np.ndarray, default: int, processor_res: int | None = None) -> int:
        """The short side (px) to detect at: the frame's own with pixel_perfect, else processor_res, else default
        (at least 64: controlnet-aux rounds sizes to multiples of 64)."""
        height, width = image_u8.shape[:2]
        side = working_side(width, height, processor_res=processor_res, pixel_perfect=self.pixel_perfect,
                            default=default)
        return max(64, side)


class Passthrough(Annotator):
    """`none`: the input already is a control map (also `pose_json`, whose source draws the map)."""

    def __init__(self, name: str = "none") -> None:
        self.name = name
        super().__init__()

    def _annotate(self, image_u8: np.ndarray) -> np.ndarray:
        return image_u8.copy()


class Canny(Annotator):
    """Canny edges (controlnet-aux CannyDetector), by default at the frame's own size; at processor_res when given."""

    name = "canny"
    has_resolution = True

    def __init__(self, options: dict | None = None, *, processor_res: int | None = None,
                 pixel_perfect: bool = False) -> None:
        super().__init__(options, {"low_threshold": 100, "high_threshold": 200}, pixel_perfect=pixel_perfect)
        self.processor_res = None if processor_res is None else int(processor_res)
        self._detector = _controlnet_aux().CannyDetector()

    def _annotate(self, image_u8: np.ndarray) -> np.ndarray:
        side = _aux_side(image_u8)
        return self._detector(image_u8, low_threshold=int(self.options["low_threshold"]),
                              high_threshold=int(self.options["high_threshold"]),
                              detect_resolution=self._side(image_u8, side, self.processor_res),
                              image_resolution=side, output_type="np")

    def settings(self) -> dict:
        given = {"processor_res": self.processor_res} if self.processor_res is not None and not self.pixel_perfect \
            else {}
        return {**super().settings(), **given}


class Weighted(Annotator):
    """A controlnet-aux annotator with network weights, loaded from local files only; processor_res is its
    detect_resolution option."""

    has_resolution = True

    def __init__(self, name: str, *, model: str | None, device, allow_pickle: bool, options: dict | None,
                 processor_res: int | None = None, pixel_perfect: bool = False) -> None:
        self.name = name
        class_name, files, self._fixed, defaults = WEIGHTED[name]
        if processor_res is not None and not pixel_perfect:
            if "detect_resolution" in (options or {}):
                raise PresetError("processor_res and annotator_options.detect_resolution set the same thing; keep one")
            options = {**(options or {}), "detect_resolution": int(processor_res)}
        super().__init__(options, {"detect_resolution": DETECT_RESOLUTION_PX, **defaults}, pixel_perfect=pixel_perfect)
        self.source = model or DEFAULT_ANNOTATOR_REPO
        folder = local_weights(name, self.source, files)
        if not allow_pickle:
            raise ModelError(f"annotator '{name}': its weights {folder / files[0]} are a Python pickle, which can "
                             f"run code when loaded; set `allow_pickle: true` if you trust {self.source}, "
                             f"or use {_alternative(name)}")
        self._detector = _load_detector(name, class_name, folder, device)

    def _annotate(self, image_u8: np.ndarray) -> np.ndarray:
        side = _aux_side(image_u8)
        detect = self._side(image_u8, int(self.options["detect_resolution"]))
        return self._detector(image_u8, image_resolution=side, output_type="np", **self._fixed,
                              **{**self.options, "detect_resolution": detect})

    def settings(self) -> dict:
        return {**super().settings(), "model": self.source}


class PoseOffline(Annotator):
    """OpenPose-style skeleton from mediapipe BlazePose (bundled model, no download), drawn our way.

    Every frame is detected on its own (static image mode), so a map never depends on which frames
    came before it: re-runs, resumes and partial renders give identical maps.
    """

    name = "pose_offline"

    def __init__(self, options: dict | None = None) -> None:
        super().__init__(options, {"min_confidence": 0.5})
        mp = _import_mediapipe()
        self.mediapipe_version = getattr(mp, "__version__", "?")
        self._pose = mp.solutions.pose.Pose(static_image_mode=True, model_complexity=1,
                                            enable_segmentation=False, min_detection_confidence=0.5)
        self._lock = threading.Lock()
        with _silenced_stderr():  # the graph starts on the first frame and logs TFLite notes to fd 2
            self.keypoints(np.zeros((64, 64, 3), dtype=np.uint8))

    def keypoints(self, image_u8: np.ndarray) -> np.ndarray:
        """(18, 3) OpenPose keypoints [x_px, y_px, visibility]; all zero when nobody is found."""
        _check_image(image_u8, self.name)
        height, width = image_u8.shape[:2]
        with self._lock, warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # protobuf 4 deprecation notes inside mediapipe
            result = self._pose.process(np.ascontiguousarray(image_u8))
        if result.pose_landmarks is None:
            return np.zeros((18, 3), dtype=np.float64)
        blaze = np.array([(p.x, p.y, p.visibility) for p in result.pose_landmarks.landmark], dtype=np.float64)
        return blazepose_to_openpose(blaze, width, height)

    def _annotate(self, image_u8: np.ndarray) -> np.ndarray:
        keypoints = self.keypoints(image_u8)
        people = [keypoints] if keypoints[:, 2].any() else []
        return draw_openpose(people, image_u8.shape[1], image_u8.shape[0], float(self.options["min_confidence"]))

    def settings(self) -> dict:
        return {**super().settings(), "mediapipe": self.mediapipe_version, "model_complexity": 1}

    def close(self) -> None:
        """Free the mediapipe graph."""
        self._pose.close()


NAMES = ("none", "canny", "pose_offline", "pose_json", *WEIGHTED)


def get_annotator(name: str, *, model: str | None = None, device="cpu", allow_pickle: bool = False,
                  options: dict | None = None, processor_res: int | None = None,
                  pixel_perfect: bool = False) -> Annotator:
    """The annotator called `name`; model is a local folder or hub id (weighted annotators only); processor_res
    and pixel_perfect set the resolution canny and the weighted annotators work at (A1111's meaning)."""
    key = str(name or "none").strip().lower()
    if processor_res is not None and key in ("none", "pose_json", "pose_offline"):
        raise PresetError(f"processor_res: annotator {key} works on the frame as it is (no annotator resolution); "
                          "remove it")
    if key in ("none", "pose_json"):
        return Passthrough(key)
    if key == "canny":
        return Canny(options, processor_res=processor_res, pixel_perfect=pixel_perfect)
    if key == "pose_offline":
        return PoseOffline(options)
    if key in WEIGHTED:
        return Weighted(key, model=model, device=device, allow_pickle=allow_pickle, options=options,
                        processor_res=processor_res, pixel_perfect=pixel_perfect)
    raise ModelError(f"annotator {name!r} is unknown; use one of: {', '.join(NAMES)}")


# ---------------------------------------------------------------- helpers


def local_weights(name: str, source: str, files: tuple[str, ...]) -> Path:
    """The folder that holds every weight file, from a local folder or the hub cache; never downloads."""
    path = Path(source).expanduser()
    if path.is_dir():
        folder, missing = path, [f for f in files if not (path / f).is_file()]
    else:
        folder, missing = _hub_cache_folder(source, files)
    if missing:
        raise ModelError(f"annotator '{name}': weights {', '.join(missing)} are not on this machine ({source}; "
                         f"nothing is downloaded while rendering); put them in a folder and set annotator_model "
                         f"to it, or use {_alternative(name)}")
    return folder


def _hub_cache_folder(repo_id: str, files: tuple[str, ...]) -> tuple[Path, list[str]]:
    """(snapshot folder, missing files) of a hub repo in the local cache; all files must share one snapshot."""
    from huggingface_hub import try_to_load_from_cache

    from anim.models.load import HUB_ID

    if not HUB_ID.match(repo_id):
        return Path(repo_id), list(files)
    found = {f: try_to_load_from_cache(repo_id, f) for f in files}
    missing = [f for f, hit in found.items() if not isinstance(hit, str)]
    parents = {Path(hit).parent for hit in found.values() if isinstance(hit, str)}
    if len(parents) != 1:  # nothing cached, or files from different snapshots
        return Path(repo_id), missing or list(files)
    return parents.pop(), missing


def _alternative(name: str) -> str:
    """The annotator that needs no downloaded weights, for error messages."""
    needs_none = "pose_offline" if name == "openpose" else "canny"
    return f"`annotator: {needs_none}` (no weights needed)"


def _load_detector(name: str, class_name: str, folder: Path, device):
    """controlnet_aux `class_name`.from_pretrained(folder), moved to the device; ModelError on failure."""
    try:
        detector = getattr(_controlnet_aux(), class_name).from_pretrained(str(folder))
        if hasattr(detector, "to"):
            detector = detector.to(device)
    except Exception as exc:  # noqa: BLE001 - any failure of a third-party loader becomes one line
        from anim.models.checkpoints import one_line

        raise ModelError(f"annotator '{name}': could not load its weights from {folder} ({one_line(exc)}); "
                         f"check the files or use {_alternative(name)}") from None
    return detector


def _controlnet_aux():
    """controlnet_aux, imported without the deprecation chatter of its timm / registry imports."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import controlnet_aux
    return controlnet_aux


def _import_mediapipe():
    """mediapipe with its bundled full BlazePose model, or a ModelError saying how to install it."""
    os.environ.setdefault("GLOG_minloglevel", "2")  # mediapipe's C++ start-up chatter
    try:
        import mediapipe as mp

        mp.solutions.pose  # noqa: B018 - the import that fails on a broken install (protobuf, cv2)
    except Exception as exc:  # noqa: BLE001
        raise ModelError(f"annotator 'pose_offline' needs mediapipe ({type(exc).__name__}: {str(exc)[:100]}); "
                         f"install it with: {MEDIAPIPE_INSTALL}") from None
    if not (Path(mp.__file__).parent / POSE_MODEL).is_file():
        raise ModelError(f"annotator 'pose_offline': mediapipe has no bundled {POSE_MODEL}; "
                         f"reinstall it with: {MEDIAPIPE_INSTALL}")
    return mp


@contextmanager
def _silenced_stderr():
    """Send the process's stderr (fd 2, where native libraries log) to /dev/null for a moment."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _merge_options(name: str, defaults: dict, options: dict) -> dict:
    """Defaults updated by the user's options; an unknown option is an error naming the valid ones."""
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        valid = ", ".join(defaults) or "none"
        raise ModelError(f"annotator '{name}': unknown option {', '.join(unknown)}; valid options: {valid}")
    return {**defaults, **options}


def _aux_side(image_u8: np.ndarray) -> int:
    """The short side to hand controlnet-aux: the frame's own (it rounds sizes to multiples of 64, so
    at least 64); the map comes back at the frame's size either way."""
    return max(64, min(image_u8.shape[:2]))


def _check_image(image_u8: np.ndarray, name: str) -> None:
    """Annotators take (H, W, 3) uint8 RGB frames."""
    if not isinstance(image_u8, np.ndarray) or image_u8.dtype != np.uint8 or image_u8.ndim != 3 \
            or image_u8.shape[2] != 3:
        shape = getattr(image_u8, "shape", None)
        raise ModelError(f"annotator '{name}': expected an (H, W, 3) uint8 image, got {shape}")


def _same_size(result: np.ndarray, width: int, height: int) -> np.ndarray:
    """A map as (height, width, 3) uint8: grey maps get three channels, other sizes are resized."""
    if result.ndim == 2:
        result = np.repeat(result[:, :, None], 3, axis=2)
    if result.shape[2] == 1:
        result = np.repeat(result, 3, axis=2)
    if result.shape[:2] != (height, width):
        result = cv2.resize(result, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(result[:, :, :3].astype(np.uint8, copy=False))
