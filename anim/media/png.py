"""Frame output: A1111 `parameters` text, PNG + JSON metadata, a background writer, the run log."""
from __future__ import annotations

import functools
import io
import json
import logging
import os
import queue
import struct
import threading
import zlib
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image, PngImagePlugin

from anim.errors import InputError
from anim.keyframes.networks import column_network, tag_text
from anim.media.files import atomic_write_bytes

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_END = b"IEND\xaeB`\x82"  # the last 8 bytes of every complete PNG
ROW_CHUNK = "anim"  # iTXt key holding the frame's FrameTable row as JSON
NOT_IN_ALIAS = str.maketrans("", "", ":,")  # A1111 drops these from a LoRA's name in "Lora hashes"


def _fmt(value: Any) -> str:
    """A1111 value formatting: integers without a dot, floats short, commas quoted."""
    if isinstance(value, float):
        text = f"{value:.6g}"
    else:
        text = str(value)
    return json.dumps(text) if "," in text or "\n" in text else text


def a1111_parameters(row: dict, *, width: int, height: int, sampler_label: str, model_hash: str,
                     model_name: str, denoise: float | None, lora_hashes: dict[str, str] | None = None) -> str:
    """The `parameters` text A1111 and its readers parse: prompt (with its LoRA tags), negative, then `Key: value`
    pairs; `lora_hashes` ({name: short hash} of the tagged LoRAs) gives A1111's "Lora hashes"."""
    fields: dict[str, Any] = {
        "Steps": int(row["steps"]),
        "Sampler": sampler_label,
        "CFG scale": float(row["cfg_scale"]),
        "Seed": int(row["seed"]),
        "Size": f"{width}x{height}",
        "Model hash": model_hash,
        "Model": model_name,
    }
    if denoise is not None:
        fields["Denoising strength"] = float(denoise)
    fields["Frame"] = int(row["frame"])
    if row.get("blend_weight", 0.0) > 0.0:
        fields["Prompt blend"] = float(row["blend_weight"])
    fields.update(a1111_noise_fields(row))
    pairs = ", ".join(f"{key}: {_fmt(value)}" for key, value in fields.items())
    acting = tagged_loras(row)
    hashes = ", ".join(f"{name.translate(NOT_IN_ALIAS)}: {lora_hashes[name]}" for name in acting
                       if (lora_hashes or {}).get(name))
    if hashes:
        pairs += f", Lora hashes: {json.dumps(hashes)}"  # quoted, as A1111 quotes a value holding ':'
    negative = f"\nNegative prompt: {row['negative_prompt']}" if row.get("negative_prompt") else ""
    prompt = " ".join(part for part in (row["prompt"], *(tag_text(n, w) for n, w in acting.items())) if part)
    return f"{prompt}{negative}\n{pairs}"


def tagged_loras(row: dict) -> dict[str, float]:
    """{name: weight} of the prompt-tagged LoRAs acting on the frame (a `lora:NAME` column that is not 0). The
    infotext's prompt carries them as <lora:NAME:WEIGHT> tags (A1111 keeps tags in its infotext prompt); the
    weight is the frame's, crossfades included, so A1111 reproduces the frame from it."""
    return {name: float(row[column]) for column in row
            if (name := column_network(column)) is not None and float(row[column]) != 0.0}


def a1111_noise_fields(row: dict) -> dict[str, Any]:
    """Clip skip, variation seed, noise multiplier and DDIM eta as A1111 writes them: only when not the default."""
    fields: dict[str, Any] = {}
    if int(row.get("clip_skip", 1)) > 1:
        fields["Clip skip"] = int(row["clip_skip"])
    if int(row.get("subseed", -1)) >= 0 and float(row.get("subseed_strength", 0.0)) != 0.0:
        fields["Variation seed"] = int(row["subseed"])
        fields["Variation seed strength"] = float(row["subseed_strength"])
    if float(row.get("noise_multiplier", 1.0)) != 1.0:
        fields["Noise multiplier"] = float(row["noise_multiplier"])
    if float(row.get("ddim_eta", 0.0)) != 0.0:
        fields["Eta DDIM"] = float(row["ddim_eta"])
    if float(row.get("ancestral_eta", 1.0)) != 1.0:
        fields["Eta"] = float(row["ancestral_eta"])
    return fields


