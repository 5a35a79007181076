"""Optimization passes over the IR (folding, fusion, precision) plug in here."""

from specc.passes.manager import Pass, PassManager, PassResult

__all__ = ["Pass", "PassManager", "PassResult"]
