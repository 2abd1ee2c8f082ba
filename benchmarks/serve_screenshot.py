"""The README's screenshot of the `avemo serve` page (docs/serve_page.png), with a real result: a server
is started, headless Chromium uploads 12 s of the shared RAVDESS clip with its own speech (looped) after
one CREMA-D clip, plays the video to about 5 s, and the page is photographed.

    python benchmarks/serve_screenshot.py [--out docs/serve_page.png]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from avemo.config import cache_root, data_root
from avemo.serve.harness import ServerProcess, chromium, looped_clip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("docs/serve_page.png"))
    ap.add_argument("--at", type=float, default=5.3, help="where the video is paused, seconds")
    args = ap.parse_args()
    from selenium.webdriver.common.by import By

    clips = data_root() / "clips"
    clip = looped_clip(12.0, cache_root() / "serve" / "talking_face_12s.mp4",
                       video=clips / "ravdess/01-01-08-02-01-01-19.mp4",
                       audio=clips / "ravdess/03-01-08-02-01-01-19.wav")
    with tempfile.TemporaryDirectory(prefix="avemo-serve-shot-") as tmp, ServerProcess(Path(tmp) / "data") as server:
        driver = chromium(extra_flags=("--window-size=1280,1640", "--hide-scrollbars"))
        try:
            driver.get(server.url + "/")
            for path in (clips / "cremad/1001_DFA_HAP_XX.flv", clip):
                driver.find_element(By.ID, "file").send_keys(str(path))
                time.sleep(0.5)
                deadline = time.monotonic() + 300
                while driver.find_element(By.ID, "result").get_attribute("data-state") != "done" or \
                        driver.find_element(By.ID, "result-title").text != path.name:
                    if time.monotonic() > deadline:
                        raise SystemExit(f"{path.name}: no result within 300 s")
                    time.sleep(0.2)
            driver.execute_async_script("""
                const done = arguments[arguments.length - 1];
                const v = document.getElementById('player');
                v.muted = true;
                const go = () => { v.play().then(() => setTimeout(() => { v.pause(); done(); }, 1000)); };
                v.addEventListener('seeked', go, { once: true });
                v.currentTime = arguments[0] - 1.0;""", args.at)
            driver.execute_script("document.querySelector('.jobs h2 button').click()")
            time.sleep(1.0)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(args.out))
        finally:
            driver.quit()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
