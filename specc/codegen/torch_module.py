"""IR -> a PyTorch nn.Module that runs the graph node by node through each op's torch lowering,
following an execution plan built once (numbered value slots, no lookups by name per step).

Tensors are registered under positional keys (`t0`, `t1`, ...) and mapped
back to their spec names (`conv_1.weight`, `deeper.sum.bias`) by a table:
spec names may contain any character a layer name allows, and no mangling
of them can merge two tensors. Everything outside the module speaks spec names.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
import torch
from torch import nn

from specc.ir.graph import Graph


class _Step(NamedTuple):
    """One node of the execution plan."""

    run: Callable               # the op's torch lowering: (attrs, params, inputs, training) -> output(s)
    attrs: dict
    params: tuple               # (local name, the module's parameter or buffer dict, key in it)
    reads: tuple                # value slots of the inputs
    writes: tuple               # value slots of the outputs


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
        self._channels_last = False
        self._plan, self._slots, self._outputs = self._execution_plan(graph)
        self._train_plan, self._train_outputs = self._plan, self._outputs  # see `train_on_scores`
        self._batchnorms = [step.attrs for node, step in zip(graph.nodes, self._plan) if node.op == "batchnorm"]

    def _execution_plan(self, graph: Graph) -> tuple[list, int, tuple]:
        """(steps, number of value slots, (output name, slot) pairs), built once so that a forward pass only
        indexes lists: at small batch sizes the Python work per node is a visible part of a training step.
        Values live in numbered slots, the graph's inputs first; a parameter is read from the module's own
        `_parameters`/`_buffers` dict at each call, so `.to(device)` or a state load that replaces it is seen."""
        slots = {value: index for index, value in enumerate(graph.inputs)}
        steps = []
        for node in graph.nodes:
            params = tuple((local, self._store_of(self.keys[p.name]), self.keys[p.name])
                           for local, p in node.params.items())
            reads = tuple(slots[value] for value in node.inputs)
            writes = tuple(slots.setdefault(value, len(slots)) for value in node.outputs)
            steps.append(_Step(node.opdef.torch_forward, dict(node.attrs), params, reads, writes))
        outputs = tuple((name, slots[value]) for name, value in graph.outputs.items())
        return steps, len(slots), outputs

    def _store_of(self, key: str) -> dict:
        return self._parameters if key in self._parameters else self._buffers

    def to_channels_last(self) -> "SpeccModule":
        """Keep 4-D weights, and 4-D inputs from the next call on, in channels-last memory order (NHWC in memory;
        shapes, values and spec names unchanged: every op reads tensors by their logical layout). Convolutions
        on a CPU then skip oneDNN's reordering of the data around every layer. Returns the module."""
        for store in (self._parameters, self._buffers):
            for tensor in store.values():
                if tensor is not None and tensor.dim() == 4:
                    tensor.data = _nhwc(tensor.data)
        self._channels_last = True
        return self

    def batchnorm_attrs(self) -> list[dict]:
        """The attributes of each batchnorm step, as the forward pass reads them: a recalibration of the running
        statistics (`specc.train.bn_stats`) sets their `momentum` while it runs."""
        return self._batchnorms

    @property
    def channels_last(self) -> bool:
        return self._channels_last

    def tensor(self, name: str) -> torch.Tensor:
        return getattr(self, self.keys[name])

    def forward(self, *inputs) -> dict:
        if len(inputs) != self._inputs:
            raise ValueError(f"expected {self._inputs} inputs, got {len(inputs)}")
        if self._channels_last:
            inputs = [x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x for x in inputs]
        values = [*inputs, *[None] * (self._slots - self._inputs)]
        training = self.training
        plan, outputs = (self._train_plan, self._train_outputs) if training else (self._plan, self._outputs)
        for run, attrs, params, reads, writes in plan:
            result = run(attrs, {local: store[key] for local, store, key in params} if params else {},
                         [values[reads[0]]] if len(reads) == 1 else [values[i] for i in reads], training)
            if len(writes) == 1:
                values[writes[0]] = result
            else:
                for slot, value in zip(writes, result):
                    values[slot] = value
        return {name: values[slot] for name, slot in outputs}

    def train_on_scores(self, output: str) -> bool:
        """In training mode, give `output` as the scores its final softmax reads, and skip that softmax.

        A classifier trained with cross-entropy on a softmax's probabilities computes log(softmax(z)); on the
        scores z the loss takes log_softmax(z) itself: the same value and gradient, one op fewer forward and
        backward, and no log of a probability that has rounded to 0 (Theano rewrote network3.py's cost this
        way). Done only when the softmax's output is read by nothing else and it normalizes the last axis of a
        (batch, classes) output. Evaluation mode is unchanged. Returns whether it was done."""
        slot = dict(self._outputs)[output]
        last = [i for i, step in enumerate(self._plan) if slot in step.writes]
        if len(last) != 1 or self.graph.nodes[last[0]].op != "softmax":
            return False
        node, step = self.graph.nodes[last[0]], self._plan[last[0]]
        rank = node.outputs[0].type.rank
        read_elsewhere = any(slot in other.reads for other in self._plan) or \
            sum(s == slot for _, s in self._outputs) > 1
        if rank != 2 or step.attrs["axis"] not in (-1, 1) or read_elsewhere or len(step.reads) != 1:
            return False
        scores = step.reads[0]
        self._train_plan = self._plan[:last[0]] + self._plan[last[0] + 1:]
        self._train_outputs = tuple((name, scores if name == output else s) for name, s in self._outputs)
        return True

    # --- spec names -----------------------------------------------------
    def spec_parameters(self):
        """(spec tensor name, nn.Parameter) for every trainable tensor."""
        for name, key in self.keys.items():
            tensor = getattr(self, key)
            if isinstance(tensor, nn.Parameter):
                yield name, tensor

    def spec_state(self) -> dict:
        """name -> numpy array, under the spec's tensor names (what safetensors files hold)."""
        # C order whatever the memory layout (channels-last weights are strided views of it)
        return {name: np.ascontiguousarray(getattr(self, key).detach().cpu().numpy()) for name, key in self.keys.items()}

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


def _nhwc(tensor: torch.Tensor) -> torch.Tensor:
    """A channels-last copy with the strides spelled out. `contiguous(memory_format=channels_last)` leaves a
    tensor with one channel (a first convolution's weight) as it is, since either order fits it; the
    convolution then returns its output in the default order, and the next one copies it back, twice a step."""
    n, c, h, w = tensor.shape
    out = torch.empty((n, h, w, c), dtype=tensor.dtype, device=tensor.device).permute(0, 3, 1, 2)
    return out.copy_(tensor)


def to_torch(graph: Graph, weights: dict | None = None) -> SpeccModule:
    """The graph as a module; `weights` (name -> array) overrides the graph's own data."""
    from specc.codegen.lowerable import check_lowerable

    check_lowerable(graph, "torch")
    return SpeccModule(graph, weights)
