"""Multi-process training: torchrun with 2 CPU processes (gloo) against one process, same global batch.

Tolerances. Two processes see the same photos, noise and weights as one; only the order of float
sums differs (batch halves reduced separately, gradients averaged by gloo). Measured on this config
(10 steps): losses agree to <= 2e-7 relative at every step, the weights to 1e-5, the outputs to 2e-6.
The learning rate is 1e-3 because Adam amplifies rounding (it divides each gradient by its own
size): at 1e-2 even two one-process runs that differ only in their thread count drift apart by up
to 5e-3 within 10 steps. The biases of the convolutions and norms that feed an instance norm are
left out of the weight comparison: the norm removes the channel mean, so their true gradient is 0
and Adam moves them by about ±learning_rate on rounding noise alone (up to 3e-3 here); they cannot
change the output, which is compared instead. The one-process references run in 2 threads, whatever
the caller's OMP_NUM_THREADS: PyTorch's CPU kernels then split a batch of 4 into the same halves as
the 2 ranks do, so the float sums are grouped alike. In 1 thread they are not, and rounding alone
moves a 10-step run by 5e-5 in its losses, 2.4e-4 in its weights and 4.5e-3 in its outputs, beyond
the tolerances. On a CPU without AVX-512 (an AVX2-only AMD EPYC) the
kernels do not group the sums like the ranks even in 2 threads: 10 steps then differ by up to 2.4e-4
in the weights and 4.4e-3 in the outputs, the losses still within 5e-6. The tolerances (1e-5 for the
first step's losses, 1e-4 for all others, 1e-3 for weights, 1e-2 for outputs) sit far from both
sides where it matters: the mistakes they are there to catch, measured by planting them one at a
time (each rank normalising the content loss by its own half batch; no gradient averaging; both
ranks taking the same photos, or the same noise; rank 0 reporting its own losses), move the losses by
2e-4 to 2e-2 at the first or second step, and the weights by 5e-3 to 1e-2; the outputs, which
amplify any weight difference, are a coarse check beside those two.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from texture_nets import TextureNetsError, load_checkpoint, load_generator
from texture_nets.cli import train_main
from texture_nets.training.config import make_config
from texture_nets.training.data import EpochSampler, ShardedSampler
from texture_nets.training.distributed import DistributedContext
from texture_nets.training.run import load_resume, run_training

from .conftest import as_argv, smooth_image, stripes_image, tiny_overrides

ROOT = Path(__file__).resolve().parent.parent
STEPS, MORE_STEPS = 6, 10
FIRST_STEP_RTOL, LOSS_RTOL, WEIGHT_ATOL, OUTPUT_ATOL = 1e-5, 1e-4, 1e-3, 1e-2
# weights whose true gradient is 0: biases of the convolutions and join norms that feed an instance norm
NULL_SPACE = re.compile(r"(branches|join_blocks)\.\d+\.[036]\.bias|join_norms\.\d+\.(coarse|fine)\.bias")

# train.py under torchrun, recording what this rank creates, renames or opens for writing below a folder
WORKER = '''
import json, os, sys
from texture_nets.cli import train_main

watched, record, argv = os.path.abspath(sys.argv[1]), sys.argv[2], sys.argv[3:]
written = []

def audit(event, args):
    if event == "open" and not isinstance(args[0], int) and args[2] & (os.O_WRONLY | os.O_RDWR):
        paths = [args[0]]
    elif event in ("os.rename", "os.mkdir"):
        paths = [args[0], args[1]] if event == "os.rename" else [args[0]]
    else:
        return
    paths = [os.path.abspath(os.fsdecode(p)) for p in paths]
    written.extend(p for p in paths if p.startswith(watched + os.sep))

sys.addaudithook(audit)
code = train_main(argv)
# the threads still alive once training returned (Linux): gloo's must be gone with the process group
tasks = "/proc/self/task"
threads = sorted(open(f"{tasks}/{t}/comm").read().strip() for t in os.listdir(tasks)) if os.path.isdir(tasks) else None
with open(os.path.join(record, f"rank{os.environ['RANK']}.json"), "w") as handle:
    json.dump({"written": written, "threads": threads}, handle)
sys.exit(code)
'''

# A gloo worker thread still releasing a finished collective when the interpreter finalizes, made
# certain: rank 1 starts an all_reduce asynchronously and drops its handles, so the tensor's Python
# object is left to the C++ work; rank 0 joins a second later, so rank 1's worker thread completes the
# work, and must take the GIL to free that object, while rank 1's main thread holds the GIL in its last
# exit handler (a C call: it never yields it) and then finalizes. A worker thread that gets the GIL
# then is ended inside a C++ destructor: "terminate called without an active exception", SIGABRT.
# Unless the process group is really gone when `process_group` returns, its threads joined.
EXIT_RACE = '''
import atexit, time
start = time.perf_counter()
sum(range(10 ** 6))
atexit.register(sum, range(int(2.5 * 10 ** 6 / (time.perf_counter() - start))))  # first in, last out: ~2.5 s
import os, torch
import torch.distributed as dist
from texture_nets.training.distributed import DistributedContext

ctx = DistributedContext.from_env(os.environ)
with ctx.process_group(torch.device("cpu")):
    ctx.wrap(torch.nn.Linear(3, 3))  # DDP, as in training
    tensor = torch.ones(1000)
    if ctx.rank == 0:
        time.sleep(1)
        dist.all_reduce(tensor)
    else:
        work = dist.all_reduce(tensor, async_op=True)
        del tensor, work
print(f"rank {ctx.rank} done")
'''


def quiet(*_):
    pass


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Photos, a style image and the settings shared by every run of this module."""
    root = tmp_path_factory.mktemp("distributed")
    rng = np.random.default_rng(0)
    (root / "photos").mkdir()
    for i in range(10):
        smooth_image(rng, 40 + 4 * i, 36 + 3 * i).save(root / "photos" / f"img{i}.png")
    stripes_image(48).save(root / "stripes.png")
    # a constant rate, so a run stopped at STEPS and resumed to MORE_STEPS equals one run to MORE_STEPS;
    # noise_factor 1 makes the noise matter, so that giving a sample the wrong noise shows; fp32, which
    # the tolerances are measured for ('auto' is bf16 on a CPU with AMX, where 2 vs 1 process differ by ~1e-4)
    values = tiny_overrides(root / "photos", root / "stripes.png", root / "unused", batch_size=4, num_val=2,
                            val_every=3, viz_every=1, checkpoint_every=0, lr_schedule="constant",
                            noise_factor=1.0, learning_rate=1e-3, num_iterations=STEPS, precision="fp32")
    return root, values


