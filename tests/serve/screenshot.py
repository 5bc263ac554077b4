"""`python -m tests.serve.screenshot [--phone] [PNG]`: render the demo batch (one job done, one failed, one running), open
the dashboard in headless Chromium and save a screenshot (default docs/dashboard.png). Takes about 30 s."""
from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.batch.util import ROOT
from tests.serve.browser import browser_missing, card_state, chromium, demo_presets, start_batch
from tests.serve.helpers import serving


def capture(out: Path, width: int = 1200, height: int = 900) -> None:
    """Run the demo batch into a temp root and screenshot the page once a is done, b failed and c is rendering."""
    from selenium.webdriver.support.ui import WebDriverWait

    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        folder = demo_presets(tmp_path / "presets", tmp_path / "init.png", size=128, long_frames=300)
        batch = start_batch(folder, tmp_path / "out", tmp_path / "batch.log")
        try:
            with serving(tmp_path / "out", "screenshot") as port, chromium(width, height) as driver:
                driver.get(f"http://127.0.0.1:{port}/")
                wait = WebDriverWait(driver, 180, poll_frequency=0.2)
                wait.until(lambda d: card_state(d, "a_zoom")["picks_loaded"]
                           and card_state(d, "b_init")["status"] == "failed"
                           and (c := card_state(d, "c_long"))["status"] == "running" and c["frames"] >= 30
                           and c["latest_width"] > 0 and "ETA" in c["progress"])
                out.parent.mkdir(parents=True, exist_ok=True)
                driver.save_screenshot(str(out))
        finally:
            batch.send_signal(signal.SIGINT)  # stop after the current frame, so the temp folder can go
            try:
                batch.wait(60)
            except subprocess.TimeoutExpired:
                batch.kill()
                batch.wait()
    print(f"wrote {out}")


def main(argv: list[str]) -> int:
    if (why := browser_missing()) is not None:
        print(why, file=sys.stderr)
        return 2
    phone = "--phone" in argv  # a phone's viewport (390 x 844 CSS px)
    argv = [a for a in argv if a != "--phone"]
    default = ROOT / "docs" / ("dashboard-phone.png" if phone else "dashboard.png")
    capture(Path(argv[0]) if argv else default, *((390, 844) if phone else ()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
