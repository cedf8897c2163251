#!/usr/bin/env python
"""What the live dashboard costs the training loop: the same run with --viz off, with a live Visdom
server, with no server listening (connection refused) and with one that accepts but never answers.

It starts its own Visdom server on a free port (the library never does), runs every condition
`--repeats` times in interleaved order, and prints a markdown table of the median time per step
(after `--warmup` steps; validation and sample images included, as in a real run) and the overhead
against --viz off, and the CPU time of the dashboard's sending thread. The README's table came from:

    python benchmarks/dashboard_overhead.py --data_dir ../shared/data/coco/train2017 \\
        --texture ../shared/data/styles/mosaic.jpg --vgg_weights ../shared/vgg19/vgg19_caffe_features_fp16.pth
"""

from __future__ import annotations

import argparse
import json
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from texture_nets.training.config import make_config  # noqa: E402
from texture_nets.training.run import run_training  # noqa: E402


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(folder: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "visdom.server", "-port", str(port), "-bind_local",
                                "-env_path", str(folder), "-logging_level", "WARNING"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=folder)
    for _ in range(300):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return process, port
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the visdom server did not start")


def dashboard_thread_cpu() -> float:
    """CPU seconds used so far by the dashboard's sending thread (0 when there is none)."""
    for thread in threading.enumerate():
        if thread.name == "visdom-dashboard" and thread.ident:
            return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
    return 0.0


def time_run(values: dict, warmup: int) -> tuple[float, float]:
    """Train once: mean wall seconds per step from step `warmup` to the end, and the dashboard
    thread's CPU seconds per step over the whole run."""
    stamps: dict[int, float] = {}
    thread_cpu = [0.0]

    def on_event(event):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        stamps[event.step] = time.perf_counter()
        if event.step == event.total_steps:
            thread_cpu[0] = dashboard_thread_cpu()

    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_training(make_config({}, {**values, "checkpoint_dir": folder}), on_event=on_event, log=lambda m: None)
    start, end = min(step for step in stamps if step >= warmup), max(stamps)
    return (stamps[end] - stamps[start]) / (end - start), thread_cpu[0] / end


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--texture", required=True)
    parser.add_argument("--vgg_weights", default="")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--image_size", type=int, default=128)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--val_every", type=int, default=10)
    parser.add_argument("--viz_every", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--num_workers", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    base = dict(data_dir=args.data_dir, texture=[args.texture], vgg_weights=args.vgg_weights or "imagenet",
                device=args.device, image_size=args.image_size, batch_size=args.batch_size,
                num_iterations=args.steps, val_every=args.val_every, viz_every=args.viz_every, log_every=10,
                num_workers=args.num_workers, checkpoint_every=0, style_size=2 * args.image_size)
    folder = Path(tempfile.mkdtemp())
    server, port = start_server(folder)
    hung = socket.socket()  # listens, never accepts: connections complete in the backlog, reads time out
    hung.bind(("127.0.0.1", 0))
    hung.listen(64)
    hung_port = hung.getsockname()[1]
    conditions = {
        "--viz off": {},
        "live server": dict(viz=True, viz_server="http://127.0.0.1", viz_port=port, viz_env="overhead"),
        "no server (refused)": dict(viz=True, viz_server="http://127.0.0.1", viz_port=free_port()),
        "server hangs (accepts, never answers)": dict(viz=True, viz_server="http://127.0.0.1", viz_port=hung_port),
    }
    times: dict[str, list[float]] = {name: [] for name in conditions}
    thread_cpu: dict[str, list[float]] = {name: [] for name in conditions}
    try:
        for _ in range(args.repeats):
            for name, extra in conditions.items():
                wall, cpu = time_run({**base, **extra}, args.warmup)
                times[name].append(wall)
                thread_cpu[name].append(cpu)
                print(f"{name}: {wall * 1000:.1f} ms/step, dashboard thread {cpu * 1000:.2f} ms CPU/step",
                      file=sys.stderr)
    finally:
        server.kill()

    device = torch.cuda.get_device_name() if torch.cuda.is_available() and args.device != "cpu" else \
        f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    print(f"\n{device}; torch {torch.__version__}; {args.image_size} px, batch {args.batch_size}, "
          f"{args.steps} steps (timed after {args.warmup}), validation + samples every {args.val_every}, "
          f"a point every {args.viz_every}; median of {args.repeats}\n")
    print("| condition | ms / step (median) | range | images / s | vs --viz off | dashboard thread, CPU ms / step |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    reference = statistics.median(times["--viz off"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median * 1000:.0f} | {min(values) * 1000:.0f}–{max(values) * 1000:.0f} | "
              f"{args.batch_size / median:.2f} | {(median / reference - 1) * 100:+.1f} % | "
              f"{statistics.median(thread_cpu[name]) * 1000:.2f} |")
    if args.json:
        args.json.write_text(json.dumps({"device": device, "args": {k: str(v) for k, v in vars(args).items()},
                                         "seconds_per_step": times, "dashboard_thread_cpu_per_step": thread_cpu},
                                        indent=2))


if __name__ == "__main__":
    main()
