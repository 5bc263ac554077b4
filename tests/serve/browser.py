"""Headless Chromium (Debian's chromium + chromium-driver, `make browser`) driven by selenium, and a live batch
of tiny jobs for it to watch; used by the browser test and by `python -m tests.serve.screenshot`."""
from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from tests.batch.util import ENV, ROOT, write_preset


def browser_missing() -> str | None:
    """Why no browser test can run here, or None (chromium and chromedriver on PATH)."""
    missing = [name for name in ("chromium", "chromedriver") if shutil.which(name) is None]
    return f"{' and '.join(missing)} not on PATH: run `make browser` (apt-get install chromium chromium-driver)" \
        if missing else None


@contextlib.contextmanager
def chromium(width: int = 1200, height: int = 1000):
    """A headless Chromium WebDriver; the local chromedriver is passed in so selenium never downloads one."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 f"--window-size={width},{height}", "--hide-scrollbars", "--no-first-run"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver")), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def demo_presets(folder: Path, init: Path, *, size: int = 64, long_frames: int = 400) -> Path:
    """Three tiny jobs: a (100 frames), b (12 frames, its init image `init` missing: it fails), c (long)."""
    write_preset(folder, "a_zoom", max_frames=100, width=size, height=size, seed=1)
    write_preset(folder, "b_init", max_frames=12, width=size, height=size, seed=2, init_image=str(init))
    write_preset(folder, "c_long", max_frames=long_frames, width=size, height=size, seed=3,
                 prompts={0: "a lighthouse at dusk"}, motion={"mode": "2d", "angle": "0:(2)", "zoom": "0:(1.01)"})
    return folder


def write_init(path: Path, size: int = 64) -> None:
    """A small gradient PNG: the 'fixed' input of the broken job."""
    ramp = np.linspace(0, 255, size, dtype=np.uint8)
    Image.fromarray(np.stack([np.tile(ramp, (size, 1)), np.tile(ramp[:, None], (1, size)),
                              np.full((size, size), 128, np.uint8)], axis=-1)).save(path)


def start_batch(folder: Path, root: Path, log: Path) -> subprocess.Popen:
    """`render.py batch FOLDER --out ROOT --workers 1` in the background, its output in `log`."""
    with open(log, "wb") as handle:
        return subprocess.Popen([sys.executable, str(ROOT / "render.py"), "batch", str(folder), "--out", str(root),
                                 "--workers", "1"], cwd=ROOT, env=ENV, stdout=handle, stderr=subprocess.STDOUT)


NO_CARD = {"status": "", "frames": 0, "progress": "", "latest_width": 0, "picks_loaded": False, "error": ""}


def card_state(driver, name: str) -> dict:
    """What the page shows of job `name`: status, frames, the latest <img>'s naturalWidth, error text (NO_CARD
    while the page has no card for it yet)."""
    return driver.execute_script("""
        const el = document.querySelector(`section.job[data-job="${arguments[0]}"]`);
        if (!el) return null;
        const img = el.querySelector("img.latest"), picks = [...el.querySelectorAll(".picks img")];
        return {status: el.dataset.status, frames: Number(el.dataset.frames),
                progress: el.querySelector(".progress").textContent,
                latest_width: img.hidden ? 0 : img.naturalWidth,
                picks_loaded: picks.length > 0 && picks.every((p) => p.complete && p.naturalWidth > 0),
                error: el.querySelector(".error").hidden ? "" : el.querySelector(".error").textContent};
    """, name) or dict(NO_CARD)
