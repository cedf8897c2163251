"""Multi-process training on PyTorch's distributed engine: `torchrun` + DistributedDataParallel.

One process per GPU (nccl), or several processes on the CPU (gloo). `batch_size` stays the GLOBAL
batch: rank r of W trains on the r-th contiguous slice (batch_size / W photos) of every global batch,
drawn from the one global stream of photos, crops and noise that a single process would see (all
functions of the seed and the global position or step). The losses are per-image means (the content
loss's normaliser is averaged over the global batch, see `PerceptualLoss.forward`) and instance norm
is per sample, so DDP's gradient average equals one process's gradient and W processes follow the
same trajectory as one, up to float rounding. A resume checkpoint holds nothing per-rank, so a run
resumes on any number of processes.

What happens when something goes wrong: an error or Ctrl-C on one rank ends that process; torchrun
then stops the others (a peer that died also breaks gloo's connections at once). A rank left
waiting in a collective for a peer that stopped answering fails after `timeout_s` instead of hanging
forever (gloo raises; nccl's watchdog aborts the process). On Ctrl-C every process gets the signal
and rank 0 writes the usual interrupt checkpoint of the last completed step (every rank holds the
same weights and optimizer state, so rank 0's is the run's). A SIGTERM sent to torchrun alone (a job
scheduler's, say) is passed on to the workers and ends them without one: the last periodic
checkpoint remains.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from texture_nets.core.errors import TextureNetsError

if torch.distributed.is_available():
    # torch.distributed.nn is imported now, before any process group exists: its functions take
    # `group=group.WORLD` as a default argument, evaluated once, at import. Imported later (DDP's
    # first use does, through torch._dynamo), they would hold the default group for the life of the
    # interpreter, and destroy_process_group() would not end it. Gloo stops and joins its threads
    # only when the group is freed (its shutdown() does nothing), and a gloo worker thread still
    # running at exit may be releasing a finished collective's tensor, which takes the GIL: if the
    # interpreter is finalizing by then, that ends the thread inside a C++ destructor and the process
    # aborts ("terminate called without an active exception", SIGABRT) after a run that succeeded.
    import torch.distributed.nn  # noqa: F401


@dataclass(frozen=True)
class DistributedContext:
    """This process's place in a run: rank r of world_size processes, on GPU local_rank of its node.

    The default is a single process. `from_env` reads what torchrun sets (the CLI does this, at the
    edge; the library never reads the environment itself).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    init_method: str = "env://"  # torchrun's rendezvous (MASTER_ADDR/MASTER_PORT); tcp://host:port also works
    timeout_s: float = 600.0  # a collective waiting this long for a peer fails instead of hanging

    def __post_init__(self) -> None:
        if self.world_size < 1 or not 0 <= self.rank < self.world_size or self.local_rank < 0:
            raise TextureNetsError(f"invalid process placement: rank {self.rank} of {self.world_size} "
                                   f"(local rank {self.local_rank})")

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> "DistributedContext":
        """The context torchrun describes in RANK / WORLD_SIZE / LOCAL_RANK; one process without them."""
        if "WORLD_SIZE" not in environ:
            return cls()
        try:
            world_size = int(environ["WORLD_SIZE"])
            rank = int(environ["RANK"])
            local_rank = int(environ.get("LOCAL_RANK", rank))
        except (KeyError, ValueError) as exc:
            raise TextureNetsError(f"WORLD_SIZE is set but RANK/LOCAL_RANK are missing or not numbers "
                                   f"({exc}): launch multi-process training with torchrun") from exc
        return cls(rank=rank, world_size=world_size, local_rank=local_rank)

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that logs, shows progress, drives the dashboard and writes files."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    def local_batch(self, batch_size: int) -> int:
        """Photos per step of this process: batch_size / world_size, or a clear error."""
        if batch_size % self.world_size:
            raise TextureNetsError(f"batch_size {batch_size} does not divide among {self.world_size} processes "
                                   f"(batch_size is the global batch): use a multiple of {self.world_size}")
        return batch_size // self.world_size

    def shard(self, batch_size: int) -> slice:
        """This process's contiguous slice of a global batch of `batch_size`."""
        local = self.local_batch(batch_size)
        return slice(self.rank * local, (self.rank + 1) * local)

    def device(self, device: torch.device) -> torch.device:
        """The run's device for this process: CUDA → this node's GPU `local_rank` (made current)."""
        if device.type != "cuda" or not self.is_distributed:
            return device
        if self.local_rank >= torch.cuda.device_count():
            raise TextureNetsError(f"local rank {self.local_rank} has no GPU: this node has "
                                   f"{torch.cuda.device_count()}; lower --nproc_per_node")
        torch.cuda.set_device(self.local_rank)
        return torch.device("cuda", self.local_rank)

    @contextmanager
    def process_group(self, device: torch.device) -> Iterator[None]:
        """Join the process group for the run's duration (nccl on CUDA, gloo on the CPU), unless one
        process only or the caller has already joined one; leave it afterwards if it was joined here
        (the group and its threads are gone when this returns, unless something else still holds it)."""
        if not self.is_distributed or dist.is_initialized():
            yield
            return
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method=self.init_method,
                                rank=self.rank, world_size=self.world_size,
                                timeout=datetime.timedelta(seconds=self.timeout_s))
        try:
            yield
        finally:
            dist.destroy_process_group()

    def wrap(self, model: nn.Module) -> nn.Module:
        """`model` in DistributedDataParallel (gradients averaged over the processes); as is in one process."""
        if not self.is_distributed:
            return model
        on_cuda = next(model.parameters()).device.type == "cuda"
        return DistributedDataParallel(model, device_ids=[self.local_rank] if on_cuda else None)

    def mean(self, tensor: torch.Tensor) -> torch.Tensor:
        """The mean of `tensor` over the processes (a collective: every process must call it)."""
        if not self.is_distributed:
            return tensor
        total = tensor.detach().clone()
        dist.all_reduce(total)
        return total / self.world_size

    def sum_floats(self, values: list[float], device: torch.device) -> list[float]:
        """Element-wise sums over the processes, in float64 (a collective; one host sync)."""
        if not self.is_distributed:
            return list(values)
        total = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(total)
        return total.tolist()

    def gather_lists(self, items: list) -> list:
        """All processes' `items`, concatenated in rank order (a collective of picklable objects)."""
        if not self.is_distributed:
            return list(items)
        gathered: list = [None] * self.world_size
        dist.all_gather_object(gathered, list(items))
        return [item for part in gathered for item in part]
