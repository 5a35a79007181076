"""Resource limits that make specc safe to run on a stranger's spec.

Every limit is documented in SECURITY.md; `--trusted` (or SPECC_TRUSTED=1)
lifts the structural ones for specs you wrote yourself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace


def _machine_memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 8 << 30


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int = 256 << 10        # a spec is text a person writes: the zoo's largest is 3 KiB
    max_yaml_depth: int = 64               # nesting of mappings/sequences
    max_yaml_nodes: int = 100_000          # nodes after alias expansion (billion laughs)
    max_extends_depth: int = 16
    max_repeat: int = 10_000
    max_layers: int = 20_000               # after expanding blocks and repeats (ResNet-1001 has ~3,000)
    max_block_depth: int = 32              # blocks using blocks
    max_expr_length: int = 1000
    max_expr_depth: int = 64
    max_int_bits: int = 128
    max_string_length: int = 10_000
    memory_budget_bytes: int = 0           # 0: what this machine has (resolved lazily)
    allow_outside: bool = True             # paths outside the spec's directory tree
    ci: bool = False

    @property
    def memory_budget(self) -> int:
        return self.memory_budget_bytes or _machine_memory_bytes()

    def strict(self) -> "Limits":
        """CI mode: paths stay inside the spec's tree unless explicitly allowed."""
        return replace(self, allow_outside=False, ci=True)

    def trusted(self) -> "Limits":
        big = 1 << 62
        return replace(
            self,
            max_file_bytes=big,
            max_yaml_depth=400,            # Python's recursion limit bounds what can be composed
            max_block_depth=200,
            max_yaml_nodes=big,
            max_extends_depth=1_000,
            max_repeat=big,
            max_layers=big,
            max_expr_length=1 << 20,
            max_int_bits=4096,
            max_string_length=1 << 24,
        )


DEFAULT_LIMITS = Limits()
