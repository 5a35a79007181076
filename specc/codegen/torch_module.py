"""IR -> a PyTorch nn.Module that runs the graph node by node through each op's torch lowering
(one line of generated Python per node, see `specc.codegen.torch_forward`).

Tensors are registered under positional keys (`t0`, `t1`, ...) and mapped
back to their spec names (`conv_1.weight`, `deeper.sum.bias`) by a table:
spec names may contain any character a layer name allows, and no mangling
of them can merge two tensors. Everything outside the module speaks spec names.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from specc.codegen.torch_forward import compile_forward
from specc.ir.graph import Graph


class SpeccModule(nn.Module):
    """Holds the graph's data under its spec names and returns a dict of outputs."""

    def __init__(self, graph: Graph, weights: dict | None = None):
        super().__init__()
        self.graph = graph
        self.keys: dict[str, str] = {}  # spec tensor name -> attribute key
        for index, (name, value) in enumerate(graph.params.items()):
            array = weights[name] if weights is not None and name in weights else value.data.numpy()
            # A copy in memory torch allocates, 64-byte aligned as all its tensors are (numpy's are 16-byte
            # aligned): vector loads of a misaligned weight straddle cache lines on every step.
            tensor = torch.tensor(np.require(array, requirements="C"))
            key = f"t{index}"
            if value.trainable:
                self.register_parameter(key, nn.Parameter(tensor))
            else:
                self.register_buffer(key, tensor)
            self.keys[name] = key
        self._inputs = len(graph.inputs)
        self._run = compile_forward(graph, self.keys, set(self._buffers))

    def tensor(self, name: str) -> torch.Tensor:
        return getattr(self, self.keys[name])

    def forward(self, *inputs) -> dict:
        if len(inputs) != self._inputs:
            raise ValueError(f"expected {self._inputs} inputs, got {len(inputs)}")
        return self._run(self, *inputs)

    # --- spec names -----------------------------------------------------
    def spec_parameters(self):
        """(spec tensor name, nn.Parameter) for every trainable tensor."""
        for name, key in self.keys.items():
            tensor = getattr(self, key)
            if isinstance(tensor, nn.Parameter):
                yield name, tensor

    def spec_state(self) -> dict:
        """name -> numpy array, under the spec's tensor names (what safetensors files hold)."""
        return {name: getattr(self, key).detach().cpu().numpy() for name, key in self.keys.items()}

    def load_spec_state(self, state: dict, strict: bool = True) -> None:
        """Copy arrays (or tensors) given by spec name into the module."""
        missing = [n for n in self.keys if n not in state]
        unknown = [n for n in state if n not in self.keys]
        if strict and (missing or unknown):
            raise KeyError(f"state does not match the model: missing {missing[:5]}, unknown {unknown[:5]}")
        with torch.no_grad():
            for name, array in state.items():
                if name in self.keys:
                    target = getattr(self, self.keys[name])
                    target.copy_(torch.as_tensor(array, dtype=target.dtype))


def to_torch(graph: Graph, weights: dict | None = None) -> SpeccModule:
    """The graph as a module; `weights` (name -> array) overrides the graph's own data."""
    from specc.codegen.lowerable import check_lowerable

    check_lowerable(graph, "torch")
    return SpeccModule(graph, weights)
