"""Reading a ``.safetensors`` weights file with NumPy alone, whatever its floating-point type.

The format is an 8-byte little-endian header length ``L``, ``L`` bytes of JSON (each tensor's
``dtype``, ``shape`` and ``data_offsets`` into the data that follows, and an optional
``__metadata__`` map of strings), then the tensors' bytes. ``safetensors.numpy`` cannot read
bfloat16 (NumPy has no such type), so the file is read here: F32, F16, BF16 and F64 tensors all
come back as float32 arrays (bfloat16 is the upper half of a float32, so its conversion is exact;
F16 converts exactly too). Integer, boolean and 8-bit float tensors are refused, as are headers
that are damaged, too large, or point outside the file. Every refusal is one sentence naming the
file; nothing is read before the header has been checked against the file's size.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np

from lutgen.errors import LutgenError

MAX_HEADER_BYTES = 100 << 20  # the limit of the safetensors library itself
FLOAT_TYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "BF16": "<u2"}
_ITEM_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8,
               "U32": 4, "U16": 2, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}


def read_safetensors(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The tensors of ``path`` as float32 arrays, and its metadata; see the module docstring.

    Raises:
        LutgenError: the file is no readable safetensors file of floating-point tensors (one sentence).
    """
    def fail(reason: str):
        raise LutgenError(f"cannot load the model {path}: {reason}")

    try:
        with open(path, "rb") as file:
            size = _file_size(file)
            entries, metadata, start = _read_header(file, size, fail)
            tensors = {name: _read_tensor(file, name, entry, start, fail) for name, entry in entries.items()}
    except OSError as error:
        fail(f"it cannot be read ({error.strerror or error})")
    return tensors, metadata


def _file_size(file) -> int:
    file.seek(0, 2)
    size = file.tell()
    file.seek(0)
    return size


def _read_header(file, size: int, fail) -> tuple[dict, dict[str, str], int]:
    """The tensor entries, the metadata and where the data starts, all checked against ``size``."""
    if size == 0:
        fail("it is empty")
    if size < 8:
        fail(f"it is not a safetensors file (only {size} bytes)")
    (length,) = struct.unpack("<Q", file.read(8))
    if length > MAX_HEADER_BYTES:
        fail(f"it is not a safetensors file (its header claims {length} bytes, more than the "
             f"{MAX_HEADER_BYTES >> 20} MB allowed)")
    if 8 + length > size:
        fail(f"it is truncated or not a safetensors file (its header claims {length} bytes, but the file has "
             f"{size - 8} after the length)")
    try:
        header = json.loads(file.read(length).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        fail("it is not a safetensors file (its header is not valid JSON)")
    if not isinstance(header, dict):
        fail("it is not a safetensors file (its header is not a JSON object)")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        fail("its __metadata__ is not a map of strings")
    data_size = size - 8 - length
    for name, entry in header.items():
        _check_entry(name, entry, data_size, fail)
    return header, metadata, 8 + length


def _check_entry(name: str, entry, data_size: int, fail) -> None:
    """Fail unless ``entry`` describes a floating-point tensor lying within the data."""
    if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= set(entry):
        fail(f"the header entry of {name!r} lacks its dtype, shape or data offsets")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if dtype not in _ITEM_SIZES:
        fail(f"{name!r} has the unknown dtype {dtype!r}")
    if dtype not in FLOAT_TYPES:
        fail(f"{name!r} holds {dtype} values; AdaInt weights must be floating point (F32, F16, BF16 or F64)")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0
                                              for d in shape):
        fail(f"{name!r} has the invalid shape {shape!r}")
    if (not isinstance(offsets, list) or len(offsets) != 2
            or not all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
        fail(f"{name!r} has invalid data offsets {offsets!r}")
    begin, end = offsets
    if not 0 <= begin <= end <= data_size:
        fail(f"{name!r} lies outside the file (bytes {begin}..{end} of {data_size}): it is truncated or damaged")
    if end - begin != math.prod(shape) * _ITEM_SIZES[dtype]:
        fail(f"{name!r} has {end - begin} bytes of data, not the {math.prod(shape) * _ITEM_SIZES[dtype]} its "
             f"{dtype} shape {tuple(shape)} needs")


def _read_tensor(file, name: str, entry: dict, start: int, fail) -> np.ndarray:
    """One tensor's bytes as a float32 array of its shape."""
    begin, end = entry["data_offsets"]
    file.seek(start + begin)
    data = file.read(end - begin)
    if len(data) != end - begin:
        fail(f"{name!r} is cut short: the file is truncated")
    dtype = entry["dtype"]
    values = np.frombuffer(data, dtype=FLOAT_TYPES[dtype])
    if dtype == "BF16":
        values = (values.astype(np.uint32) << 16).view(np.float32)
    with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf, refused as not finite
        return values.astype(np.float32).reshape(entry["shape"])
