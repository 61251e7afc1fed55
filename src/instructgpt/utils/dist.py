"""torch.distributed under torchrun: the process group, who this process is, and the few
collectives the stages need. Without torchrun (no WORLD_SIZE > 1 in the environment) every
function is the 1-process answer and nothing is initialised.

Conventions every stage follows:
- a step's global batch is `batch_size x grad_accum x world_size`; the step's micro-batches are
  numbered 0..grad_accum*world-1 and rank r builds those with index = r (mod world): `local(n)`;
- rank 0 writes logs, metrics, checkpoints and outputs; every rank reads the data it needs;
- files that several ranks would write (token shards) are written by rank 0 first: `main_first()`.
"""
from __future__ import annotations

import atexit
import contextlib
import os
from datetime import timedelta
from typing import Iterator, Sequence

import torch

from instructgpt.config.errors import UserError


def launched() -> bool:
    """True under torchrun (or any launcher that sets WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(cfg) -> None:
    """Join the process group once (idempotent); `cfg` is a DistributedConfig. A no-op alone."""
    import torch.distributed as dist
    if not launched() or dist.is_initialized():
        return
    missing = [k for k in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
    if missing:
        raise UserError(f"WORLD_SIZE={os.environ['WORLD_SIZE']} but {', '.join(missing)} unset: "
                        "launch with torchrun --nproc_per_node N (or unset WORLD_SIZE)")
    backend = cfg.backend
    if backend == "auto":
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        if not torch.cuda.is_available():
            raise UserError("train.distributed.backend=nccl needs CUDA; use gloo on CPU")
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group(backend, timeout=timedelta(seconds=cfg.timeout_s))
    atexit.register(teardown)


def teardown() -> None:
    import torch.distributed as dist
    if dist.is_initialized():
        dist.destroy_process_group()


def active() -> bool:
    import torch.distributed as dist
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    import torch.distributed as dist
    return dist.get_rank() if active() else 0


def world_size() -> int:
    import torch.distributed as dist
    return dist.get_world_size() if active() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0")) if active() else 0


def is_main() -> bool:
    return rank() == 0


def local(n: int) -> range:
    """The indices among 0..n-1 that this rank owns (r, r + world, ...)."""
    return range(rank(), n, world_size())


def local_slices(n: int, size: int) -> list[slice]:
    """This rank's micro-batches of n items cut into chunks of `size` (chunk m belongs to rank m mod world)."""
    return [slice(start, start + size) for start in range(0, n, size)][rank()::world_size()]


def barrier() -> None:
    import torch.distributed as dist
    if active():
        dist.barrier()


@contextlib.contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the body, then the others (who then find its files in place)."""
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()


def _device() -> torch.device:
    import torch.distributed as dist
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def all_reduce_sum(values: Sequence[float]) -> list[float]:
    """Element-wise sums over the ranks (float64, in one collective)."""
    if not active():
        return [float(v) for v in values]
    import torch.distributed as dist
    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_device())
    dist.all_reduce(t)
    return t.tolist()


def sum_stats(stats: dict[str, float]) -> dict[str, float]:
    """A dict of statistics summed over the ranks (every rank must have the same keys)."""
    keys = sorted(stats)
    return dict(zip(keys, all_reduce_sum([stats[k] for k in keys])))


def all_gather_cat(t: torch.Tensor) -> torch.Tensor:
    """Concatenate along dim 0 the equally sized tensors of every rank, in rank order."""
    if not active():
        return t
    import torch.distributed as dist
    parts = [torch.empty_like(t, device=_device()) for _ in range(world_size())]
    dist.all_gather(parts, t.contiguous().to(_device()))
    return torch.cat(parts).to(t.device)

