#!/usr/bin/env python
"""The GPU check in one command: on a CUDA machine, within --budget_s (default 540 s), in stages that
each have their own timeout, so that one hanging stage cannot eat the rest.

    python benchmarks/gpu_check.py --out $OUT                  # on a lent GPU (bash benchmarks/gpu_check.sh)
    python benchmarks/gpu_check.py --dry_run --out /tmp/check  # on the CPU, every stage in a tiny form (CI)

Stages, in order:
  setup           the packages the check needs import (else: installed from --wheels DIR with
                  `pip install --no-index --find-links DIR`); the GPU is seen; versions are printed
  cuda_tests      the test suite's CUDA-marked tests (`pytest -m cuda`; dry run: their collection)
  torchrun_smoke  train.py under `torchrun --nproc_per_node 1` for a few steps, after the worker has
                  joined an NCCL process group and all-reduced through it (dry run: gloo on the CPU)
  speed_training  benchmarks/speed.py's training rows: 256², batch 4, 16 and 64, fp32 / bf16 / fp16
  speed_inference speed.py's CUDA inference rows (fp32 / fp16 / bf16, each also in channels_last,
                  with the 8-bit level difference to fp32), 256² … 3840×2160, batch 1 and 4, measured
                  by speed.py's own row function; rows are written as they come, so a stage stopped
                  at its timeout keeps what it measured
  speed_compile   the torch.compile rows (speed.py's max-autotune mode), the default generator at
                  256², batch 1, fp32 first; timings only, so not judged: cut short, it keeps its rows
  report          (in this process) the speed stages' rows merged into speed.json and speed.md

speed.py's own command line runs every CPU row (and the memory children) before the CUDA ones and
compiles afresh for every size, batch and layout: minutes of a lent GPU's time on CPU work and
far more than 10 minutes of max-autotune. So the inference stages call its row function
(`speed._inference_row`) for the CUDA rows only, and compile at one size.

Written to --out (default $OUT, else benchmarks/results/gpu_check): gpu_check.log (every stage's
output), summary.json ("ok": every judged stage passed; per stage: status ok / failed / timed_out / skipped,
seconds, timeout, command, output tail), speed.json (speed.py's result format: inference and
training rows, the machine) and speed.md (its markdown tables). Intermediate files go to a temporary folder (--work).
Inputs: the VGG weights, photos and a style image are taken from .device_carry/ (git-ignored: copy
them there and name it in the device tool's `carry`) or ../shared where present; otherwise a
random VGG and generated photos (the dry run always uses those).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CARRY = ROOT / ".device_carry"
SHARED = ROOT.parent / "shared"
TAIL_CHARS = 3000
REPORT_S = 15  # of the budget, kept for merging the speed results at the end
# module → distribution, for what the stages import (onnx/onnxruntime: CPU rows only, not run here)
REQUIRED = {"torch": "torch", "numpy": "numpy", "PIL": "pillow", "tqdm": "tqdm", "pytest": "pytest"}


@dataclass(frozen=True)
class Plan:
    """What each stage runs: the full GPU check or the dry run's tiny forms."""

    dry_run: bool
    device: str
    backend: str  # the smoke run's process group
    smoke_args: tuple[str, ...]  # train.py flags besides the inputs and checkpoint_dir
    train_batches: str
    train_precisions: str
    train_archs: str
    train_steps: int
    sizes: str
    batches: str
    precisions: str
    archs: str
    repeats: int
    compile_backend: str
    compile_archs: str
    compile_sizes: str
    photos: int  # generated photos, where none are given
    photo_size: tuple[int, int]


def gpu_plan() -> Plan:
    """The full check on a lent GPU (~6–8 minutes on an H100/H200)."""
    return Plan(dry_run=False, device="cuda", backend="nccl",
                smoke_args=("--device", "cuda", "--precision", "auto", "--image_size", "256", "--batch_size", "8",
                            "--num_iterations", "20", "--num_workers", "2", "--num_val", "4", "--val_every", "10",
                            "--checkpoint_every", "10", "--log_every", "5"),
                train_batches="4,16,64", train_precisions="fp32,bf16,fp16",
                train_archs="pyramid (width 16),pyramid (paper widths),residual", train_steps=3,
                sizes="256,512,1024,2048,3840x2160", batches="1,4", precisions="fp32,fp16,bf16",
                archs="pyramid,pyramid (paper widths),residual", repeats=5,
                compile_backend="inductor", compile_archs="pyramid", compile_sizes="256",
                photos=96, photo_size=(640, 480))


