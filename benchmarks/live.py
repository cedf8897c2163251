"""The web page's Live view, measured end to end in a real browser: frames/s and camera-to-screen
latency of a shipped style, on the server (WebSocket) and in the browser (onnxruntime-web), at
320x240 and 640x480.

    python benchmarks/live.py [--model candy] [--seconds 20] [--warmup 8]

Starts the app under uvicorn on a free local port in this process and headless Chromium (Debian's
chromium + chromium-driver) whose fake camera plays a Y4M clip of scikit-image's coffee photo
panning (tests/fake_camera.py). For each size and way: the page's Start, `--warmup` seconds, then
`--seconds` of measurement. frames/s: stylized frames drawn on the page ÷ the time; latency: the
page's median over its last 30 frames (a frame's grab from the camera to its drawing), sampled each
second, median of the samples. Browser, server and network share this machine's cores, as a
laptop serving itself would. Needs `python scripts/provision_web_static.py` for the in-browser rows.
Results: benchmarks/results/live_cpu.json and a markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests' browser and camera helpers

from benchmarks.speed import machine  # noqa: E402
from tests.browser import make_driver  # noqa: E402
from tests.fake_camera import CAMERA_FLAGS, camera_clip  # noqa: E402
from tests.live_server import LiveServer  # noqa: E402
from texture_nets.web import WebConfig  # noqa: E402
from texture_nets.web.live import browser_engine_installed  # noqa: E402

STATS_JS = "return Object.assign({}, document.getElementById('live_stats').dataset);"
SIZES = ((320, 240), (640, 480))


def measure(server, folder: Path, size: tuple[int, int], way: str, model: str, warmup: float,
            seconds: float) -> dict:
    """One row: a fresh browser whose camera gives `size` frames, the Live view started `way`."""
    from selenium.webdriver.common.by import By
    clip = camera_clip(folder, *size)
    driver = make_driver(folder / f"chrome_{way}_{size[0]}", 1300, 1400,
                         extra=CAMERA_FLAGS + [f"--use-file-for-fake-video-capture={clip}"])
    try:
        driver.get(server.url + "/#live")
        deadline = time.monotonic() + 60
        while not driver.find_elements(By.CSS_SELECTOR, f".card[data-model='{model}']"):
            if time.monotonic() > deadline:
                raise RuntimeError("the gallery did not load")
            time.sleep(0.2)
        driver.find_element(By.CSS_SELECTOR, f".card[data-model='{model}']").click()
        driver.execute_script(f"document.getElementById('live_way').value = '{way}';"
                              f"document.getElementById('live_size').value = '{size[0]}x{size[1]}';")
        driver.find_element(By.ID, "live_start").click()
        deadline = time.monotonic() + 180
        while int(driver.execute_script(STATS_JS).get("frames", 0)) < 3:  # the model loaded, frames coming
            if time.monotonic() > deadline:
                raise RuntimeError(f"no stylized frames: {driver.find_element(By.ID, 'live_status').text}")
            time.sleep(0.2)
        time.sleep(warmup)
        start_frames, started = int(driver.execute_script(STATS_JS)["frames"]), time.monotonic()
        latencies = []
        while time.monotonic() - started < seconds:
            time.sleep(1)
            latencies.append(float(driver.execute_script(STATS_JS)["latency"]))
        frames = int(driver.execute_script(STATS_JS)["frames"]) - start_frames
        elapsed = time.monotonic() - started
        return {"way": way, "size": f"{size[0]}x{size[1]}", "fps": frames / elapsed,
                "latency_ms": statistics.median(latencies), "frames": frames, "seconds": elapsed}
    finally:
        driver.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="candy")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=8)
    parser.add_argument("--ways", default="server,browser", help="comma-separated: server, browser")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "live_cpu.json"))
    args = parser.parse_args()
    ways = [way for way in args.ways.split(",") if way != "browser" or browser_engine_installed()]
    rows = []
    with tempfile.TemporaryDirectory() as folder, \
            LiveServer(WebConfig(checkpoint_dir=str(Path(folder) / "none"), engine="auto")) as server:
        for way in ways:
            for size in SIZES:
                row = measure(server, Path(folder), size, way, args.model, args.warmup, args.seconds)
                rows.append(row)
                print(f"{way:8s} {row['size']:8s} {row['fps']:5.1f} frames/s  {row['latency_ms']:5.0f} ms", flush=True)
    result = {"model": args.model, "machine": machine(), "rows": rows}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print("\n| way | camera | frames/s | latency (ms) |\n| --- | --- | ---: | ---: |")
    for row in rows:
        print(f"| {row['way']} | {row['size']} | {row['fps']:.1f} | {row['latency_ms']:.0f} |")


if __name__ == "__main__":
    main()
