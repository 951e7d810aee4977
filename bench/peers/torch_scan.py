"""Peer for bench/ssm_scan.ts: PyTorch's sequential selective scan (and conv1d), timed.

Usage: /usr/bin/python3 bench/peers/torch_scan.py '<json>'
  json: {"threads": n, "min_seconds": s, "variant": "unbind" (default) | "indexed",
         "scans": [{"batch": Bt, "length": L, "d_inner": Din, "d_state": N}, ...],
         "convs": [{"batch": B, "length": L, "channels": C, "kernel": K}, ...]}
The scan is the reference a Mamba port starts from (mamba_ssm's selective_scan_ref / HF's
slow_forward, in (batch, time, channel) layout): a Python loop over time with autograd, with
Mamba's settings (delta_softplus, delta_bias, D, z), the per-step slices taken with one unbind
(not x[:, t], whose backward is quadratic in L; variant "indexed" times mamba_ssm's
selective_scan_ref as written, with that quadratic backward); one timing is forward + backward of
(y * upstream).sum() with every input requiring grad. The conv is F.conv1d with groups = C and
padding K − 1 (Mamba's conv1d), forward + backward for x, weight and bias.
torch.set_num_threads(threads). Prints one JSON line {"torch": version, "scans": [{…, "ms", "cpu_ms"}],
"convs": [{…, "ms", "cpu_ms"}]}: per shape the best wall time of repeated runs (after one warm-up)
and the process CPU time (all threads) of that run.
"""
import json
import sys
import time

import torch
import torch.nn.functional as F


def best_ms(fn, min_seconds):
    """(wall ms, process CPU ms) of the fastest run after a warm-up, over >= 3 runs and min_seconds."""
    fn()
    best, cpu, reps, start = float("inf"), 0.0, 0, time.perf_counter()
    while reps < 3 or time.perf_counter() - start < min_seconds:
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        dt = time.perf_counter() - t0
        if dt < best:
            best, cpu = dt, time.process_time() - c0
        reps += 1
    return {"ms": best * 1000, "cpu_ms": cpu * 1000}


def scan_ref(u, delta, A, B, C, D, z, delta_bias):
    Bt, L, Din = u.shape
    dt = F.softplus(delta + delta_bias)
    h = u.new_zeros(Bt, Din, A.shape[1])
    ys = []
    # unbind once rather than x[:, t] per step: the backward of each indexing op writes a zero
    # tensor of the whole input, which makes the indexed loop quadratic in L (19x slower at L 256).
    for dt_t, u_t, B_t, C_t in zip(dt.unbind(1), u.unbind(1), B.unbind(1), C.unbind(1)):
        h = torch.exp(dt_t[:, :, None] * A) * h + (dt_t * u_t)[:, :, None] * B_t[:, None, :]
        ys.append((h * C_t[:, None, :]).sum(-1))
    y = torch.stack(ys, dim=1) + D * u
    return y * F.silu(z)


def scan_ref_indexed(u, delta, A, B, C, D, z, delta_bias):
    """mamba_ssm's selective_scan_ref as written there: exp(dt*A) and dt*u*B for every step at
    once, then the loop indexes them per step (whose backward is quadratic in L)."""
    Bt, L, Din = u.shape
    dt = F.softplus(delta + delta_bias)
    dA = torch.exp(dt[..., None] * A)                    # (Bt, L, Din, N)
    dBu = (dt * u)[..., None] * B[:, :, None, :]        # (Bt, L, Din, N)
    h = u.new_zeros(Bt, Din, A.shape[1])
    ys = []
    for t in range(L):
        h = dA[:, t] * h + dBu[:, t]
        ys.append(torch.einsum("bdn,bn->bd", h, C[:, t]))
    y = torch.stack(ys, dim=1) + D * u
    return y * F.silu(z)


def time_scan(s, min_seconds, variant):
    Bt, L, Din, N = s["batch"], s["length"], s["d_inner"], s["d_state"]
    g = torch.Generator().manual_seed(0)
    leaf = lambda *shape, lo=-1.0, hi=1.0: (torch.rand(*shape, generator=g) * (hi - lo) + lo).requires_grad_()
    u, delta, z = leaf(Bt, L, Din), leaf(Bt, L, Din), leaf(Bt, L, Din)
    A, B, C = leaf(Din, N, lo=-2.0, hi=-0.5), leaf(Bt, L, N), leaf(Bt, L, N)
    D, db = leaf(Din), leaf(Din)
    up = torch.rand(Bt, L, Din, generator=g)
    params = [u, delta, A, B, C, D, z, db]
    fn = scan_ref_indexed if variant == "indexed" else scan_ref

    def step():
        for p in params:
            p.grad = None
        (fn(u, delta, A, B, C, D, z, db) * up).sum().backward()

    return best_ms(step, min_seconds)


def time_conv(c, min_seconds):
    B, L, C, K = c["batch"], c["length"], c["channels"], c["kernel"]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(B, L, C, generator=g).requires_grad_()
    w = torch.randn(C, 1, K, generator=g).requires_grad_()
    b = torch.randn(C, generator=g).requires_grad_()
    up = torch.randn(B, L, C, generator=g)

    def step():
        for p in (x, w, b):
            p.grad = None
        y = F.conv1d(x.transpose(1, 2), w, b, padding=K - 1, groups=C)[..., :L].transpose(1, 2)
        (y * up).sum().backward()

    return best_ms(step, min_seconds)


def main():
    spec = json.loads(sys.argv[1])
    torch.set_num_threads(spec["threads"])
    ms = spec.get("min_seconds", 1.0)
    out = {
        "torch": torch.__version__,
        "scans": [dict(s, **time_scan(s, ms, spec.get("variant", "unbind"))) for s in spec.get("scans", [])],
        "convs": [dict(c, **time_conv(c, ms)) for c in spec.get("convs", [])],
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