def torchrun(args: list[str], root: Path, name: str, script: str | None = None) -> dict:
    """Run `script` (default train.py) in 2 processes with the venv's torchrun, as a user would;
    each rank's stdout and stderr (torchrun writes them to files under --log-dir)."""
    logs = root / f"logs_{name}"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "--log-dir", str(logs), "--redirects", "3", script or str(ROOT / "train.py"), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # torchrun's default, set here to spare its notice
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    outputs = {rank: {stream: "".join(p.read_text() for p in logs.glob(f"*/attempt_0/{rank}/{stream}.log"))
                      for stream in ("stdout", "stderr")} for rank in (0, 1)}
    assert done.returncode == 0, f"torchrun: {done.stderr[-3000:]}\nworkers: {outputs}"
    assert not any("terminate called" in output["stderr"] for output in outputs.values()), outputs
    return outputs


@pytest.fixture(scope="module", autouse=True)
def two_threads():
    """The in-process runs in 2 threads, summing a batch in the halves the 2 ranks do (see above)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def two_processes(setup):
    """A 2-process run of STEPS steps through train.py's code under torchrun, writes recorded."""
    root, values = setup
    script = root / "worker.py"
    script.write_text(WORKER)
    (root / "records").mkdir()
    outputs = torchrun([str(root / "two"), str(root / "records"), *as_argv(
        {**values, "checkpoint_dir": str(root / "two")})], root, "two", str(script))
    records = {rank: json.loads((root / "records" / f"rank{rank}.json").read_text()) for rank in (0, 1)}
    return root / "two", outputs, records


@pytest.fixture(scope="module")
def one_process(setup):
    """One-process runs (in this process) of STEPS and of MORE_STEPS steps: the references."""
    root, values = setup
    short = run_training(make_config({}, {**values, "checkpoint_dir": str(root / "one")}), log=quiet)
    long = run_training(make_config({}, {**values, "checkpoint_dir": str(root / "one_long"),
                                         "num_iterations": MORE_STEPS}), log=quiet)
    return short, long


def history(resume_checkpoint: Path) -> dict:
    return load_checkpoint(resume_checkpoint)["resume"]["history"]


