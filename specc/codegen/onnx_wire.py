"""ONNX models written in protobuf's wire format directly, without the onnx package.

Why by hand: a build of an 11.7M-parameter network spent more time in the
onnx package than in compiling - 0.2-0.3 s to import it and its protobuf
runtime, and four copies of every weight (`numpy_helper.from_array`, the
graph, the model, `SerializeToString`). The lowering emits the small records
below instead; `encode` lays them out as ONNX's `onnx.proto` says, and the
weights go from their arrays to the file (and to the hash) without a copy.

Only what specc emits is covered: a model with one graph, nodes with scalar,
string and list attributes, initializers as raw little-endian data, tensor
value infos, opset imports and metadata. The field numbers are onnx.proto's,
unchanged since IR version 3. `tests/test_onnx_wire.py` checks that every zoo
spec encodes to the message the onnx package builds for the same model.
"""

from __future__ import annotations

import hashlib
import math
import numbers
import queue
import struct
import sys
import threading
from dataclasses import dataclass, field

import numpy as np

# TensorProto.DataType
DTYPES = {"float32": 1, "uint8": 2, "int8": 3, "int32": 6, "int64": 7, "bool": 9, "float16": 10,
          "bfloat16": 16}
NUMPY_DTYPES = {np.dtype(np.float32): 1, np.dtype(np.uint8): 2, np.dtype(np.int8): 3, np.dtype(np.int32): 6,
                np.dtype(np.int64): 7, np.dtype(np.bool_): 9, np.dtype(np.float16): 10}
# AttributeProto.AttributeType
FLOAT, INT, STRING, FLOATS, INTS, STRINGS = 1, 2, 3, 6, 7, 8
IR_VERSION = 9  # readable by ONNX Runtime >= 1.16 and TensorRT 10

_VARINT, _FIXED64, _BYTES, _FIXED32 = 0, 1, 2, 5


@dataclass
class Node:
    op_type: str
    input: list
    output: list
    name: str
    attrs: dict = field(default_factory=dict)
    domain: str | None = None


@dataclass
class Initializer:
    """`array`: a NumPy array, or lazy data with `.shape`, `.dtype` (a name of DTYPES) and `.numpy()`
    (specc.ir.tensor.TensorData): made only when written, so a build hashes one weight while the next
    is drawn."""
    name: str
    array: object


@dataclass
class ValueInfo:
    name: str
    elem_type: int
    dims: list  # ints and dimension names (str)


@dataclass
class Model:
    graph_name: str
    nodes: list
    initializers: list
    inputs: list
    outputs: list
    opset: int
    producer_name: str = ""
    producer_version: str = ""
    doc_string: str = ""
    metadata: dict = field(default_factory=dict)


# --- wire primitives -----------------------------------------------------------------------------

def _varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64  # int64 fields write negatives as ten-byte two's complement
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _key(number: int, wire: int) -> bytes:
    return _varint(number << 3 | wire)


def _int(number: int, n: int) -> bytes:
    return _key(number, _VARINT) + _varint(int(n))


def _float(number: int, x: float) -> bytes:
    return _key(number, _FIXED32) + struct.pack("<f", x)


def _bytes(number: int, payload: bytes) -> bytes:
    return _key(number, _BYTES) + _varint(len(payload)) + payload


def _str(number: int, text: str) -> bytes:
    return _bytes(number, text.encode("utf-8"))


# --- messages ------------------------------------------------------------------------------------

def _attribute(name: str, value) -> bytes:
    """AttributeProto, typed as onnx.helper.make_attribute types a Python value."""
    out = _str(1, name)
    if isinstance(value, bool | numbers.Integral):
        return out + _int(3, value) + _int(20, INT)
    if isinstance(value, numbers.Real):
        return out + _float(2, float(value)) + _int(20, FLOAT)
    if isinstance(value, str | bytes):
        return out + _bytes(4, value.encode("utf-8") if isinstance(value, str) else value) + _int(20, STRING)
    items = list(value)
    if items and all(isinstance(v, bool | numbers.Integral) for v in items):
        return out + b"".join(_int(8, v) for v in items) + _int(20, INTS)
    if items and all(isinstance(v, numbers.Real) for v in items):
        return out + b"".join(_float(7, float(v)) for v in items) + _int(20, FLOATS)
    if items and all(isinstance(v, str | bytes) for v in items):
        return out + b"".join(_bytes(9, v.encode("utf-8") if isinstance(v, str) else v)
                              for v in items) + _int(20, STRINGS)
    raise TypeError(f"attribute {name}: cannot write {value!r} as an ONNX attribute")


def _node(node: Node) -> bytes:
    out = [_str(1, x) for x in node.input] + [_str(2, y) for y in node.output]
    out.append(_str(3, node.name))
    out.append(_str(4, node.op_type))
    # sorted by name and None left out, as onnx.helper.make_node writes them
    out += [_bytes(5, _attribute(k, v)) for k, v in sorted(node.attrs.items()) if v is not None]
    if node.domain is not None:
        out.append(_str(7, node.domain))
    return b"".join(out)


