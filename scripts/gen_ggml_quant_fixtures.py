"""Golden dequantisations of ggml's block types Q4_0, Q4_1, Q5_0, Q4_K, Q5_K and Q6_K, written
here with numpy from the format's definition (ggml-common.h block structs; dequantize_row_* in
ggml-quants.c), independently of the TypeScript (bit unpacking by whole-array operations, f32
arithmetic by numpy's float32):

  Q4_0  y = d*(q - 8)                    Q4_1  y = d*q + m           Q5_0  y = d*(q5 - 16)
  Q4_K  y = (d*sc)*q - dmin*mn           Q5_K  the same with 5-bit q  Q6_K  y = (d*sc)*(q6 - 32)

Blocks are random bytes with chosen f16 scales (subnormal, negative, zero, the largest finite,
ordinary), so every quant value and scale bit pattern occurs. Writes
test/fixtures/quant/ggml_blocks.json: per type {bytes (hex), values (f32 bits as hex)}.

Run: /usr/bin/python3 scripts/gen_ggml_quant_fixtures.py
"""
import json
import os

import numpy as np

rng = np.random.default_rng(1515)
F32 = np.float32
SPECIAL = np.array([0x0001, 0x03FF, 0x0400, 0x3C00, 0xBC00, 0x7BFF, 0xFBFF, 0x0000, 0x8000, 0x2E66, 0x1C00, 0x2400],
                   dtype=np.uint16)

LAYOUT = {  # bytes per block, values per block, byte offsets of f16 scales
    "q4_0": (18, 32, [0]), "q4_1": (20, 32, [0, 2]), "q5_0": (22, 32, [0]),
    "q4_k": (144, 256, [0, 2]), "q5_k": (176, 256, [0, 2]), "q6_k": (210, 256, [208]),
}


def f16(b, o):
    return b[:, o:o + 2].copy().view(np.float16).astype(F32)[:, 0]


def nibbles(qs):
    """(nb, 16) bytes of a 32-value block -> its 32 quants: the low nibbles (values 0-15), then the high ones."""
    return np.concatenate([qs & 15, qs >> 4], axis=1).astype(np.int32)


def k_scales(s):
    """Q4_K/Q5_K 12 packed bytes (nb, 12) -> 6-bit scales and mins (nb, 8)."""
    s = s.astype(np.int32)
    sc = np.empty((s.shape[0], 8), np.int32)
    mn = np.empty((s.shape[0], 8), np.int32)
    sc[:, :4] = s[:, 0:4] & 63
    mn[:, :4] = s[:, 4:8] & 63
    sc[:, 4:] = (s[:, 8:12] & 15) | ((s[:, 0:4] >> 6) << 4)
    mn[:, 4:] = (s[:, 8:12] >> 4) | ((s[:, 4:8] >> 6) << 4)
    return sc, mn


def dequant(t, b):
    nb = b.shape[0]
    if t == "q4_0":
        return (f16(b, 0)[:, None] * (nibbles(b[:, 2:18]) - 8).astype(F32)).reshape(-1)
    if t == "q4_1":
        return (f16(b, 0)[:, None] * nibbles(b[:, 4:20]).astype(F32) + f16(b, 2)[:, None]).reshape(-1)
    if t == "q5_0":
        qh = b[:, 2:6].copy().view(np.uint32)[:, 0].astype(np.int64)
        hbits = ((qh[:, None] >> np.arange(32)[None, :]) & 1).astype(np.int32)
        q = nibbles(b[:, 6:22]) | (hbits << 4)
        return (f16(b, 0)[:, None] * (q - 16).astype(F32)).reshape(-1)
    if t in ("q4_k", "q5_k"):
        d, dmin = f16(b, 0), f16(b, 2)
        sc, mn = k_scales(b[:, 4:16])
        qs = b[:, 16:144] if t == "q4_k" else b[:, 48:176]
        qs = qs.reshape(nb, 4, 32).astype(np.int32)
        q = np.stack([qs & 15, qs >> 4], axis=2).reshape(nb, 8, 32)  # sub-blocks 2g (low), 2g+1 (high)
        if t == "q5_k":
            qh = b[:, 16:48].astype(np.int32)  # (nb, 32): bit j of qh[l] is the fifth bit of sub-block j, lane l
            q = q | (((qh[:, None, :] >> np.arange(8)[None, :, None]) & 1) << 4)
        d1 = (d[:, None] * sc.astype(F32)).astype(F32)
        m1 = (dmin[:, None] * mn.astype(F32)).astype(F32)
        return (d1[:, :, None] * q.astype(F32) - m1[:, :, None]).reshape(-1)
    if t == "q6_k":
        ql = b[:, 0:128].reshape(nb, 2, 64).astype(np.int32)
        qh = b[:, 128:192].reshape(nb, 2, 32).astype(np.int32)
        sc = b[:, 192:208].view(np.int8).astype(F32).reshape(nb, 16)
        d = f16(b, 208)
        lo = np.concatenate([ql[:, :, 0:32] & 15, ql[:, :, 32:64] & 15, ql[:, :, 0:32] >> 4, ql[:, :, 32:64] >> 4], axis=2)
        hi = np.concatenate([(qh >> (2 * p)) & 3 for p in range(4)], axis=2)
        q = ((lo | (hi << 4)) - 32).reshape(nb, 16, 16).astype(F32)
        d1 = (d[:, None] * sc).astype(F32)
        return (d1[:, :, None] * q).reshape(-1)
    raise ValueError(t)


def blocks(t, nb):
    size, _, scales = LAYOUT[t]
    b = rng.integers(0, 256, size=(nb, size), dtype=np.uint8)
    for i in range(nb):
        for k, o in enumerate(scales):
            h = SPECIAL[(i + 5 * k) % len(SPECIAL)] if i < len(SPECIAL) else np.uint16(rng.integers(0x0400, 0x3800))
            b[i, o:o + 2] = np.array([h], dtype=np.uint16).view(np.uint8)
    return b


def main():
    out = {}
    for t, (size, per, _) in LAYOUT.items():
        b = blocks(t, 16 if per == 32 else 12)
        y = dequant(t, b).astype(F32)
        assert np.all(np.isfinite(y)), t
        out[t] = {"block": per, "bytes": b.reshape(-1).tobytes().hex(), "values": y.view(np.uint32).astype(">u4").tobytes().hex()}
    path = os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "quant", "ggml_blocks.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(out, f, indent=0)
        f.write("\n")


if __name__ == "__main__":
    main()
