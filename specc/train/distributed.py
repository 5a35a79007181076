"""Data-parallel training on CPU: `torch.distributed` with the gloo backend.

The same code runs in three ways: one process (no process group), `specc
train --nproc N` (this module spawns N processes on this machine), or under
`torchrun` (which sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT; the
process group is then made from those variables). Every process loads the same
data and takes its share of each global mini-batch; DDP averages gradients,
so a step sees the whole batch as one process would.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        """Only the main process writes files and prints."""
        return self.rank == 0

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.size > 1:
            import torch.distributed as dist

            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def barrier(self) -> None:
        if self.size > 1:
            import torch.distributed as dist

            dist.barrier()

    def shard(self, items):
        """This process's share of a sequence: every size-th item from its rank (sizes differ by at most 1)."""
        return items[self.rank::self.size]


SINGLE = World()


def world_from_env() -> World:
    """The world torchrun (or `spawn`) describes in the environment; joins its process group."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return SINGLE
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo")
    _share_cores(size)
    return World(dist.get_rank(), dist.get_world_size())


def _share_cores(size: int) -> None:
    """N processes on one machine would each start one thread per core; give each its share."""
    torch.set_num_threads(core_share(int(os.environ.get("LOCAL_WORLD_SIZE", str(size)))))


def core_share(local_processes: int) -> int:
    """The threads each of that many processes on this machine gets (before `--threads`)."""
    return max(1, (os.cpu_count() or 1) // max(1, local_processes))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def die_with_parent(parent: int) -> None:
    """Have the kernel send this process SIGKILL when its parent (the `specc train --nproc` launcher) dies,
    even by `kill -9`: otherwise the workers would go on writing the run directory that a `--resume`
    then shares with them. Linux only (prctl); elsewhere the check below still catches a parent already
    gone."""
    import ctypes
    import signal
    import sys

    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the launcher died before prctl took effect
        os._exit(1)


def _worker(rank: int, size: int, port: int, fn, args, parent: int | None = None) -> None:
    if parent is not None:
        die_with_parent(parent)
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank),
                       "WORLD_SIZE": str(size), "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": str(size)})
    try:
        fn(*args)
    finally:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def spawn(fn, nproc: int, *args) -> None:
    """Run fn(*args) in `nproc` fresh processes that form one gloo process group; waits for all.
    `fn` must be importable (a module-level function) and `args` picklable."""
    import torch.multiprocessing as mp

    mp.spawn(_worker, args=(nproc, free_port(), fn, args, os.getpid()), nprocs=nproc, join=True)