def assert_same_trajectory(reference: dict, other: dict, steps: int) -> float:
    """Every logged loss at every step agrees within LOSS_RTOL (the first within FIRST_STEP_RTOL);
    returns the largest relative difference."""
    worst = 0.0
    for name in ("train/total", "train/content", "train/style", "train/output_tv", "val/total", "val/content"):
        a, b = np.array(reference[name]), np.array(other[name])
        assert a[:, 0].tolist() == b[:, 0].tolist(), name  # the same steps were logged
        relative = np.abs(a[:, 1] - b[:, 1]) / np.abs(a[:, 1]).clip(1e-12)
        if name.startswith("train/"):
            assert a[-1, 0] == steps and relative[0] < FIRST_STEP_RTOL, (name, relative)
        assert relative.max() < LOSS_RTOL, (name, relative)
        worst = max(worst, float(relative.max()))
    return worst


def assert_same_generator(reference: Path, other: Path) -> tuple[float, float]:
    """The weights agree (but for those whose gradient is 0, see the module docstring) and so do
    the outputs on fixed photos and noise; returns (max weight difference, max output difference)."""
    a, b = load_checkpoint(reference)["state_dict"], load_checkpoint(other)["state_dict"]
    weights = max((a[k] - b[k]).abs().max().item() for k in a if not NULL_SPACE.fullmatch(k))
    assert weights < WEIGHT_ATOL, weights
    photos = torch.rand(3, 3, 40, 40, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        outputs = [load_generator(path)(photos, generator=torch.Generator().manual_seed(2))
                   for path in (reference, other)]
    difference = (outputs[0] - outputs[1]).abs().max().item()
    assert difference < OUTPUT_ATOL, difference
    return weights, difference


def test_two_processes_follow_the_one_process_trajectory(two_processes, one_process):
    folder, _, _ = two_processes
    short, _ = one_process
    worst = assert_same_trajectory(short.history.state_dict(), history(folder / "stripes.resume.pt"), STEPS)
    weights, outputs = assert_same_generator(short.checkpoint, folder / "stripes.pt")
    print(f"2 vs 1 process: loss rel. diff {worst:.1e}, weights {weights:.1e}, outputs {outputs:.1e}")


def test_resume_in_one_process_after_two(two_processes, one_process, setup):
    """2 processes to STEPS, then 1 process to MORE_STEPS == 1 process all the way."""
    folder, _, _ = two_processes
    root, values = setup
    _, long = one_process
    config = make_config({}, {**values, "checkpoint_dir": str(root / "two_then_one"), "num_iterations": MORE_STEPS})
    resumed = run_training(config, resume=load_resume(folder / "stripes.resume.pt"), log=quiet)
    assert load_checkpoint(resumed.checkpoint)["step"] == MORE_STEPS
    worst = assert_same_trajectory(long.history.state_dict(), resumed.history.state_dict(), MORE_STEPS)
    weights, outputs = assert_same_generator(long.checkpoint, resumed.checkpoint)
    print(f"2 then 1 process vs 1: loss rel. diff {worst:.1e}, weights {weights:.1e}, outputs {outputs:.1e}")


def test_resume_in_two_processes_after_one(one_process, setup):
    """1 process to STEPS, then 2 processes (train.py --resume under torchrun) to MORE_STEPS."""
    root, _ = setup
    short, long = one_process
    torchrun(["--resume", str(short.resume_checkpoint), "--num_iterations", str(MORE_STEPS),
              "--checkpoint_dir", str(root / "one_then_two")], root, "one_then_two")
    folder = root / "one_then_two"
    assert load_checkpoint(folder / "stripes.pt")["step"] == MORE_STEPS
    worst = assert_same_trajectory(long.history.state_dict(), history(folder / "stripes.resume.pt"), MORE_STEPS)
    weights, outputs = assert_same_generator(long.checkpoint, folder / "stripes.pt")
    print(f"1 then 2 processes vs 1: loss rel. diff {worst:.1e}, weights {weights:.1e}, outputs {outputs:.1e}")


def test_only_rank_0_writes_logs_and_shows_progress(two_processes):
    folder, outputs, records = two_processes
    assert sorted(p.name for p in folder.iterdir()) == ["stripes.pt", "stripes.resume.pt", "stripes.toml"]
    assert records[1]["written"] == []  # rank 1 created, renamed and opened for writing nothing in the checkpoint folder
    assert {Path(p).name for p in records[0]["written"]} >= {"stripes.pt", "stripes.resume.pt", "stripes.toml"}
    assert outputs[1] == {"stdout": "", "stderr": ""}  # no progress bar, no log line, no warning
    assert f"{STEPS}/{STEPS}" in outputs[0]["stderr"] and "validation total" in outputs[0]["stdout"]
    assert outputs[0]["stdout"].strip().splitlines()[-1].startswith("saved ")


def test_the_process_group_and_its_threads_are_gone_when_training_returns(two_processes):
    """What keeps an exit clean: no gloo thread outlives the run (it could still need the GIL while
    the interpreter finalizes, see EXIT_RACE)."""
    _, _, records = two_processes
    for rank in (0, 1):
        threads = records[rank]["threads"]
        if threads is None:
            pytest.skip("no /proc/self/task here to list a process's threads")
        assert not [name for name in threads if "gloo" in name], (rank, threads)


def test_a_collective_released_late_does_not_abort_the_exit(setup):
    """A run that succeeded exits 0 even when a gloo worker thread finishes a collective as the
    interpreter finalizes (made certain here; by chance, under load, in real runs)."""
    root, _ = setup
    script = root / "exit_race.py"
    script.write_text(EXIT_RACE)
    outputs = torchrun([], root, "exit_race", str(script))  # exit status 0, no "terminate called"
    assert [outputs[rank]["stdout"].strip() for rank in (0, 1)] == ["rank 0 done", "rank 1 done"]


@pytest.mark.parametrize("rank", [0, 1])
def test_a_batch_that_does_not_divide_among_the_processes_is_one_line_from_rank_0(setup, monkeypatch, capsys,
                                                                                rank):
    root, values = setup
    for name, value in {"WORLD_SIZE": "2", "RANK": str(rank), "LOCAL_RANK": str(rank)}.items():
        monkeypatch.setenv(name, value)  # what torchrun sets; the error comes before any process group
    argv = as_argv({**values, "batch_size": 3, "checkpoint_dir": str(root / f"odd{rank}")})
    assert train_main(argv) == 2
    out = capsys.readouterr()
    if rank == 0:
        assert out.out == "" and out.err.count("\n") == 1
        assert "batch_size 3 does not divide among 2 processes" in out.err and out.err.startswith("train.py: error:")
    else:
        assert out.out == out.err == ""
    assert not (root / f"odd{rank}").exists()


def test_each_rank_takes_its_slice_of_the_global_stream():
    """The sampler: ranks' shares interleave back into the one-process stream, from any start."""
    for start in (0, 8, 12):
        whole = EpochSampler(5, seed=3, start=start)
        expected = [item for item, _ in zip(whole, range(24))]
        shares = [[item for item, _ in zip(ShardedSampler(EpochSampler(5, 3, start), 4, rank, 2), range(12))]
                  for rank in (0, 1)]
        rebuilt = [item for batch in range(6) for rank in (0, 1) for item in shares[rank][2 * batch:2 * batch + 2]]
        assert rebuilt == expected
    with pytest.raises(TextureNetsError):
        ShardedSampler(EpochSampler(5, 0), 3, 0, 2)


def test_each_rank_gets_its_slice_of_the_global_noise(style_path, tmp_path):
    """Texture mode: rank r's samples are the one-process run's samples r*b … (r+1)*b-1."""
    from texture_nets.core.pyramid import GeneratorConfig, TextureNetwork
    from texture_nets.training.loop import Trainer
    config = make_config({}, tiny_overrides(None, style_path, tmp_path, data_dir="", mode="texture", batch_size=4))
    torch.manual_seed(0)
    net = TextureNetwork(GeneratorConfig(num_scales=3, channels=4, texture_only=True))
    outputs = []
    for rank, world_size in ((0, 1), (0, 2), (1, 2)):
        trainer = Trainer(net, None, None, config, torch.device("cpu"), dist=DistributedContext(rank, world_size))
        noise = trainer._step_noise(5)
        with torch.no_grad():
            outputs.append(trainer._generate(None, len(noise[0]), noise))
    assert outputs[1].shape == (2, 3, 32, 32)
    torch.testing.assert_close(torch.cat(outputs[1:]), outputs[0], rtol=0, atol=1e-6)


def test_the_context_comes_from_torchruns_environment():
    assert DistributedContext.from_env({}) == DistributedContext()
    ctx = DistributedContext.from_env({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"})
    assert (ctx.rank, ctx.world_size, ctx.local_rank, ctx.is_main, ctx.is_distributed) == (3, 4, 1, False, True)
    assert ctx.shard(8) == slice(6, 8)
    with pytest.raises(TextureNetsError, match="torchrun"):
        DistributedContext.from_env({"WORLD_SIZE": "2"})
    with pytest.raises(TextureNetsError, match="rank 2 of 2"):
        DistributedContext(rank=2, world_size=2)
