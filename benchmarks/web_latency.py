"""How long the web app takes to answer POST /api/stylize for a 512-px photo, end to end over HTTP
(upload, decode, stylize, PNG encode, download), per shipped style, on this machine.

    python benchmarks/web_latency.py [--engine auto|torch] [--repeats 5]

Starts the app under uvicorn on a free local port in this process, sends scikit-image's "coffee"
sample photo resized to 512 px on its longer side (512x341), and reports the median and best
round trip after one warm-up request per style (the first request loads the model and, with ONNX
Runtime, exports it), and the server's own stylization time (X-Stylize-Seconds). Results:
benchmarks/results/web_latency_cpu.json and a markdown table.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import socket
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import torch  # noqa: E402
import uvicorn  # noqa: E402
from PIL import Image  # noqa: E402

from texture_nets.web import WebConfig, create_app  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def photo_bytes() -> bytes:
    from skimage import data
    image = Image.fromarray(data.coffee())
    image = image.resize((512, round(image.height * 512 / image.width)), Image.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", default="auto", choices=("auto", "torch"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "web_latency_cpu.json"))
    args = parser.parse_args()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(WebConfig(checkpoint_dir=str(ROOT / "runs" / "none"),
                                                                engine=args.engine)),
                                           host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    url, photo, rows = f"http://127.0.0.1:{port}", photo_bytes(), {}
    with httpx.Client(base_url=url, timeout=120) as client:
        for model in [m["name"] for m in client.get("/api/models").json()["models"]]:
            times, network = [], []
            for i in range(args.repeats + 1):
                started = time.perf_counter()
                response = client.post("/api/stylize", files={"file": ("coffee.jpg", photo)}, data={"model": model})
                elapsed = time.perf_counter() - started
                response.raise_for_status()
                if i:  # the first request loads (and exports) the model
                    times.append(elapsed)
                    network.append(float(response.headers["X-Stylize-Seconds"]))
            size = Image.open(io.BytesIO(response.content)).size
            rows[model] = {"size": list(size), "median_s": statistics.median(times), "best_s": min(times),
                           "network_median_s": statistics.median(network)}
            print(f"{model:16s} {size[0]}x{size[1]}  median {rows[model]['median_s']:.3f} s  best "
                  f"{rows[model]['best_s']:.3f} s  (network {rows[model]['network_median_s']:.3f} s)", flush=True)
    server.should_exit = True
    result = {"machine": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                          "torch": torch.__version__}, "engine": args.engine, "repeats": args.repeats, "models": rows}
    Path(args.out).write_text(json.dumps(result, indent=1))
    print("\n| style | picture | round trip, median | best | of which the network |\n|---|---|---|---|---|")
    for model, row in rows.items():
        print(f"| {model} | {row['size'][0]}x{row['size'][1]} | {row['median_s']:.2f} s | {row['best_s']:.2f} s | "
              f"{row['network_median_s']:.2f} s |")


if __name__ == "__main__":
    main()
