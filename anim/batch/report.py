"""What a batch leaves behind: ROOT/batch.json, ROOT/batch.md, ROOT/contact_sheet.png and a terminal table.

Input is the list of result rows (anim.batch.worker.result); every file is written atomically.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from anim.media.files import atomic_write_bytes, atomic_write_text
from anim.media.png import is_complete_png

THUMB = 160  # contact sheet: each frame fits a THUMB x THUMB box
LABEL_W = 220
CAPTION_H = 16
PAD = 8


def finished(row: dict) -> bool:
    """A job whose frames are all there: rendered now, or skipped because it was already complete."""
    return row["status"] == "done" or (row["status"] == "skipped" and not row.get("error"))


def write_reports(root: Path, rows: list[dict]) -> list[Path]:
    """batch.json, batch.md and (when a job finished) contact_sheet.png under ROOT; the paths written."""
    written = [root / "batch.json", root / "batch.md"]
    atomic_write_text(written[0], json.dumps(rows, indent=1) + "\n")
    atomic_write_text(written[1], markdown(root, rows))
    sheet = contact_sheet(root, rows)
    if sheet is not None:
        atomic_write_bytes(root / "contact_sheet.png", sheet)
        written.append(root / "contact_sheet.png")
    return written


def counts(rows: list[dict]) -> str:
    """`5 done, 1 failed` in a fixed order; skipped jobs that never started are counted apart."""
    def label(row: dict) -> str:
        return "not started" if row["status"] == "skipped" and row.get("error") else row["status"]

    order = ("done", "skipped", "interrupted", "cancelled", "not started", "failed")
    tally = {status: sum(label(r) == status for r in rows) for status in order}
    return ", ".join(f"{n} {status}" for status, n in tally.items() if n)


def summary_table(rows: list[dict], width: int = 60) -> str:
    """A plain-text table for the terminal, errors cut to `width` characters."""
    name_w = max([len("preset")] + [len(r["name"]) for r in rows])
    lines = [f"{'preset':<{name_w}}  {'status':<11} {'frames':>6} {'seconds':>8}  error"]
    for r in rows:
        error = r.get("error") or ""
        error = error if len(error) <= width else error[: width - 3] + "..."
        lines.append(f"{r['name']:<{name_w}}  {r['status']:<11} {r['frames']:>6} {r['seconds']:>8.1f}  {error}")
    return "\n".join(lines)


def markdown(root: Path, rows: list[dict]) -> str:
    """batch.md: a readable table with a link to each run folder."""
    lines = [f"# Batch {root.name}", "", f"{len(rows)} job(s): {counts(rows)}.", "",
             "| preset | status | frames | seconds | error |", "|---|---|---:|---:|---|"]
    for r in rows:
        error = (r.get("error") or "").replace("|", "\\|")
        lines.append(f"| [{r['name']}]({r['name']}/) | {r['status']} | {r['frames']} | {r['seconds']:.1f} | {error} |")
    if any(finished(r) for r in rows):
        lines += ["", "![contact sheet](contact_sheet.png)"]
    return "\n".join(lines) + "\n"


def picks(frames: list[int]) -> list[int]:
    """First, middle and last frame (fewer when the job has fewer frames)."""
    if not frames:
        return []
    chosen = [frames[0], frames[len(frames) // 2], frames[-1]]
    return sorted(set(chosen))


def contact_sheet(root: Path, rows: list[dict]) -> bytes | None:
    """PNG bytes: one labelled row per finished job with its first/middle/last frame; None if none finished."""
    entries = []
    for r in rows:
        if not finished(r):
            continue
        frames_dir = root / r["name"] / "frames"
        frames = sorted(int(p.stem) for p in frames_dir.glob("[0-9]*.png") if p.stem.isdigit()
                        and is_complete_png(p))
        if frames:
            entries.append((r, [(f, frames_dir / f"{f:06d}.png") for f in picks(frames)]))
    if not entries:
        return None
    row_h = THUMB + CAPTION_H + PAD
    sheet = Image.new("RGB", (LABEL_W + 3 * (THUMB + PAD) + PAD, PAD + row_h * len(entries)), (24, 24, 24))
    draw, font = ImageDraw.Draw(sheet), ImageFont.load_default()
    for i, (r, shots) in enumerate(entries):
        top = PAD + i * row_h
        draw.text((PAD, top + 4), fit_image(r["name"], 30), fill=(240, 240, 240), font=font)
        draw.text((PAD, top + 22), f"{r['status']}, {r['frames']} frames", fill=(170, 170, 170), font=font)
        for j, (index, path) in enumerate(shots):
            left = LABEL_W + j * (THUMB + PAD)
            sheet.paste(_thumb(path), (left, top))
            draw.text((left, top + THUMB + 2), f"frame {index}", fill=(170, 170, 170), font=font)
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    return buffer.getvalue()


def _thumb(path: Path) -> Image.Image:
    """The frame scaled to fit the THUMB box (small frames are enlarged), centred on a dark tile."""
    with Image.open(path) as image:
        image = image.convert("RGB")
        scale = min(THUMB / image.width, THUMB / image.height)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BICUBIC)
    tile = Image.new("RGB", (THUMB, THUMB), (40, 40, 40))
    tile.paste(image, ((THUMB - size[0]) // 2, (THUMB - size[1]) // 2))
    return tile


def fit_image(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "~"
