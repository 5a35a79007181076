"""Optimization passes over the IR, one module each, and the standard pipeline.

Adding a pass: write its module (a frozen dataclass with `name` and `run`) and list it here.
"""

from __future__ import annotations

from specc.passes.cancel_transpose_reshape import CancelTransposeReshape
from specc.passes.dead_code_elimination import DeadCodeElimination
from specc.passes.fold_batchnorm import FoldBatchnorm
from specc.passes.fold_constants import FoldConstants
from specc.passes.fold_preprocess import FoldPreprocess
from specc.passes.inference_cleanup import InferenceCleanup
from specc.passes.manager import Pass, PassManager, PassResult
from specc.passes.matmul_add_to_gemm import MatMulAddToGemm

# The standard pipeline, in order: clean-up first so that folds see producer -> consumer directly.
STANDARD_PIPELINE: tuple = (
    InferenceCleanup(),
    FoldBatchnorm(),
    FoldPreprocess(),
    FoldConstants(),
    CancelTransposeReshape(),
    MatMulAddToGemm(),
    DeadCodeElimination(),
)
PASSES: dict = {p.name: p for p in STANDARD_PIPELINE}
KNOWN_PASSES: frozenset = frozenset(PASSES)


class PipelineError(ValueError):
    """A pass list naming a pass that does not exist; `name` is the offender."""

    def __init__(self, name: str):
        super().__init__(name)
        self.name = name


def resolve_pipeline(choice) -> tuple:
    """The passes to run for a choice: `standard`/`default`/None, `none`, or a list of names where
    `-name` drops one from the standard pipeline and plain names pick passes (in standard order)."""
    if choice in (None, "standard", "default"):
        return STANDARD_PIPELINE
    if choice == "none":
        return ()
    names = [choice] if isinstance(choice, str) else list(choice)
    for name in names:
        if name.lstrip("-") not in PASSES and name not in ("standard", "default"):
            raise PipelineError(name.lstrip("-"))
    picked = {n for n in names if not n.startswith("-") and n not in ("standard", "default")}
    dropped = {n[1:] for n in names if n.startswith("-")}
    base = picked if picked else set(PASSES)
    if any(n in ("standard", "default") for n in names):
        base |= set(PASSES)
    return tuple(p for p in STANDARD_PIPELINE if p.name in base - dropped)


def parse_pass_list(text: str):
    """`--passes` on the command line: `none`, `default`, or comma-separated names (`-name` drops)."""
    text = text.strip()
    if text in ("none", "default", "standard"):
        return text
    return [t.strip() for t in text.split(",") if t.strip()]


__all__ = ["Pass", "PassManager", "PassResult", "STANDARD_PIPELINE", "PASSES", "KNOWN_PASSES",
           "resolve_pipeline", "parse_pass_list", "PipelineError"]
