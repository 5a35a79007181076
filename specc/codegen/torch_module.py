"""IR -> a PyTorch nn.Module that runs the graph node by node through each op's torch lowering."""

from __future__ import annotations

import torch
from torch import nn

from specc.ir.graph import Graph


def _key(name: str) -> str:
    return name.replace(".", "__")  # nn.Module attribute names cannot contain dots


class SpeccModule(nn.Module):
    """Holds the spec's weights under their spec names (`conv_1.weight`) and returns a dict of outputs."""

    def __init__(self, graph: Graph, weights: dict):
        super().__init__()
        self.graph = graph
        self.params = nn.ParameterDict()
        self.buffer_keys: dict[str, str] = {}
        for name, info in graph.params.items():
            tensor = torch.from_numpy(weights[name].copy())
            if info.trainable:
                self.params[_key(name)] = nn.Parameter(tensor)
            else:
                self.register_buffer("buf__" + _key(name), tensor)
                self.buffer_keys[name] = "buf__" + _key(name)
        self._plan = [(node, node.opdef, dict(node.attrs),
                       {p.local: p.name for p in graph.node_params(node).values()}) for node in graph.nodes]

    def _tensor(self, name: str):
        if name in self.buffer_keys:
            return getattr(self, self.buffer_keys[name])
        return self.params[_key(name)]

    def forward(self, *inputs) -> dict:
        if len(inputs) != len(self.graph.inputs):
            raise ValueError(f"expected {len(self.graph.inputs)} inputs, got {len(inputs)}")
        env = {v.name: x for v, x in zip(self.graph.inputs, inputs)}
        for node, op, attrs, param_names in self._plan:
            params = {local: self._tensor(full) for local, full in param_names.items()}
            env[node.output.name] = op.torch_forward(attrs, params, [env[v.name] for v in node.inputs],
                                                     self.training)
        return {name: env[value.name] for name, value in self.graph.outputs.items()}

    def spec_state(self) -> dict:
        """name -> numpy array, under the spec's tensor names (what safetensors files hold)."""
        return {name: self._tensor(name).detach().cpu().numpy() for name in self.graph.params}


def to_torch(graph: Graph, weights: dict) -> SpeccModule:
    from specc.codegen.lowerable import check_lowerable

    check_lowerable(graph, "torch")
    return SpeccModule(graph, weights)
