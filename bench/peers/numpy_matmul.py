"""Peer for `tslm bench matmul`: float32 matmul GFLOP/s through numpy (OpenBLAS).

Usage: python3 bench/peers/numpy_matmul.py '<json list of [m, n, k, transB]>' <min_seconds>
The thread count comes from OPENBLAS_NUM_THREADS, set by the caller before numpy loads.
Prints one JSON object: {"blas": <core name or null>, "rows": [{"m","n","k","gflops"}]}.
"""
import ctypes
import glob
import json
import os
import sys
import time

import numpy as np


def corename():
    libdir = os.path.join(os.path.dirname(np.__file__), "..", "numpy.libs")
    for path in glob.glob(os.path.join(libdir, "*openblas*")):
        lib = ctypes.CDLL(path)
        for sym in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename", "openblas_get_corename"):
            f = getattr(lib, sym, None)
            if f is not None:
                f.restype = ctypes.c_char_p
                return f().decode()
    return None


def main():
    shapes = json.loads(sys.argv[1])
    min_s = float(sys.argv[2])
    rng = np.random.default_rng(0)
    rows = []
    for m, n, k, trans_b in shapes:
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((n, k), dtype=np.float32).T if trans_b else rng.standard_normal((k, n), dtype=np.float32)
        out = np.empty((m, n), dtype=np.float32)
        np.matmul(a, b, out=out)
        reps, best = 0, float("inf")
        start = time.perf_counter()
        while reps < 3 or time.perf_counter() - start < min_s:
            t0 = time.perf_counter()
            np.matmul(a, b, out=out)
            best = min(best, time.perf_counter() - t0)
            reps += 1
        rows.append({"m": m, "n": n, "k": k, "gflops": 2.0 * m * n * k / best / 1e9})
    print(json.dumps({"blas": corename(), "rows": rows}))


if __name__ == "__main__":
    main()
