"""Golden 16-bit float conversions for the f16/bf16 weights kept in memory, from outside references:

  - every one of the 65,536 F16 bit patterns widened to f32 by numpy (float16 -> float32), and
    every BF16 pattern by torch (bfloat16 -> float32): the sha256 of each table of f32 bits
    (little-endian), plus the values of a sample of patterns (all subnormals and the patterns
    around every exponent boundary, every 61st pattern, inf and NaN) to localise a mismatch;
  - f32 values rounded to F16 by numpy (astype(float16)) and to BF16 by torch (to(bfloat16)),
    both round to nearest, ties to even: random values over the whole exponent range, exact ties
    between neighbours, values around the subnormal, underflow and overflow thresholds.

Writes test/fixtures/quant/half.json. Run: /usr/bin/python3 scripts/gen_half_fixtures.py
"""
import hashlib
import json
import os

import numpy as np
import torch

rng = np.random.default_rng(1616)
pat = np.arange(65536, dtype=np.uint16)
f16_tab = pat.view(np.float16).astype(np.float32)
bf16_tab = torch.from_numpy(pat.view(np.int16).copy()).view(torch.bfloat16).to(torch.float32).numpy()


def sha(a):
    return hashlib.sha256(a.astype("<f4").tobytes()).hexdigest()


sample = set(range(0, 0x400)) | set(range(0, 65536, 61))
for e in range(32):
    for d in (-2, -1, 0, 1):
        b = ((e << 10) + d) & 0x7FFF
        sample |= {b, b | 0x8000}
sample |= {0x7C00, 0xFC00, 0x7E00, 0x7C01, 0xFE00, 0x7FFF}
sample = sorted(sample)


def bits32(a):
    return [int(v) for v in np.asarray(a, dtype=np.float32).view(np.uint32)]


# f32 values to round
vals = [rng.standard_normal(400) * np.float32(10.0) ** rng.integers(-9, 6, 400)]
vals.append(rng.uniform(-1, 1, 200) * np.float32(2.0) ** rng.integers(-140, 128, 200))
f16_all = f16_tab[np.isfinite(f16_tab)]
lo, hi = f16_all[:-1], f16_all[1:]  # neighbours in bit order (same sign within each half)
same = (np.sign(lo) == np.sign(hi)) | (lo == 0) | (hi == 0)
mids = ((lo[same].astype(np.float64) + hi[same].astype(np.float64)) / 2).astype(np.float32)
vals.append(rng.choice(mids, 300, replace=False))
edges = [65504, 65519.996, 65520, 65536, 6.1035156e-05, 6.097555e-05, 5.9604645e-08, 2.9802322e-08, 2.9802326e-08,
         1.0e-8, 3.4028235e38, 1.1754944e-38, 1e-45, 0.0, -0.0, 1.0, -1.0, 0.1, 1 / 3]
vals.append(np.array(edges + [-v for v in edges], dtype=np.float64))
bf_mids = (pat.astype(np.uint32) << 16)[rng.integers(0, 65536, 300)] | 0x8000  # exact bf16 ties
vals.append(bf_mids.view(np.float32))
x = np.concatenate([np.asarray(v, dtype=np.float32) for v in vals])
x = x[np.isfinite(x)]
to_f16 = x.astype(np.float16).view(np.uint16)
to_bf16 = torch.from_numpy(x.copy()).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)

out = {
    "f16_to_f32_sha256": sha(f16_tab), "bf16_to_f32_sha256": sha(bf16_tab),
    "sample": sample, "sample_f16": bits32(f16_tab[sample]), "sample_bf16": bits32(bf16_tab[sample]),
    "round_x": bits32(x), "round_f16": [int(v) for v in to_f16], "round_bf16": [int(v) for v in to_bf16],
}
path = os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "quant", "half.json")
with open(path, "w") as f:
    json.dump(out, f, separators=(",", ":"))
print(f"wrote {path}: {len(sample)} sampled patterns, {len(x)} values to round")