def dry_plan() -> Plan:
    """Every stage in a tiny form on the CPU, so that the plumbing is tested (CI)."""
    return Plan(dry_run=True, device="cpu", backend="gloo",
                smoke_args=("--device", "cpu", "--precision", "fp32", "--image_size", "32", "--batch_size", "2",
                            "--num_iterations", "2", "--num_scales", "3", "--channels", "4",
                            "--style_layers", "relu1_1,relu2_1", "--content_layers", "relu2_1", "--style_size", "48",
                            "--num_workers", "0", "--num_val", "2", "--val_every", "2", "--checkpoint_every", "0",
                            "--log_every", "1"),
                train_batches="1", train_precisions="fp32", train_archs="pyramid (width 16)", train_steps=1,
                sizes="256", batches="1", precisions="fp32", archs="pyramid", repeats=1,
                compile_backend="eager", compile_archs="pyramid", compile_sizes="256",
                photos=8, photo_size=(320, 256))


@dataclass
class Stage:
    """One command of the check, with its own timeout."""

    name: str
    command: list[str]
    cap_s: float  # its timeout, when the budget allows
    min_s: float = 15.0  # skipped when less than this is left for it
    expect: list[Path] = field(default_factory=list)  # files a successful run must leave
    required: bool = True  # whether the check fails with it (not: timings that may be cut short)


@dataclass
class StageResult:
    """How one stage went, as summary.json records it."""

    name: str
    status: str  # ok | failed | timed_out | skipped
    seconds: float
    timeout_s: float
    returncode: int | None
    command: str
    tail: str
    required: bool = True

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class Inputs:
    """The VGG weights, photos and style image the training stages use."""

    vgg_weights: str
    data_dir: Path
    texture: Path


# ----------------------------------------------------------------------------------------- inputs

def default_input(given: str | None, dry_run: bool, *candidates: Path) -> str | None:
    """The flag's value, else (full check only) the first of `candidates` that exists, else None."""
    if given or dry_run:
        return given
    return next((str(p) for p in candidates if p.exists()), None)


def make_photos(folder: Path, count: int, size: tuple[int, int]) -> Path:
    """`count` photo-like JPEGs (smooth gradients, blobs, noise) in `folder`."""
    import numpy as np
    from PIL import Image
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    width, height = size
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    for i in range(count):
        image = np.stack([0.5 + 0.4 * np.sin(a * x * 6 + b * y * 6 + c) for a, b, c in rng.uniform(-3, 3, (3, 3))], -1)
        for cx, cy, r in rng.uniform((0, 0, 0.05), (1, 1, 0.2), (3, 3)):
            image[(x - cx) ** 2 + (y - cy) ** 2 < r * r] = rng.uniform(0, 1, 3)
        image += rng.normal(0, 0.02, image.shape)
        Image.fromarray((np.clip(image, 0, 1) * 255).astype(np.uint8)).save(folder / f"photo{i:03d}.jpg", quality=90)
    return folder


