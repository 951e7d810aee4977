#!/usr/bin/python3
"""Golden fixtures for tslm's state-space-model ops (test/tensor/ssm.test.ts), from PyTorch.

Writes test/fixtures/ssm/ssm.json: forward outputs and every input gradient (torch.autograd
with a stored random upstream gradient) of
  - causal_conv1d: F.conv1d(x.transpose(1, 2), w.unsqueeze(1), bias, padding=K-1, groups=C)[..., :L]
    transposed back to (B, L, C); with an `initial` prefix the input is concat(initial, x) along
    time and no padding (the prefix replaces the zeros);
  - selective_scan: the sequential scan written plainly (a Python loop over time, as
    mamba-minimal / HF's slow_forward), in (batch, time, channel) layout:
        dt = delta + delta_bias; dt = F.softplus(dt) if delta_softplus
        h = exp(dt[..., None] * A) * h + (dt * u)[..., None] * B[:, t, None, :]
        y_t = (h * C[:, t, None, :]).sum(-1) + D * u_t;  y_t *= F.silu(z_t) if z is given
    with an optional initial state h0 (no gradient), whose final value is stored too.

Every input is generated here (seeded) and stored, so the tests use exactly these values.
Tensors are {"shape": [...], "data": [flat row-major floats rounded to 9 significant digits]}.

Run (needs Debian's python3-torch: the system Python):
    /usr/bin/python3 scripts/gen_ssm_fixtures.py
Deterministic for a given torch version (generated with torch 1.13).
"""

import json
import math
import os

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float32)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "ssm", "ssm.json")


def r9(x):
    x = float(x)
    if not math.isfinite(x):
        raise ValueError("non-finite value in fixture")
    return float(f"{x:.9g}")


def T(t):
    t = t.detach().cpu()
    return {"shape": list(t.shape), "data": [r9(v) for v in t.to(torch.float64).reshape(-1).tolist()]}


def conv_case(name, g, B, L, C, K, bias, initial):
    x = torch.randn(B, L, C, generator=g).requires_grad_()
    w = (torch.randn(C, K, generator=g) * 0.5).requires_grad_()
    b = torch.randn(C, generator=g).requires_grad_() if bias else None
    init = torch.randn(B, K - 1, C, generator=g) if initial else None
    xt = x.transpose(1, 2)
    if init is None:
        y = F.conv1d(xt, w.unsqueeze(1), b, padding=K - 1, groups=C)[..., :L]
    else:
        y = F.conv1d(torch.cat([init.transpose(1, 2), xt], dim=2), w.unsqueeze(1), b, groups=C)
    y = y.transpose(1, 2)
    up = torch.randn(y.shape, generator=g)
    (y * up).sum().backward()
    inputs = {"x": T(x), "w": T(w)}
    grads = {"x": T(x.grad), "w": T(w.grad)}
    if b is not None:
        inputs["bias"] = T(b)
        grads["bias"] = T(b.grad)
    if init is not None:
        inputs["initial"] = T(init)
    return {"name": name, "op": "causal_conv1d", "inputs": inputs, "params": {}, "output": T(y), "upstream": T(up), "grads": grads}


def scan_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False, h0=None):
    Bt, L, Din = u.shape
    N = A.shape[1]
    dt = delta if delta_bias is None else delta + delta_bias
    if delta_softplus:
        dt = F.softplus(dt)
    h = torch.zeros(Bt, Din, N) if h0 is None else h0.clone()
    ys = []
    for t in range(L):
        dA = torch.exp(dt[:, t, :, None] * A)                        # (Bt, Din, N)
        dBu = (dt[:, t, :] * u[:, t, :])[:, :, None] * B[:, t, None, :]
        h = dA * h + dBu
        y = (h * C[:, t, None, :]).sum(-1)                           # (Bt, Din)
        if D is not None:
            y = y + D * u[:, t, :]
        if z is not None:
            y = y * F.silu(z[:, t, :])
        ys.append(y)
    return torch.stack(ys, dim=1), h


def scan_case(name, g, Bt, L, Din, N, D=True, z=True, bias=True, softplus=True, state=False):
    u = torch.randn(Bt, L, Din, generator=g).requires_grad_()
    delta = (torch.rand(Bt, L, Din, generator=g) * 3 - 2 if softplus else torch.rand(Bt, L, Din, generator=g)).requires_grad_()
    # Mamba's A = -exp(A_log)
    A = (-torch.exp(torch.rand(Din, N, generator=g) * 2 - 1)).requires_grad_()
    Bm = torch.randn(Bt, L, N, generator=g).requires_grad_()
    Cm = torch.randn(Bt, L, N, generator=g).requires_grad_()
    opt = {}
    leaves = {"u": u, "delta": delta, "A": A, "B": Bm, "C": Cm}
    if D:
        opt["D"] = leaves["D"] = torch.randn(Din, generator=g).requires_grad_()
    if z:
        opt["z"] = leaves["z"] = torch.randn(Bt, L, Din, generator=g).requires_grad_()
    if bias:
        opt["delta_bias"] = leaves["deltaBias"] = (torch.rand(Din, generator=g) - 0.5).requires_grad_()
    h0 = torch.randn(Bt, Din, N, generator=g) * 0.5 if state else None
    y, hL = scan_ref(u, delta, A, Bm, Cm, delta_softplus=softplus, h0=h0, **opt)
    up = torch.randn(y.shape, generator=g)
    (y * up).sum().backward()
    inputs = {k: T(v) for k, v in leaves.items()}
    if h0 is not None:
        inputs["state"] = T(h0)
    case = {"name": name, "op": "selective_scan", "inputs": inputs, "params": {"deltaSoftplus": softplus},
            "output": T(y), "upstream": T(up), "grads": {k: T(v.grad) for k, v in leaves.items()}}
    if h0 is not None:
        case["final_state"] = T(hL)
    return case


def main():
    g = torch.Generator().manual_seed(0)
    cases = [
        conv_case("conv_k4_bias", g, 2, 9, 5, 4, bias=True, initial=False),
        conv_case("conv_k4_initial", g, 2, 6, 3, 4, bias=True, initial=True),
        conv_case("conv_long_k_eq_l", g, 1, 12, 3, 12, bias=False, initial=False),
        conv_case("conv_k1", g, 2, 5, 2, 1, bias=True, initial=False),
        scan_case("scan_mamba", g, 2, 9, 5, 3),
        scan_case("scan_plain", g, 1, 7, 3, 4, D=False, z=False, bias=False, softplus=False),
        scan_case("scan_state", g, 2, 5, 6, 2, state=True),
        scan_case("scan_n1_no_z", g, 3, 4, 2, 1, z=False),
    ]
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"torch": torch.__version__, "cases": cases}, f, allow_nan=False, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {OUT} ({os.path.getsize(OUT)} bytes, {len(cases)} cases)")


if __name__ == "__main__":
    main()
