"""Where a run computes: `--device cpu|cuda|auto` and `--threads N`.

The data stays in host memory, as the numpy arrays the data sets are read
into; each mini-batch is gathered there and copied to the device on its own
(on CUDA from pinned memory, asynchronously), so a data set never has to fit
in GPU memory and a CPU run and a GPU run read the same arrays in the same
order. Data-parallel runs (`--nproc`, torchrun) use gloo on the CPU, so
`auto` means the CPU for them and `cuda` is refused.
"""

from __future__ import annotations

import os

import torch

from specc.diagnostics import Span, error

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str, where: str, processes: int = 1) -> torch.device:
    """The device `--device NAME` means on this machine. `where` (the spec or run directory) locates the
    diagnostic when it cannot be had."""
    if name not in DEVICES:
        raise ValueError(f"unknown device {name!r}")
    if name == "cpu" or (name == "auto" and (processes > 1 or not torch.cuda.is_available())):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise error("E097", "--device cuda: PyTorch sees no CUDA GPU on this machine"
                    + ("" if torch.version.cuda else " (this PyTorch is built without CUDA)"), Span(where),
                    "train on the CPU with `--device cpu` (or `auto`, which picks a GPU only when there is one)")
    if processes > 1:
        raise error("E100", f"--device cuda with {processes} processes: data-parallel training runs on the CPU "
                    "(gloo)", Span(where), "train on one GPU with one process, or drop `--device cuda`")
    return torch.device("cuda", torch.cuda.current_device())


def use_threads(threads: int) -> int:
    """Set PyTorch's intra-op CPU threads (0 keeps its default: one per core). Returns the number in use."""
    if threads > 0:
        torch.set_num_threads(threads)
    return torch_threads()


def torch_threads() -> int:
    return torch.get_num_threads()


# Channels-last pays on a CPU once convolutions are wide enough: measured on a 2-core Xeon, a training step of
# specs/mnist_best.yaml (3x3 convs of 32 and 64 channels) took 20-23% less time; for network3.py's 20 filters of
# one input channel it was within noise either way, so narrow networks keep the default layout.
CHANNELS_LAST_MIN_INPUTS = 32


def fast_layout(module, device: torch.device | None):
    """`module` (a SpeccModule on `device`; None is the CPU) in the memory layout that trains and infers fastest there:
    channels-last on a CPU when some convolution reads 32 or more channels. SPECC_CHANNELS_LAST=1 or 0
    forces it on or off (to compare, or to rule it out). The layout never changes a result beyond float
    rounding, and a run resumed from a checkpoint picks the same layout, so it repeats the same arithmetic."""
    forced = os.environ.get("SPECC_CHANNELS_LAST", "").strip()
    if forced in ("0", "1"):
        wanted = forced == "1"
    else:
        wanted = (device is None or device.type == "cpu") and any(
            value.type.rank == 4 and value.type.shape[1] >= CHANNELS_LAST_MIN_INPUTS
            for value in module.graph.params.values())
    return module.to_channels_last() if wanted else module


def torch_model(graph, weights: dict | None, device: torch.device | None):
    """The graph as a torch module on `device` (None: the CPU), in the layout `fast_layout` picks there."""
    from specc.codegen.torch_module import to_torch

    return fast_layout(to_torch(graph, weights).to(device), device)


def describe(device: torch.device, threads: int | None = None) -> str:
    """`cpu (2 threads)` or `cuda:0 (NVIDIA H200)`: for the run header and run.json. `threads`: those of each
    training process, when they are not this process's."""
    if device.type == "cuda":
        return f"cuda:{device.index or 0} ({torch.cuda.get_device_name(device)})"
    threads = threads or torch.get_num_threads()
    return f"cpu ({threads} thread{'s' if threads != 1 else ''})"


def prepare(device: torch.device) -> None:
    """Per-process settings for a device. On CUDA, cuDNN picks deterministic algorithms (benchmark mode
    would choose by timing, so two runs could differ); determinism there is still best effort."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor on `device`. On CUDA the copy goes through pinned memory and does not block: the
    caching host allocator keeps the pinned block alive until the copy has run."""
    if device.type == "cpu":
        return tensor
    return tensor.pin_memory().to(device, non_blocking=True)


def cuda_rng_state(device: torch.device) -> torch.Tensor | None:
    """The CUDA generator's state (dropout on the GPU draws from it), or None on the CPU."""
    return torch.cuda.get_rng_state(device) if device.type == "cuda" else None


def set_cuda_rng_state(state: torch.Tensor | None, device: torch.device) -> None:
    if state is not None and device.type == "cuda":
        torch.cuda.set_rng_state(state.cpu(), device)