def make_style(path: Path, size: int = 256) -> Path:
    """A strongly textured style image: diagonal coloured stripes."""
    import numpy as np
    from PIL import Image
    y, x = np.mgrid[0:size, 0:size]
    palette = np.array([[230, 40, 30], [250, 220, 40], [20, 60, 200]], dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(palette[((x + y) // 8) % 3]).save(path)
    return path


def resolve_inputs(args: argparse.Namespace, plan: Plan, work: Path) -> Inputs:
    """The flags' inputs, else (full check only) .device_carry/ or ../shared's, else a random VGG,
    generated photos and a stripes style."""
    vgg = default_input(args.vgg_weights, plan.dry_run, CARRY / "vgg19_caffe_features_fp16.pth",
                        SHARED / "vgg19" / "vgg19_caffe_features_fp16.pth")
    photos = default_input(args.data_dir, plan.dry_run, CARRY / "photos", SHARED / "data" / "coco" / "train2017")
    style = default_input(args.texture, plan.dry_run, CARRY / "mosaic.jpg", SHARED / "data" / "styles" / "mosaic.jpg")
    vgg = str(Path(vgg).resolve()) if vgg and Path(vgg).is_file() else vgg  # the stages run in the repository
    return Inputs(vgg_weights=vgg or "random",
                  data_dir=Path(photos).resolve() if photos else make_photos(work / "photos", plan.photos,
                                                                             plan.photo_size),
                  texture=Path(style).resolve() if style else make_style(work / "stripes.png"))


# ----------------------------------------------------------------------------------------- stages

def plan_stages(plan: Plan, inputs: Inputs, args: argparse.Namespace, work: Path) -> list[Stage]:
    """The stages of the check, in the order they run."""
    return [setup_stage(plan, args.wheels),
            cuda_tests_stage(plan),
            smoke_stage(plan, inputs, work),
            speed_training_stage(plan, inputs, work),
            Stage("speed_inference", inference_command(plan, work / "speed_inference.json", compiled=False),
                  cap_s=200, min_s=30, expect=[work / "speed_inference.json"]),
            Stage("speed_compile", inference_command(plan, work / "speed_compile.json", compiled=True),
                  cap_s=150, min_s=30, expect=[work / "speed_compile.json"], required=False)]


def setup_stage(plan: Plan, wheels: str | None) -> Stage:
    """The imports (installed from `wheels` where missing) and the machine; the full check needs CUDA."""
    command = [sys.executable, str(Path(__file__).resolve()), "worker", "setup"]
    command += (["--wheels", str(Path(wheels).resolve())] if wheels else []) + ([] if plan.dry_run else ["--require_cuda"])
    return Stage("setup", command, cap_s=90, min_s=10)


def cuda_test_files() -> list[str]:
    """The test modules that use the `cuda` marker."""
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_*.py")
                  if "mark.cuda" in p.read_text(encoding="utf-8"))


def cuda_tests_stage(plan: Plan) -> Stage:
    """pytest -m cuda over the modules that have such tests (dry run: collection only)."""
    command = [sys.executable, "-m", "pytest", "-m", "cuda", "-p", "no:cacheprovider", "-q"]
    command += ["--collect-only"] if plan.dry_run else ["-rA"]  # -rA: the measured figures of passed tests too
    return Stage("cuda_tests", command + cuda_test_files(), cap_s=150, min_s=20)


def smoke_stage(plan: Plan, inputs: Inputs, work: Path) -> Stage:
    """train.py under torchrun, one process, inside a process group the worker joins itself."""
    folder = work / "smoke"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1",
               str(Path(__file__).resolve()), "worker", "smoke", "--backend", plan.backend, "--",
               *plan.smoke_args, "--data_dir", str(inputs.data_dir), "--texture", str(inputs.texture),
               "--vgg_weights", inputs.vgg_weights, "--checkpoint_dir", str(folder)]
    return Stage("torchrun_smoke", command, cap_s=120, min_s=20, expect=[folder / f"{inputs.texture.stem}.pt"])


def speed_training_stage(plan: Plan, inputs: Inputs, work: Path) -> Stage:
    """speed.py's training rows through its own command line."""
    output = work / "speed_training.json"
    command = [sys.executable, str(ROOT / "benchmarks" / "speed.py"), "--only", "training",
               "--train_batches", plan.train_batches, "--train_precisions", plan.train_precisions,
               "--train_archs", plan.train_archs, "--train_steps", str(plan.train_steps), "--target_style", "0",
               "--data_dir", str(inputs.data_dir), "--texture", str(inputs.texture),
               "--vgg_weights", inputs.vgg_weights, "--output", str(output)]
    if plan.dry_run:
        command.append("--cpu_only")
    return Stage("speed_training", command, cap_s=180, min_s=30, expect=[output])


def inference_command(plan: Plan, output: Path, compiled: bool) -> list[str]:
    """The inference worker's command: the eager rows, or the compiled ones."""
    command = [sys.executable, str(Path(__file__).resolve()), "worker", "inference", "--device", plan.device,
               "--batches", "1" if compiled else plan.batches, "--precisions", plan.precisions,
               "--repeats", str(plan.repeats), "--output", str(output)]
    if compiled:
        return command + ["--sizes", plan.compile_sizes, "--archs", plan.compile_archs,
                          "--compile", plan.compile_backend]
    return command + ["--sizes", plan.sizes, "--archs", plan.archs]


# ----------------------------------------------------------------------------------------- running

def stage_env() -> dict[str, str]:
    """The environment of every stage: unbuffered output, the repository importable."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path}


def process_tree(pid: int) -> list[tuple[int, str]]:
    """`pid` and every process below it, as (pid, start time) read from /proc: torchrun's workers sit
    in sessions of their own, so a process-group kill would miss them."""
    parents: dict[int, list[tuple[int, str]]] = {}
    start_of: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if entry.name.isdigit():
            start_of[int(entry.name)] = fields[19]
            parents.setdefault(int(fields[1]), []).append((int(entry.name), fields[19]))
    found, queue = [(pid, start_of.get(pid, ""))], [pid]
    while queue:
        for child in parents.get(queue.pop(), []):
            found.append(child)
            queue.append(child[0])
    return found


def alive(pid: int, started: str) -> bool:
    """Whether `pid` is still the process that started at `started`, and not a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return fields[19] == started and fields[0] != "Z"


def signal_tree(tree: list[tuple[int, str]], sig: int) -> None:
    """Send `sig` to the processes of `tree` that are still alive (the same processes)."""
    for pid, started in tree:
        if alive(pid, started):
            try:
                os.kill(pid, sig)
            except OSError:
                pass


def stop(process: subprocess.Popen) -> None:
    """End a stage's process and everything it started: SIGTERM (torchrun passes it on to its
    workers), then SIGKILL for whatever is left 10 s later."""
    tree = process_tree(process.pid)
    signal_tree(tree, signal.SIGTERM)
    deadline = time.perf_counter() + 10
    while time.perf_counter() < deadline and (process.poll() is None or any(alive(*p) for p in tree[1:])):
        time.sleep(0.2)
    signal_tree(tree, signal.SIGKILL)
    process.wait()


def tail(path: Path, chars: int = TAIL_CHARS) -> str:
    """The last `chars` characters of a text file."""
    text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
    return text[-chars:]


def run_stage(stage: Stage, timeout_s: float, log_dir: Path) -> StageResult:
    """Run one stage with its output in log_dir/<name>.log; stopped (with its children) at timeout_s."""
    log = log_dir / f"{stage.name}.log"
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as handle:
        process = subprocess.Popen(stage.command, cwd=ROOT, env=stage_env(), stdout=handle,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            returncode, status = process.wait(timeout=timeout_s), None
        except subprocess.TimeoutExpired:
            stop(process)
            returncode, status = process.returncode, "timed_out"
    missing = [str(p) for p in stage.expect if not p.exists()]
    if status is None:
        status = "ok" if returncode == 0 and not missing else "failed"
    text = tail(log) + (f"\n[gpu_check] missing output: {', '.join(missing)}" if missing and returncode == 0 else "")
    return StageResult(stage.name, status, round(time.perf_counter() - start, 1), round(timeout_s, 1), returncode,
                       shlex.join(stage.command), text, stage.required)


def stage_timeout(stage: Stage, later: list[Stage], deadline: float) -> float:
    """The stage's cap, or less where the budget must still leave each later stage its minimum; but
    never under its own minimum while that much is left (earlier stages come first)."""
    left = deadline - time.perf_counter()
    return min(stage.cap_s, max(left - sum(s.min_s for s in later), stage.min_s), left)


def skipped(stage: Stage, timeout_s: float) -> StageResult:
    return StageResult(stage.name, "skipped", 0.0, round(max(timeout_s, 0), 1), None, shlex.join(stage.command),
                       f"skipped: {max(timeout_s, 0):.0f} s of the budget left for it, "
                       f"under its minimum {stage.min_s:.0f} s",
                       stage.required)


def run_all(stages: list[Stage], deadline: float, work: Path, out: Path, summary: dict,
            start: float) -> list[StageResult]:
    """Run the stages in order, each ended by `deadline` (a perf_counter time), appending each one's
    output to gpu_check.log and rewriting summary.json after each (so a check cut short leaves one)."""
    results: list[StageResult] = []
    for i, stage in enumerate(stages):
        timeout = stage_timeout(stage, stages[i + 1:], deadline)
        print(f"== {stage.name} (timeout {max(timeout, 0):.0f} s): {shlex.join(stage.command)}", flush=True)
        result = run_stage(stage, timeout, work) if timeout >= stage.min_s else skipped(stage, timeout)
        results.append(result)
        append_log(out / "gpu_check.log", result, work / f"{stage.name}.log")
        print(f"   {result.status} in {result.seconds:.1f} s\n" + indent(result.tail[-1200:]), flush=True)
        write_summary(out, summary, results, start)
    return results


def indent(text: str) -> str:
    return "\n".join("   | " + line for line in text.rstrip().splitlines())


def append_log(log: Path, result: StageResult, stage_log: Path) -> None:
    """A stage's whole output, under a header, in the check's log."""
    with open(log, "a", encoding="utf-8") as handle:
        handle.write(f"\n===== {result.name}: {result.status} in {result.seconds} s (timeout {result.timeout_s} s, "
                     f"exit {result.returncode})\n$ {result.command}\n")
        handle.write(stage_log.read_text(encoding="utf-8", errors="replace") if stage_log.exists() else result.tail)


def passed(results: list[StageResult]) -> bool:
    """Whether every required stage passed (the others are reported, not judged)."""
    return bool(results) and all(r.ok for r in results if r.required)


def write_summary(out: Path, summary: dict, results: list[StageResult], start: float) -> None:
    """summary.json: the run's settings and each stage's result so far (`start`: the check's start)."""
    stages = [{**asdict(r), "ok": r.ok} for r in results]
    data = {**summary, "ok": passed(results), "stages": stages,
            "wall_s": round(time.perf_counter() - start, 1)}
    (out / "summary.json").write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


# ----------------------------------------------------------------------------------------- report

def merge_speed(work: Path, out: Path) -> StageResult:
    """speed.json (speed.py's format: machine, inference and training rows) and speed.md from the
    speed stages' files, in this process."""
    start = time.perf_counter()
    parts = {name: json.loads(path.read_text()) for name in ("training", "inference", "compile")
             if (path := work / f"speed_{name}.json").is_file()}
    merged = {"machine": next((p["machine"] for p in parts.values()), {}), "command": shlex.join(sys.argv),
              "settings": {name: part.get("settings") for name, part in parts.items()},
              "inference": [row for name in ("inference", "compile")
                            for row in parts.get(name, {}).get("inference", [])],
              "training": parts.get("training", {}).get("training", []), "convergence": [],
              "errors": [e for part in parts.values() for e in part.get("errors", [])]}
    (out / "speed.json").write_text(json.dumps(merged, indent=1) + "\n", encoding="utf-8")
    try:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        import speed
        text = speed.markdown(merged) + "\n"
        status = "ok" if parts else "failed"
    except Exception as exc:  # noqa: BLE001 — the tables are a convenience; the JSON is written
        text, status = f"markdown failed: {exc.__class__.__name__}: {exc}\n", "failed"
    (out / "speed.md").write_text(text, encoding="utf-8")
    counts = f"speed.json: {len(merged['inference'])} inference rows, {len(merged['training'])} training rows, " \
             f"{len(merged['errors'])} errors, from {', '.join(parts) or 'no stage'}\n"
    return StageResult("report", status, round(time.perf_counter() - start, 1), 0.0, None, "(in process)",
                       (counts + text)[-TAIL_CHARS:])


# ----------------------------------------------------------------------------------------- workers

def missing_modules() -> list[str]:
    """The modules of REQUIRED that this interpreter cannot import."""
    import importlib.util
    return [module for module in REQUIRED if importlib.util.find_spec(module) is None]


def setup_worker(argv: list[str]) -> int:
    """Check the imports (installing the missing ones from --wheels) and print the versions and GPU."""
    import importlib
    parser = argparse.ArgumentParser(prog="gpu_check.py worker setup")
    parser.add_argument("--wheels", help="folder of wheels for `pip install --no-index --find-links`")
    parser.add_argument("--require_cuda", action="store_true")
    args = parser.parse_args(argv)
    for module in missing_modules() if args.wheels else []:  # one at a time: one missing wheel stops no other
        command = [sys.executable, "-m", "pip", "install", "--no-index", "--find-links", args.wheels, REQUIRED[module]]
        print("$", shlex.join(command), flush=True)
        subprocess.run(command, check=False)
    importlib.invalidate_caches()
    if missing_modules():
        print(f"missing: {', '.join(REQUIRED[m] for m in missing_modules())} (give --wheels DIR)")
        return 1
    print("imports: ok (" + ", ".join(REQUIRED.values()) + ")")
    return describe_machine(args.require_cuda)


def describe_machine(require_cuda: bool) -> int:
    """Print Python, PyTorch and the GPU; 1 where CUDA is required but absent."""
    import torch
    import torch.distributed as dist
    print(f"python {sys.version.split()[0]} ({sys.executable}), torch {torch.__version__}, cuda {torch.version.cuda}")
    if not torch.cuda.is_available():
        print("CUDA: not available" + (" — this check needs a GPU (or --dry_run)" if require_cuda else ""))
        return 1 if require_cuda else 0
    props = torch.cuda.get_device_properties(0)
    print(f"GPU: {props.name}, {props.total_memory / 2**30:.1f} GiB, capability {props.major}.{props.minor}, "
          f"{torch.cuda.device_count()} device(s); nccl: {dist.is_nccl_available()}, "
          f"cudnn {torch.backends.cudnn.version()}, bf16: {torch.cuda.is_bf16_supported()}")
    return 0


def smoke_worker(argv: list[str]) -> int:
    """Under torchrun: join a process group, all-reduce through it and run one DDP backward, then
    train.py with the flags after `--` (the trainer finds the group joined and keeps it)."""
    import datetime

    import torch
    import torch.distributed as dist

    from texture_nets.cli import train_main
    parser = argparse.ArgumentParser(prog="gpu_check.py worker smoke")
    parser.add_argument("--backend", choices=("nccl", "gloo"), default="nccl")
    split = argv.index("--") if "--" in argv else len(argv)
    args, train_argv = parser.parse_args(argv[:split]), argv[split + 1:]
    rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    device = torch.device("cuda", local_rank) if args.backend == "nccl" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(args.backend, timeout=datetime.timedelta(seconds=60))
    try:
        check_collectives(device, local_rank)
        print(f"rank {rank}: {args.backend} process group of {dist.get_world_size()}: all_reduce and DDP ok",
              flush=True)
        return train_main(train_argv)
    finally:
        dist.destroy_process_group()


def check_collectives(device, local_rank: int) -> None:
    """An all_reduce, and one DistributedDataParallel forward/backward (its gradient all-reduce)."""
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    value = torch.full((4,), float(dist.get_rank() + 1), device=device)
    dist.all_reduce(value)
    expected = dist.get_world_size() * (dist.get_world_size() + 1) / 2
    if not torch.allclose(value, torch.full_like(value, expected)):
        raise RuntimeError(f"all_reduce gave {value.tolist()}, expected {expected}")
    model = DistributedDataParallel(torch.nn.Linear(8, 8).to(device),
                                    device_ids=[local_rank] if device.type == "cuda" else None)
    model(torch.ones(2, 8, device=device)).sum().backward()
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def inference_worker(argv: list[str]) -> int:
    """speed.py's inference rows on one device through its row function (`_inference_row`), each
    (generator, precision, size, batch) in turn; the JSON is rewritten after every row. Running out
    of memory ends a row with an entry in `errors`, not the stage."""
    import torch
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import speed
    parser = argparse.ArgumentParser(prog="gpu_check.py worker inference")
    for name in ("device", "sizes", "batches", "precisions", "archs", "output"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--compile", choices=("none", "inductor", "eager"), default="none")
    args = parser.parse_args(argv)
    results = {"machine": speed.machine(), "command": shlex.join(sys.argv), "settings": vars(args),
               "inference": [], "errors": []}
    nets = speed.architectures()
    for name in args.archs.split(","):
        params, megabytes = speed.parameter_summary(nets[name])
        for precision in args.precisions.split(","):
            label = precision + ("" if args.compile == "none" else " compile")
            make_engine = engine_factory(nets[name], args.device, precision, args.compile)
            for size in args.sizes.split(","):
                height, width = speed.SIZES[size]
                for batch in map(int, args.batches.split(",")):
                    try:
                        results["inference"] += speed._inference_row(name, params, megabytes, args.device, label,
                                                                     make_engine, height, width, batch, args)
                    except torch.OutOfMemoryError as exc:
                        results["errors"].append({"arch": name, "engine": label, "size": size, "batch": batch,
                                                  "error": f"out of memory: {str(exc)[:200]}"})
                        print(f"  {name} {label} {size} b{batch}: out of memory", flush=True)
                        torch.cuda.empty_cache()
                    Path(args.output).write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    Path(args.output).write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return 0


def engine_factory(net, device: str, precision: str, compile_backend: str):
    """A function making a fresh engine as speed.py does: prepare_generator (PyTorch), then
    torch.compile in speed.py's mode (inductor) or tracing only (eager: the dry run's stand-in)."""
    import torch

    from texture_nets.inference.engine import prepare_generator

    def make():
        engine = prepare_generator(net, device, engine="torch", precision=precision)
        if compile_backend == "inductor":
            return torch.compile(engine, mode="max-autotune-no-cudagraphs")
        return torch.compile(engine, backend="eager") if compile_backend == "eager" else engine
    return make


WORKERS = {"setup": setup_worker, "smoke": smoke_worker, "inference": inference_worker}


# ----------------------------------------------------------------------------------------- main

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.environ.get("OUT") or str(ROOT / "benchmarks" / "results" / "gpu_check"),
                        help="where the log, summary.json, speed.json and speed.md go (default: $OUT)")
    parser.add_argument("--work", help="intermediate files (default: a temporary folder, removed afterwards)")
    parser.add_argument("--budget_s", type=float, default=540, help="the whole check's time limit in seconds")
    parser.add_argument("--dry_run", action="store_true", help="on the CPU, every stage in a tiny form")
    parser.add_argument("--wheels", help="folder of wheels to install what does not import (pip --no-index)")
    parser.add_argument("--vgg_weights", help="VGG-19 state_dict file (default: .device_carry/ or ../shared, "
                                              "else random)")
    parser.add_argument("--data_dir", help="training photos (default: .device_carry/photos or ../shared's COCO, "
                                           "else generated ones)")
    parser.add_argument("--texture", help="style image (default: .device_carry/mosaic.jpg or ../shared's, "
                                          "else stripes)")
    parser.add_argument("--skip", default="", help="comma-separated stages to leave out")
    return parser.parse_args(argv)


def check(args: argparse.Namespace, work: Path) -> int:
    """Run the check into args.out; 0 when every stage passed."""
    start = time.perf_counter()
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.log").write_text(f"$ {shlex.join(sys.argv)}\n", encoding="utf-8")
    plan = dry_plan() if args.dry_run else gpu_plan()
    inputs = resolve_inputs(args, plan, work)
    stages = [s for s in plan_stages(plan, inputs, args, work) if s.name not in args.skip.split(",")]
    summary = {"mode": "dry_run" if plan.dry_run else "gpu",
               "command": shlex.join(sys.argv), "budget_s": args.budget_s,
               "inputs": {k: str(v) for k, v in asdict(inputs).items()}, "plan": asdict(plan)}
    print(f"gpu_check ({summary['mode']}): {len(stages)} stages within {args.budget_s:.0f} s; "
          f"inputs {summary['inputs']}", flush=True)
    deadline = start + args.budget_s - REPORT_S
    results = run_all(stages, deadline, work, out, summary, start)
    results.append(merge_speed(work, out))
    write_summary(out, summary, results, start)
    print("\n".join(f"{r.name:16s} {r.status:9s} {r.seconds:7.1f} s{'' if r.required else '  (not judged)'}"
                    for r in results))
    print(f"{'ok' if passed(results) else 'FAILED'} in {time.perf_counter() - start:.0f} s: {out / 'summary.json'}")
    return 0 if passed(results) else 1


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["worker"]:
        return WORKERS[argv[1]](argv[2:])
    args = parse_args(argv)
    if args.work:
        Path(args.work).mkdir(parents=True, exist_ok=True)
        return check(args, Path(args.work))
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as work:
        return check(args, Path(work))


if __name__ == "__main__":
    sys.exit(main())
