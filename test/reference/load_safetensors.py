#!/usr/bin/python3
"""Load a lab model exported with saveWeights (lib/model/safetensors.ts) into the
PyTorch reference towers (towers.py) and print the forward-pass embeddings.

    /usr/bin/python3 test/reference/load_safetensors.py WEIGHTS.safetensors INPUTS.json [--dtype float32|float64]

INPUTS.json: {"images": [B, S, S, 3] values in [0, 1] (nested or flat), "tokens": [B, L] token ids}.
Prints one JSON object on stdout: {"imgEmb": [B, E], "txtEmb": [B, E], "torch": version, "dtype": ...}.
The model config comes from the file's metadata ("config", the model config as JSON).

Independence: the safetensors reader below is written from the spec
(https://github.com/huggingface/safetensors#format), with struct + json + numpy,
not the `safetensors` package and not the TS code: u64 little-endian header
length N, N bytes of UTF-8 JSON (name -> dtype, shape, data_offsets [begin, end)
relative to the data after the header; optional "__metadata__" of strings),
then the tensors' bytes, contiguous and covering the data exactly.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np

try:
    import torch
except ImportError:
    sys.exit("load_safetensors.py: PyTorch is missing: install the Debian package python3-torch")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from towers import END_ID, image_tower, text_tower  # noqa: E402

DTYPES = {"F32": "<f4", "F64": "<f8", "F16": "<f2", "I64": "<i8", "I32": "<i4"}


def read_safetensors(path):
    """(tensors: name -> np.ndarray, metadata: dict of str) from a .safetensors file; raises
    ValueError naming the problem on anything malformed."""
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) < 8:
        raise ValueError(f"{path}: truncated, {len(buf)} bytes")
    (n,) = struct.unpack("<Q", buf[:8])
    if n > len(buf) - 8:
        raise ValueError(f"{path}: header length {n} exceeds the file")
    header = json.loads(buf[8:8 + n].decode("utf-8"))
    data = memoryview(buf)[8 + n:]
    metadata = header.pop("__metadata__", {}) or {}
    if not all(isinstance(v, str) for v in metadata.values()):
        raise ValueError(f"{path}: __metadata__ values must be strings")
    tensors, spans = {}, []
    for name, info in header.items():
        if info["dtype"] not in DTYPES:
            raise ValueError(f"{path}: tensor {name!r} has unsupported dtype {info['dtype']}")
        dt = np.dtype(DTYPES[info["dtype"]])
        shape = tuple(info["shape"])
        begin, end = info["data_offsets"]
        count = int(np.prod(shape, dtype=np.int64))
        if not 0 <= begin <= end <= len(data) or end - begin != count * dt.itemsize:
            raise ValueError(f"{path}: tensor {name!r} offsets [{begin}, {end}) do not fit shape {shape}")
        tensors[name] = np.frombuffer(data[begin:end], dtype=dt).reshape(shape).copy()
        spans.append((begin, end, name))
    at = 0
    for begin, end, name in sorted(spans):
        if begin != at:
            raise ValueError(f"{path}: tensor {name!r} starts at {begin}, expected {at} (overlap or hole)")
        at = end
    if at != len(data):
        raise ValueError(f"{path}: tensors cover {at} of {len(data)} data bytes")
    return tensors, metadata


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("weights")
    ap.add_argument("inputs")
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float64")
    args = ap.parse_args()
    dtype = getattr(torch, args.dtype)

    arrays, meta = read_safetensors(args.weights)
    if meta.get("format") != "contrastive-lab" or meta.get("layout") != "dense weights [in, out]":
        sys.exit(f"load_safetensors.py: {args.weights} is not a contrastive-lab weights file "
                 f"(format={meta.get('format')!r}, layout={meta.get('layout')!r})")
    if "config" not in meta:
        sys.exit(f"load_safetensors.py: {args.weights} has no 'config' in its metadata")
    cfg = json.loads(meta["config"])
    if int(meta.get("endId", END_ID)) != END_ID:
        sys.exit(f"load_safetensors.py: endId {meta['endId']} differs from towers.END_ID {END_ID}")
    p = {k: torch.from_numpy(v).to(dtype) for k, v in arrays.items()}

    with open(args.inputs) as f:
        inputs = json.load(f)
    S = cfg["image"]["imageSize"]
    images = torch.tensor(np.asarray(inputs["images"], dtype=np.float64).reshape(-1, S, S, 3), dtype=dtype)
    L = cfg["text"]["contextLength"]
    tokens = torch.tensor(np.asarray(inputs["tokens"], dtype=np.int64).reshape(-1, L))
    with torch.no_grad():
        img = image_tower(p, cfg["image"], images)
        txt = text_tower(p, cfg["text"], tokens)
    json.dump({"imgEmb": img.tolist(), "txtEmb": txt.tolist(), "torch": torch.__version__,
               "dtype": args.dtype}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
