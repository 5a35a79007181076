"""The lowerings of `rnn`, `lstm` and `gru`: PyTorch's fused kernels, and ONNX's RNN/LSTM/GRU operators.

Weights are stored in ONE layout, PyTorch's: per layer `l` and direction, `weight_ih_l{l}` (G*H, D_in),
`weight_hh_l{l}` (G*H, H), `bias_ih_l{l}` and `bias_hh_l{l}` (G*H), with `_reverse` appended for the
backward direction, gate blocks in PyTorch's order. The ONNX lowering converts at export time, in the
graph, from those initializers (ONNX Runtime and TensorRT fold the conversion into constants):

    LSTM  PyTorch (i, f, g, o)  ->  ONNX (i, o, f, c)     blocks [0, 3, 1, 2]
    GRU   PyTorch (r, z, n)     ->  ONNX (z, r, h)        blocks [1, 0, 2], linear_before_reset = 1
    RNN   one gate (tanh)                                   unchanged

and the two bias vectors become ONNX's concatenated B = [Wb, Rb]. ONNX's operators are single-layer, so a
stacked recurrent layer is one ONNX node per layer, each fed the previous one's output with its
directions concatenated, as PyTorch does.
"""

from __future__ import annotations

# For each op: the PyTorch gate block that fills ONNX's block k.
ONNX_GATE_ORDER = {"rnn": (0,), "lstm": (0, 3, 1, 2), "gru": (1, 0, 2)}
ONNX_OP = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}


def suffixes(layer: int, directions: int) -> list[str]:
    """The tensor-name suffixes of one layer: `l0`, and `l0_reverse` when bidirectional."""
    return [f"l{layer}" + ("_reverse" if d else "") for d in range(directions)]


# --- PyTorch ------------------------------------------------------------------------------------------

def torch_recurrent(op: str, attrs: dict, params: dict, x, training: bool):
    """(N, L, D) -> (N, L, dirs*H), or (N, dirs*H) for `return_sequences: false`."""
    import torch
    from torch import _VF  # the fused kernels nn.LSTM/nn.GRU/nn.RNN call with the same arguments

    directions = 2 if attrs["bidirectional"] else 1
    layers, hidden = attrs["layers"], attrs["hidden"]
    flat = [params[f"{kind}_{s}"] for layer in range(layers) for s in suffixes(layer, directions)
            for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    h0 = torch.zeros(layers * directions, x.shape[0], hidden, dtype=x.dtype, device=x.device)
    args = (flat, True, layers, 0.0, training, attrs["bidirectional"], True)  # biases, no dropout, batch_first
    if op == "lstm":
        sequence, last, _ = _VF.lstm(x, (h0, h0), *args)
    elif op == "gru":
        sequence, last = _VF.gru(x, h0, *args)
    else:
        sequence, last = _VF.rnn_tanh(x, h0, *args)
    if attrs["return_sequences"]:
        return sequence
    # The last layer's final states: the forward one after step L, the backward one after step 1.
    return last[-directions:].transpose(0, 1).reshape(x.shape[0], directions * hidden)


# --- ONNX ---------------------------------------------------------------------------------------------

def onnx_recurrent(op: str, g, attrs: dict, x: str, params: dict) -> str:
    import numpy as np

    label = g.label
    directions = 2 if attrs["bidirectional"] else 1
    hidden = attrs["hidden"]
    seq = g.node("Transpose", [x], f"{label}/to_time_major", perm=[1, 0, 2])  # (L, N, D): layout 0, as TensorRT needs
    top = attrs["layers"] - 1
    for layer in range(attrs["layers"]):
        w, r, b = (_stacked(op, g, params, layer, directions, hidden, kind) for kind in ("w", "r", "b"))
        extra = {"linear_before_reset": 1} if op == "gru" else {}  # PyTorch's GRU applies r after R h + b
        name = g.unique(f"{label}/{ONNX_OP[op]}_l{layer}")
        y, y_h = name, g.unique(f"{name}_last")
        g.multi_node(ONNX_OP[op], [seq, w, r, b], [y, y_h], name, hidden_size=hidden,
                     direction="bidirectional" if directions == 2 else "forward", **extra)
        if layer == top and not attrs["return_sequences"]:
            # Y_h is (dirs, N, H): the final state of each direction, concatenated as PyTorch's h_n[-dirs:].
            batch_major = g.node("Transpose", [y_h], f"{label}/last_batch_major", perm=[1, 0, 2])
            return g.node("Reshape", [batch_major, g.const(np.array([0, directions * hidden], np.int64),
                                                           f"{label}/last_shape")], label)
        # Y is (L, dirs, N, H): the next layer reads (L, N, dirs*H), the output (N, L, dirs*H).
        perm = [2, 0, 1, 3] if layer == top else [0, 2, 1, 3]
        dirs_last = g.node("Transpose", [y], f"{name}/dirs_last", perm=perm)
        shape = g.const(np.array([0, 0, directions * hidden], np.int64), f"{name}/merged_shape")
        seq = g.node("Reshape", [dirs_last, shape], label if layer == top else f"{name}/merge_dirs")
    return seq


def _stacked(op: str, g, params: dict, layer: int, directions: int, hidden: int, kind: str) -> str:
    """ONNX's W (dirs, G*H, D), R (dirs, G*H, H) or B (dirs, 2*G*H) of one layer, from the PyTorch tensors."""
    import numpy as np

    label = f"{g.label}/{kind.upper()}_l{layer}"
    parts = []
    for suffix in suffixes(layer, directions):
        if kind == "b":
            part = g.node("Concat", [_reorder(op, g, params[f"bias_ih_{suffix}"], hidden),
                                     _reorder(op, g, params[f"bias_hh_{suffix}"], hidden)],
                          f"{label}_{suffix}", axis=0)
        else:
            part = _reorder(op, g, params[f"weight_{'ih' if kind == 'w' else 'hh'}_{suffix}"], hidden)
        axes = g.const(np.array([0], np.int64), f"{label}_axes")
        parts.append(g.node("Unsqueeze", [part, axes], f"{label}_{suffix}_dir"))
    return parts[0] if len(parts) == 1 else g.node("Concat", parts, label, axis=0)


def _reorder(op: str, g, tensor: str, hidden: int) -> str:
    """The rows of `tensor` (G*H, ...) with its gate blocks in ONNX's order."""
    import numpy as np

    order = ONNX_GATE_ORDER[op]
    if order == tuple(range(len(order))):
        return tensor
    rows = np.concatenate([np.arange(block * hidden, (block + 1) * hidden) for block in order]).astype(np.int64)
    local = tensor.rsplit(".", 1)[-1]  # weight_ih_l0, ...
    return g.node("Gather", [tensor, g.const(rows, f"{g.label}/{local}_gate_rows")], f"{g.label}/{local}_onnx_gates",
                  axis=0)
