"""The IDX format (MNIST's): a 4-byte magic, big-endian int32 dimensions, then the raw array.

Files may be gzip-compressed (recognized by their content, not their name).
The whole file is read once and viewed with `np.frombuffer`: no per-image loop.
"""

from __future__ import annotations

import gzip
import os
import zlib

import numpy as np

from specc.diagnostics import Span, error

# The magic's third byte: the element type. The fourth is the number of dimensions.
IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
GZIP_MAGIC = b"\x1f\x8b"
IMAGES_MAGIC, LABELS_MAGIC = 0x00000803, 0x00000801  # 2051 and 2049: uint8 with 3 and 1 dimensions


def read_bytes(path: str, shown: str, span: Span, limit: int) -> bytes:
    """The file's content, decompressed when it is gzip; refuses more than `limit` bytes (a gzip bomb)."""
    too_big = error("E072", f"{shown} holds more than {limit:,} bytes once decompressed", span,
                    "this is more than the memory budget allows")
    try:
        with open(path, "rb") as f:
            head = f.read(2)
            f.seek(0)
            if head != GZIP_MAGIC:
                # read(n) reserves n bytes up front: ask the file's size, never the limit.
                if os.fstat(f.fileno()).st_size > limit:
                    raise too_big
                return f.read()
            chunks, total = [], 0
            with gzip.GzipFile(fileobj=f) as stream:
                while chunk := stream.read(1 << 24):
                    total += len(chunk)
                    if total > limit:
                        raise too_big
                    chunks.append(chunk)
            return b"".join(chunks)
    except FileNotFoundError:
        raise error("E071", f"data file not found: {shown}", span) from None
    except EOFError:
        raise error("E072", f"{shown} is truncated: the gzip stream ends early", span,
                    "download or copy the file again") from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise error("E072", f"{shown} is not a valid gzip file ({exc})", span,
                    "download or copy the file again") from None
    except OSError as exc:
        raise error("E071", f"cannot read {shown}: {exc.strerror or exc}", span) from None


def parse_idx(data: bytes, shown: str, span: Span, expect_magic: int | None = None) -> np.ndarray:
    """An IDX file's array, with its own dtype (MNIST's are uint8)."""
    if len(data) < 4:
        raise error("E072", f"{shown} is truncated: {len(data)} bytes, shorter than an IDX header", span)
    magic = int.from_bytes(data[:4], "big")
    code, ndim = data[2], data[3]
    wanted = f" (expected 0x{expect_magic:08X} = {expect_magic})" if expect_magic is not None else ""
    if data[:2] != b"\0\0" or code not in IDX_DTYPES or ndim == 0 or \
            (expect_magic is not None and magic != expect_magic):
        raise error("E072", f"{shown} is not an IDX file of the expected kind: magic number 0x{magic:08X}{wanted}",
                    span, "IDX image files start with 0x00000803, label files with 0x00000801")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise error("E072", f"{shown} is truncated inside its header", span)
    dims = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(IDX_DTYPES[code])
    need = dtype.itemsize * int(np.prod(dims, dtype=np.int64))
    have = len(data) - header
    if have < need:
        raise error("E072", f"{shown} is truncated: its header declares {' x '.join(map(str, dims))} values "
                    f"({need:,} bytes) but only {have:,} bytes follow", span, "download or copy the file again")
    if have > need:
        raise error("E072", f"{shown} has {have - need:,} bytes after the {' x '.join(map(str, dims))} values "
                    "its header declares", span, "the file is damaged or not an IDX file")
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return array.astype(dtype.newbyteorder("="), copy=False) if dtype.itemsize > 1 else array


def read_idx(path: str, shown: str, span: Span, limit: int, expect_magic: int | None = None) -> np.ndarray:
    return parse_idx(read_bytes(path, shown, span, limit), shown, span, expect_magic)


def write_idx(path: str, array: np.ndarray, compress: bool = False) -> None:
    """Write an array as IDX (uint8 arrays only need this; used by tests and the sample maker)."""
    codes = {np.dtype(v).newbyteorder("="): k for k, v in IDX_DTYPES.items()}
    dtype = np.dtype(array.dtype).newbyteorder("=")
    header = bytes([0, 0, codes[dtype], array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    payload = header + np.ascontiguousarray(array, dtype=IDX_DTYPES[codes[dtype]]).tobytes()
    with (gzip.open(path, "wb") if compress else open(path, "wb")) as f:
        f.write(payload)
