"""Peer for `tslm bench ops`: numpy timings of elementwise ops and per-call overhead.

Usage: python3 bench/peers/numpy_ops.py <n_large> <min_seconds>
Prints JSON {"add_gbs", "exp_gbs", "sum_gbs", "small_add_us"}: GB/s counts bytes read + written.
"""
import json
import sys
import time

import numpy as np


def best(fn, min_s):
    fn()
    b, reps, start = float("inf"), 0, time.perf_counter()
    while reps < 3 or time.perf_counter() - start < min_s:
        t0 = time.perf_counter()
        fn()
        b = min(b, time.perf_counter() - t0)
        reps += 1
    return b


def main():
    n, min_s = int(sys.argv[1]), float(sys.argv[2])
    rng = np.random.default_rng(0)
    a = rng.standard_normal(n, dtype=np.float32)
    b = rng.standard_normal(n, dtype=np.float32)
    c = np.empty_like(a)
    s16a, s16b, s16c = a[:16].copy(), b[:16].copy(), np.empty(16, np.float32)
    reps = 10000

    def small():
        for _ in range(reps):
            np.add(s16a, s16b, out=s16c)

    print(json.dumps({
        "add_gbs": 12 * n / best(lambda: np.add(a, b, out=c), min_s) / 1e9,
        "exp_gbs": 8 * n / best(lambda: np.exp(a, out=c), min_s) / 1e9,
        "sum_gbs": 4 * n / best(lambda: a.sum(), min_s) / 1e9,
        "small_add_us": best(small, min_s) / reps * 1e6,
    }))


if __name__ == "__main__":
    main()