def _value_info(info: ValueInfo) -> bytes:
    dims = b"".join(_bytes(1, _str(2, d) if isinstance(d, str) else _int(1, d)) for d in info.dims)
    tensor_type = _int(1, info.elem_type) + _bytes(2, dims)
    return _str(1, info.name) + _bytes(2, _bytes(1, tensor_type))


def array_of(init: Initializer) -> np.ndarray:
    return init.array if isinstance(init.array, np.ndarray) else np.asarray(init.array.numpy())


ITEMSIZE = {1: 4, 2: 1, 3: 1, 6: 4, 7: 8, 9: 1, 10: 2, 16: 2}


def _raw(array: np.ndarray) -> memoryview:
    array = np.ascontiguousarray(array)
    if array.dtype.byteorder == ">" or (array.dtype.byteorder == "=" and sys.byteorder == "big"):
        array = array.astype(array.dtype.newbyteorder("<"))  # ONNX raw data is little-endian
    return memoryview(array.reshape(-1).view(np.uint8))


def _data_type(init: Initializer) -> int:
    array = init.array
    if isinstance(array, np.ndarray):
        code = NUMPY_DTYPES.get(array.dtype.newbyteorder("="))
    else:
        code = DTYPES.get(array.dtype)
    if code is None:
        raise TypeError(f"initializer {init.name}: ONNX export does not take dtype {array.dtype}")
    return code


def is_lazy(array) -> bool:
    """Lazy tensor data (an Initializer's `.numpy()` kind, drawn when written), not an array or a value that
    np.asarray takes."""
    return hasattr(array, "numpy") and not isinstance(array, np.ndarray)


def _initializer_parts(init: Initializer) -> list:
    """TensorProto as [header, raw data]: the data is a view of the array, never copied, or for lazy data
    a function that makes it (its size is known from the shape beforehand)."""
    lazy = is_lazy(init.array)
    if not lazy:
        init = Initializer(init.name, np.asarray(init.array))
    code, shape = _data_type(init), tuple(int(d) for d in init.array.shape)
    nbytes = ITEMSIZE[code] * math.prod(shape)
    header = (b"".join(_int(1, d) for d in shape) + _int(2, code) + _str(8, init.name)
              + _key(9, _BYTES) + _varint(nbytes))
    if not lazy:
        raw = _raw(init.array)
    else:
        def raw(lazy=init.array, name=init.name):
            view = _raw(np.asarray(lazy.numpy()))
            if view.nbytes != nbytes:  # the length prefixes are written already
                raise ValueError(f"initializer {name}: {view.nbytes} bytes, {nbytes} expected")
            return view
    prefix = _key(5, _BYTES) + _varint(len(header) + nbytes) + header
    return [prefix, raw], len(prefix) + nbytes


def encode_parts(model: Model) -> list:
    """The serialized ModelProto as a list of chunks, fields in field-number order as protobuf writes
    them: bytes, views of weight arrays, and functions that make lazy weights' views (see `chunks`)."""
    graph = [b"".join(_bytes(1, _node(n)) for n in model.nodes), _str(2, model.graph_name)]
    graph_size = sum(len(part) for part in graph)
    for init in model.initializers:
        parts, size = _initializer_parts(init)
        graph += parts
        graph_size += size
    io = (b"".join(_bytes(11, _value_info(v)) for v in model.inputs)
          + b"".join(_bytes(12, _value_info(v)) for v in model.outputs))
    graph.append(io)
    graph_size += len(io)
    head = [_int(1, IR_VERSION)]
    if model.producer_name:
        head.append(_str(2, model.producer_name))
    if model.producer_version:
        head.append(_str(3, model.producer_version))
    if model.doc_string:
        head.append(_str(6, model.doc_string))
    head.append(_key(7, _BYTES) + _varint(graph_size))
    tail = _bytes(8, _str(1, "") + _int(2, model.opset))
    tail += b"".join(_bytes(14, _str(1, k) + _str(2, str(v))) for k, v in model.metadata.items())
    return [b"".join(head), *graph, tail]


def chunks(parts: list):
    """The chunks of `encode_parts` as bytes-like objects, making lazy weights as they come."""
    for part in parts:
        yield part() if callable(part) else part


def encode(model: Model) -> bytes:
    return b"".join(chunks(encode_parts(model)))


def write(model: Model, path: str) -> str:
    """Write the model to `path`; returns the SHA-256 of the file's bytes. A second thread hashes each
    chunk while the next weights are drawn and written (hashing and file writes release the GIL)."""
    digest = hashlib.sha256()
    pending: queue.SimpleQueue = queue.SimpleQueue()

    def hash_chunks():
        while (chunk := pending.get()) is not None:
            digest.update(chunk)

    hasher = threading.Thread(target=hash_chunks, name="specc-sha256")
    hasher.start()
    try:
        with open(path, "wb") as handle:
            for chunk in chunks(encode_parts(model)):
                pending.put(chunk)
                handle.write(chunk)
    finally:
        pending.put(None)
        hasher.join()
    return digest.hexdigest()
