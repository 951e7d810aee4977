"""A small safetensors reader and writer on the standard library and torch (Debian's torch has no
`safetensors` package).

The format (huggingface/safetensors README): 8 bytes little-endian u64 N, then N bytes of JSON
{name: {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {str: str}},
then the data section. Offsets are relative to the data section, and the tensors tile it exactly
(no gaps, no overlaps). Data is row-major, little-endian. We pad the header with spaces to a
multiple of 8 bytes, as the reference writer does.

    write_safetensors(path, {name: tensor}, metadata=None)
    read_safetensors(path) -> {name: tensor}   (each tensor keeps its stored dtype)
"""
import json
import math
import struct

import torch

# safetensors dtype name <-> torch dtype, with the element size in bytes
DTYPES = {
    "F64": (torch.float64, 8), "F32": (torch.float32, 4), "F16": (torch.float16, 2), "BF16": (torch.bfloat16, 2),
    "I64": (torch.int64, 8), "I32": (torch.int32, 4), "I16": (torch.int16, 2), "I8": (torch.int8, 1),
    "U8": (torch.uint8, 1), "BOOL": (torch.bool, 1),
}
NAME_OF = {dt: name for name, (dt, _) in DTYPES.items()}


def _to_bytes(t):
    t = t.detach().contiguous().cpu()
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16: write its bit pattern
        t = t.view(torch.int16)
    return t.numpy().tobytes()  # numpy's native order; every machine we run on is little-endian


def write_safetensors(path, tensors, metadata=None):
    """Write {name: tensor} (sorted by name) with each tensor's own dtype."""
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name in sorted(tensors):
        t = tensors[name]
        if t.dtype not in NAME_OF:
            raise ValueError(f"{path}: tensor {name} has dtype {t.dtype}, which this writer does not store")
        b = _to_bytes(t)
        header[name] = {"dtype": NAME_OF[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    """{name: tensor} from a safetensors file, checking the header against the spec."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: too short for a safetensors file ({len(data)} bytes)")
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        raise ValueError(f"{path}: header length {n} runs past the end of the file ({len(data)} bytes)")
    header = json.loads(data[8:8 + n].decode("utf-8"))
    body = data[8 + n:]
    out, spans = {}, []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in DTYPES:
            raise ValueError(f"{path}: tensor {name} has dtype {info['dtype']}, which this reader does not know")
        dtype, size = DTYPES[info["dtype"]]
        s, e = info["data_offsets"]
        count = math.prod(info["shape"])
        if e - s != count * size or e > len(body):
            raise ValueError(f"{path}: tensor {name}: offsets [{s}, {e}) do not hold shape {info['shape']} {info['dtype']}")
        spans.append((s, e))
        raw = bytearray(body[s:e])  # a writable copy, so torch does not warn
        if dtype == torch.bfloat16:
            t = torch.frombuffer(raw, dtype=torch.int16).view(torch.bfloat16) if count else torch.empty(0, dtype=dtype)
        else:
            t = torch.frombuffer(raw, dtype=dtype) if count else torch.empty(0, dtype=dtype)
        out[name] = t.reshape(info["shape"])
    spans.sort()
    pos = 0
    for s, e in spans:
        if s != pos:
            raise ValueError(f"{path}: tensor data is not contiguous (gap or overlap at byte {pos})")
        pos = e
    if pos != len(body):
        raise ValueError(f"{path}: {len(body) - pos} trailing bytes after the last tensor")
    return out
