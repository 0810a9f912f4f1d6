"""Reading a GGUF file's metadata and tensors back, fast enough for Llama 3's 128k-token vocabulary.

``gguf.GGUFReader`` builds several numpy views per string of every array, which takes minutes
for a vocabulary of 128k tokens and 280k merges on a busy machine. The export check only needs
plain values, so this reads the key/value section sequentially with ``struct`` (a second or two)
and maps the tensor data without copying it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from studio.core.errors import StudioError

_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_NUMPY = {0: np.uint8, 1: np.int8, 2: np.uint16, 3: np.int16, 4: np.uint32, 5: np.int32, 6: np.float32, 7: np.bool_,
          10: np.uint64, 11: np.int64, 12: np.float64}
_STRING, _ARRAY = 8, 9


@dataclass
class GGUFTensor:
    """One tensor: its GGML type, its shape in transformers' (row-major) order and its raw data."""

    name: str
    ggml_type: int
    shape: tuple[int, ...]
    data: np.ndarray


class _Cursor:
    def __init__(self, buf: memoryview) -> None:
        self.buf, self.pos = buf, 0

    def take(self, fmt: str):
        value = struct.unpack_from(fmt, self.buf, self.pos)[0]
        self.pos += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        n = self.take("<Q")
        text = bytes(self.buf[self.pos:self.pos + n]).decode("utf-8", errors="replace")
        self.pos += n
        return text

    def value(self, vtype: int):
        if vtype in _SCALARS:
            return self.take(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            item, n = self.take("<I"), self.take("<Q")
            if item in _NUMPY:
                arr = np.frombuffer(self.buf, dtype=_NUMPY[item], count=n, offset=self.pos)
                self.pos += arr.nbytes
                return arr.tolist()
            return [self.value(item) for _ in range(n)]
        raise StudioError(f"unknown GGUF value type {vtype}", "the file may be damaged; export it again")


def read_gguf(path: str | Path) -> tuple[dict, dict[str, GGUFTensor]]:
    """(metadata key -> value, tensor name -> :class:`GGUFTensor`) of a GGUF file."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    data = np.memmap(str(path), dtype=np.uint8, mode="r")
    cur = _Cursor(memoryview(data))
    if bytes(cur.buf[:4]) != b"GGUF":
        raise StudioError(f"{path} is not a GGUF file", "export it again")
    cur.pos = 4
    _version, n_tensors, n_kv = cur.take("<I"), cur.take("<Q"), cur.take("<Q")
    meta = {}
    for _ in range(n_kv):
        key = cur.string()
        meta[key] = cur.value(cur.take("<I"))
    infos = []
    for _ in range(n_tensors):
        name = cur.string()
        dims = [cur.take("<Q") for _ in range(cur.take("<I"))]
        infos.append((name, dims, cur.take("<I"), cur.take("<Q")))
    align = int(meta.get("general.alignment", 32))
    start = (cur.pos + align - 1) // align * align
    tensors = {}
    for name, dims, ggml_type, offset in infos:
        block, size = GGML_QUANT_SIZES[GGMLQuantizationType(ggml_type)]
        count = int(np.prod(dims)) // block * size
        shape = tuple(reversed(dims))
        tensors[name] = GGUFTensor(name, ggml_type, shape, data[start + offset:start + offset + count])
    return meta, tensors


def dequantize(tensor: GGUFTensor) -> np.ndarray:
    """The tensor's values as float32 in its shape."""
    from gguf import GGMLQuantizationType, quants

    qtype = GGMLQuantizationType(tensor.ggml_type)
    if qtype == GGMLQuantizationType.F32:
        flat = tensor.data.view(np.float32)
    elif qtype == GGMLQuantizationType.F16:
        flat = tensor.data.view(np.float16).astype(np.float32)
    else:
        rows = tensor.data.reshape(-1, _row_bytes(tensor))
        flat = quants.dequantize(rows, qtype)
    return np.asarray(flat, dtype=np.float32).reshape(tensor.shape)


def _row_bytes(tensor: GGUFTensor) -> int:
    """Bytes per row of a quantized tensor."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    block, size = GGML_QUANT_SIZES[GGMLQuantizationType(tensor.ggml_type)]
    return tensor.shape[-1] // block * size
