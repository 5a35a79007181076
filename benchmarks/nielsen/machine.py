"""What a benchmark ran on: CPU model, cores, GPU, PyTorch and the commit of this repository.

PyTorch is asked in a separate process, so the runner never holds a CUDA context (or PyTorch's memory)
while its runs train.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

_TORCH_PROBE = """
import json, torch
gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
print(json.dumps({"torch": torch.__version__, "cuda": torch.version.cuda, "gpus": gpus,
                  "default_threads": torch.get_num_threads()}))
"""


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def thread_siblings(cpu: int) -> list[int]:
    """The logical CPUs that share `cpu`'s physical core (itself included); [cpu] when the system does not say."""
    path = f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list"
    try:
        with open(path) as handle:
            return parse_cpu_list(handle.read().strip())
    except (OSError, ValueError):
        return [cpu]


def parse_cpu_list(text: str) -> list[int]:
    """`0-3,8,10-11` -> [0, 1, 2, 3, 8, 10, 11] (the notation of taskset and /sys)."""
    cpus: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return sorted(set(cpus))


def git_commit() -> str | None:
    if not shutil.which("git") or not os.path.isdir(os.path.join(ROOT, ".git")):
        return None
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=20).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (head + ("+changes" if dirty else "")) or None


def torch_info() -> dict:
    try:
        done = subprocess.run([sys.executable, "-c", _TORCH_PROBE], capture_output=True, text=True, timeout=120)
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return {}


def machine_info() -> dict:
    available = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    smt = any(len(thread_siblings(cpu)) > 1 for cpu in available[:64])
    return {"cpu": cpu_model(), "nproc": os.cpu_count(), "usable_cpus": len(available), "smt": smt,
            "python": platform.python_version(), "platform": platform.platform(terse=True),
            "specc_commit": git_commit(), **torch_info()}


def describe_machine(info: dict) -> str:
    """One line for the results table."""
    gpus = info.get("gpus") or []
    gpu = f"{gpus[0]}" + (f" (x{len(gpus)})" if len(gpus) > 1 else "") + ", " if gpus else ""
    threads = f", {info['usable_cpus']} usable" if info.get("usable_cpus") not in (None, info.get("nproc")) else ""
    return (f"{gpu}{info.get('cpu', '?')}, {info.get('nproc', '?')} logical CPUs{threads}"
            f"{' (SMT)' if info.get('smt') else ''}; PyTorch {info.get('torch', '?')}")
