"""The dashboard in headless Chromium over a live `render.py batch` of 3 tiny jobs (one broken): progress rises
without a reload, thumbnails load, the failure shows its error, requeue and cancel work from the page."""
from __future__ import annotations

import json
import os

import pytest

from tests.serve.browser import browser_missing, card_state, chromium, demo_presets, start_batch, write_init
from tests.serve.helpers import serving

# `make test` installs the browser, so CI (CI=true) never skips: a missing browser fails there
pytestmark = pytest.mark.skipif(browser_missing() is not None and not os.environ.get("CI"),
                                reason=browser_missing() or "")
TOKEN = "browser-test-token"


def click(driver, name: str, button: str) -> None:
    driver.find_element("css selector", f'section.job[data-job="{name}"] button.{button}').click()


def test_live_batch_in_a_real_browser(tmp_path):
    from selenium.webdriver.support.ui import WebDriverWait

    init, root = tmp_path / "init.png", tmp_path / "out"
    folder = demo_presets(tmp_path / "presets", init)
    batch = start_batch(folder, root, tmp_path / "batch.log")
    try:
        with serving(root, TOKEN) as port, chromium() as driver:
            wait = WebDriverWait(driver, 90, poll_frequency=0.1)
            driver.get(f"http://127.0.0.1:{port}/")
            driver.execute_script("window.notReloaded = true")

            def running_job(d):
                """(name, frames) of a job the page shows running, part done."""
                for name in ("a_zoom", "c_long"):
                    card = card_state(d, name)
                    if card["status"] == "running" and 0 < card["frames"] < 100:
                        return name, card["frames"]
                return None

            name, first = wait.until(running_job)
            wait.until(lambda d: card_state(d, name)["frames"] > first)  # the page updates itself
            wait.until(lambda d: card_state(d, name)["latest_width"] > 0 or card_state(d, name)["picks_loaded"])  # a thumbnail really loaded (naturalWidth > 0)
            broken = wait.until(lambda d: (s := card_state(d, "b_init"))["status"] == "failed" and s)
            assert "init_image: file not found" in broken["error"] and str(init) in broken["error"]

            wait.until(lambda d: card_state(d, "c_long")["status"] == "running")
            write_init(init)  # fix the input on disk, then requeue the job from the page
            click(driver, "b_init", "requeue")
            wait.until(lambda d: card_state(d, "b_init")["status"] in ("queued", "running", "done"))
            click(driver, "c_long", "cancel")
            cancelled = wait.until(lambda d: (s := card_state(d, "c_long"))["status"] == "cancelled" and s)
            assert 0 < cancelled["frames"] < 400
            done = wait.until(lambda d: (s := card_state(d, "b_init"))["status"] == "done" and s["picks_loaded"] and s)
            assert done["frames"] == 12 and done["error"] == ""
            wait.until(lambda d: card_state(d, "a_zoom")["status"] == "done" and card_state(d, "a_zoom")["picks_loaded"])
            assert driver.execute_script("return window.notReloaded") is True
        assert batch.wait(60) == 0, (tmp_path / "batch.log").read_text()[-3000:]
    finally:
        if batch.poll() is None:
            batch.kill()
            batch.wait()
    rows = {r["name"]: r for r in json.loads((root / "batch.json").read_text())}
    assert {n: r["status"] for n, r in rows.items()} == {"a_zoom": "done", "b_init": "done", "c_long": "cancelled"}
    kept = len(list((root / "c_long" / "frames").glob("*.png")))
    assert kept == rows["c_long"]["frames"] and kept >= cancelled["frames"]  # stopped after its current frame