def png_bytes(image_u8: np.ndarray, parameters: str, row: dict) -> bytes:
    """Encode an HxWx3 uint8 frame as PNG with the `parameters` text and the row as JSON."""
    info = PngImagePlugin.PngInfo()
    info.add_itxt("parameters", parameters)
    info.add_itxt(ROW_CHUNK, json.dumps(row, ensure_ascii=False, sort_keys=False))
    buffer = io.BytesIO()
    Image.fromarray(image_u8, mode="RGB").save(buffer, format="PNG", pnginfo=info, compress_level=4)
    return buffer.getvalue()


def is_complete_png(path: Path) -> bool:
    """True when `path` is a whole, intact PNG: the signature, then chunks whose CRCs all match, ending with
    IEND at the end of the file. A truncated or damaged frame never counts as done (resume makes it again)."""
    try:
        stat = os.stat(path)
    except OSError:
        return False
    return _intact_png(str(path), stat.st_size, stat.st_mtime_ns, stat.st_ino)


@functools.lru_cache(maxsize=65536)
def _intact_png(path: str, size: int, mtime_ns: int, inode: int) -> bool:
    """The chunk walk of is_complete_png, remembered per file version (size, mtime, inode)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError:
        return False
    if len(data) != size or not data.startswith(PNG_SIGNATURE) or not data.endswith(PNG_END):
        return False
    pos = len(PNG_SIGNATURE)
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        end = pos + 12 + length
        if end > len(data):
            return False
        body = data[pos + 4:end - 4]
        if zlib.crc32(body) != struct.unpack(">I", data[end - 4:end])[0]:
            return False
        if body[:4] == b"IEND":
            return end == len(data)
        pos = end
    return False


def read_png_metadata(path: Path) -> tuple[str, dict]:
    """(parameters text, row dict) from a frame written by `png_bytes`."""
    with Image.open(path) as image:
        text = image.text  # type: ignore[attr-defined]
        return text.get("parameters", ""), json.loads(text.get(ROW_CHUNK, "{}"))


def read_png_u8(path: Path) -> np.ndarray:
    """A frame PNG as HxWx3 uint8; InputError naming the file when it cannot be decoded."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB")).copy()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise InputError(f"{path}: cannot read this frame ({exc}); delete it and resume to make it again") from None


class FrameWriter:
    """Writes frames on a background thread, in order; `after_write(index)` runs once each file is durable.

    Errors in the thread surface on the next `submit` or on `close`, so a failed write stops the render.
    """

    def __init__(self, after_write: Callable[[int], None] | None = None, max_pending: int = 8) -> None:
        self._queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self._after_write = after_write
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="anim-frame-writer", daemon=True)
        self._thread.start()

    def submit(self, index: int, path: Path, image_u8: np.ndarray, parameters: str, row: dict) -> None:
        """Queue one frame (blocks when `max_pending` frames are waiting)."""
        self._raise_if_failed()
        self._queue.put((index, path, image_u8, parameters, row))

    def close(self) -> None:
        """Wait until every queued frame is on disk; re-raise a writer error."""
        self._queue.put(None)
        self._thread.join()
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if self._error is not None:
                continue  # drain without writing after a failure
            index, path, image_u8, parameters, row = item
            try:
                atomic_write_bytes(path, png_bytes(image_u8, parameters, row))
                if self._after_write is not None:
                    self._after_write(index)
            except BaseException as exc:  # noqa: BLE001 - handed to the render thread
                self._error = exc


def run_logger(path: Path) -> logging.Logger:
    """A logger appending to the run's log.txt (one per run folder)."""
    logger = logging.getLogger(f"anim.run.{path.resolve()}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    if not logger.handlers:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(path, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
    return logger


def close_logger(logger: logging.Logger) -> None:
    """Flush and detach the log file (tests open many runs in one process)."""
    for handler in list(logger.handlers):
        handler.close()
        logger.removeHandler(handler)
