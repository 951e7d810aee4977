"""Golden fixtures for tslm's HiPPO matrices, S4D layer and S4D language model, from the
independent float64 PyTorch reference in scripts/ref_s4d.py.

Run: /usr/bin/python3 scripts/gen_s4d_fixtures.py   (Debian: apt-get install python3-torch)
Deterministic (fixed seeds). Writes test/fixtures/s4d/ (see its README.md for every value):
  hippo.json   HiPPO LegS/LegT matrices, LegS's normal part, the S4D initialisations,
               bilinear and ZOH discretisations, and online approximations of a smooth signal
  layer.json   one S4D layer per initialisation: parameters, input, kernel K, conv-mode output,
               gradients, the modal state, a continuation from a state; sin/cos values
  lm/<case>/   config.json, model.safetensors (weights), expected.safetensors, expected.json
Golden values are computed in float64 from the float32 weights and stored as float32 (JSON
numbers with 9 significant digits; float64 where the test needs more: the HiPPO runs).
"""
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ref_s4d as R  # noqa: E402
from st import read_safetensors, write_safetensors  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "s4d")


def r9(x):
    return float(f"{x:.9g}")


def flat(t, digits=9):
    t = t.detach()
    if t.is_complex():
        t = torch.view_as_real(t)
    return {"shape": list(t.shape), "data": [float(f"{v:.{digits}g}") for v in t.reshape(-1).tolist()]}


def dump(path, obj):
    with open(path, "w") as f:
        f.write("{\n" + ",\n".join(f"  {json.dumps(k)}: {json.dumps(v, separators=(',', ':'))}" for k, v in obj.items()) + "\n}\n")


# ----------------------------------------------------------------------------- HiPPO


def gen_hippo():
    out = {"generator": "scripts/gen_s4d_fixtures.py (scripts/ref_s4d.py, float64)"}
    for N in (5, 8):
        for m in ("legs", "legt"):
            A, B = R.transition(m, N)
            out[f"{m}_{N}"] = {"A": flat(A, 17), "B": flat(B, 17)}
        S, P = R.legs_normal(N)
        out[f"legs_normal_{N}"] = {"S": flat(S, 17), "P": flat(P, 17)}
    out["s4d_init"] = {f"{k}_{N}": flat(R.s4d_init(k, N), 17) for N in (8, 16, 64) for k in ("lin", "inv", "real", "legs")}
    disc = {}
    for m, dt in (("legt", 0.05), ("legs", 0.1)):
        A, B = R.transition(m, 6)
        for method in ("bilinear", "zoh"):
            dA, dB = R.discretize(A, B, dt, method)
            disc[f"{m}_6_{method}"] = {"dt": dt, "dA": flat(dA, 17), "dB": flat(dB, 17)}
    out["discretize"] = disc
    # online approximation of a smooth signal sampled at k/L, k = 1..L
    L, N = 2000, 16
    xs = torch.arange(1, L + 1, dtype=R.F64) / L
    f = R.test_signal(xs)
    q = (torch.arange(200000, dtype=R.F64) + 0.5) / 200000  # midpoint rule on [0, 1]
    runs = {}
    for measure, theta, lo in (("legs", None, 0.0), ("legt", 0.5, 0.5)):
        # the exact coefficients: the projection of f on the measure's basis (by quadrature)
        x = lo + (1 - lo) * q
        s = 2 * x - 1 if measure == "legs" else 2 * (x - 1) / theta + 1
        basis = R.legendre(N, s) * torch.sqrt(2 * torch.arange(N, dtype=R.F64) + 1)[:, None]
        exact = (basis * R.test_signal(x)).mean(1)
        grid = torch.linspace(lo + 0.05 * (1 - lo), 1, 96, dtype=R.F64)
        for method in ("bilinear", "zoh"):
            c = R.hippo_run(measure, N, f, 1 / L, method, theta)
            err = (R.hippo_reconstruct(measure, c, grid, 1.0, theta) - R.test_signal(grid)).abs().max().item()
            exact_err = (R.hippo_reconstruct(measure, exact, grid, 1.0, theta) - R.test_signal(grid)).abs().max().item()
            runs[f"{measure}_{method}"] = {
                "N": N, "L": L, "theta": theta, "c": flat(c, 17), "exact": flat(exact, 17),
                "coef_err": (c - exact).abs().max().item(), "recon_err": err, "exact_recon_err": exact_err,
                "grid": [grid[0].item(), 1.0, grid.numel()],
            }
            print(f"hippo {measure} {method}: coef err {(c - exact).abs().max().item():.2e}, recon err {err:.2e} (exact projection {exact_err:.2e})")
    out["runs"] = runs
    dump(os.path.join(OUT, "hippo.json"), out)


# ----------------------------------------------------------------------------- one S4D layer


def gen_layer():
    torch.manual_seed(7)
    H, N, L, B, L0 = 3, 8, 10, 2, 4
    cases = {}
    for kind in ("lin", "inv", "real", "legs"):
        p = R.s4d_init_params(H, N, kind, 0.01, 0.5)
        # move the constant-initialised parameters so that a misindexed one shows
        p["log_A_real"] = p["log_A_real"] + 0.2 * torch.randn(H, N // 2)
        p["A_imag"] = p["A_imag"] + 0.3 * torch.randn(H, N // 2)
        p["D"] = p["D"] + 0.3 * torch.randn(H)
        x = torch.randn(B, L, H)
        gy = torch.randn(B, L, H)
        leaves = {k: v.clone().requires_grad_() for k, v in p.items()}
        xl = x.clone().requires_grad_()
        K = R.s4d_kernel(leaves["log_dt"], leaves["log_A_real"], leaves["A_imag"], leaves["C"], L)
        y = R.s4d_conv(xl, leaves)
        (y * gy.to(R.F64)).sum().backward()
        yr, h = R.s4d_recurrent(x, p)
        assert (yr - y).abs().max().item() < 1e-10
        # a continuation: the state after L0 positions, then the rest from it
        _, h0 = R.s4d_recurrent(x[:, :L0], p)
        y1, h1 = R.s4d_recurrent(x[:, L0:], p, h0)
        assert (y1 - y[:, L0:]).abs().max().item() < 1e-10 and (h1 - h).abs().max().item() < 1e-10
        share = ((y - p["D"].to(R.F64) * x.to(R.F64)).norm() / y.norm()).item()
        print(f"layer {kind}: |K| max {K.abs().max().item():.3f}, conv share of y {share:.2f}")
        cases[kind] = {
            "params": {k: flat(v) for k, v in p.items()},
            "x": flat(x), "K": flat(K), "y": flat(y), "gy": flat(gy),
            "grads": {**{k: flat(v.grad) for k, v in leaves.items()}, "x": flat(xl.grad)},
            "state": flat(h), "L0": L0, "state_L0": flat(h0),
        }
    xs = torch.tensor([0.0, 1e-8, -0.3, 0.7853981, 1.5707964, 3.1415927, -3.1415927, 4.712389, 10.0, -25.5,
                       100.0, 1000.25, -12345.678, 65536.0, 1.0e6], dtype=torch.float32)
    sincos = {"x": flat(xs), "sin": flat(torch.sin(xs.to(R.F64))), "cos": flat(torch.cos(xs.to(R.F64)))}
    dump(os.path.join(OUT, "layer.json"), {"generator": "scripts/gen_s4d_fixtures.py (scripts/ref_s4d.py, float64)",
                                           "H": H, "N": N, "L": L, "B": B, "cases": cases, "sincos": sincos})


# ----------------------------------------------------------------------------- the language model

LM_CASES = {
    # the common shape: tied head, no biases, S4D-Lin, default dt range
    "tied": dict(seed=13, prompt_len=5, config=dict(
        vocab_size=64, hidden_size=16, state_size=8, num_hidden_layers=2, expand=2, s4d_init="lin",
        bos_token_id=1, eos_token_id=2)),
    # everything else: untied head, in/out biases, S4D-Inv, odd sizes, eps 1e-6, a wider dt range
    "untied_bias": dict(seed=13, prompt_len=3, config=dict(
        vocab_size=61, hidden_size=24, state_size=8, num_hidden_layers=2, expand=2, s4d_init="inv",
        use_bias=True, tie_word_embeddings=False, layer_norm_epsilon=1e-6, dt_min=0.01, dt_max=0.3,
        initializer_range=0.05, pad_token_id=0, bos_token_id=1, eos_token_id=[2, 3])),
}
BATCH, T, GREEDY, PAD_LEFT = 2, 12, 12, 4


def perturb(cfg, P, gen):
    """Condition the initial weights for testing: constant-initialised tensors (norms, D, biases,
    A's real and imaginary parts) get N(0, 0.1^2) noise; the projections are scaled to std 0.2
    so that the layers change the residual stream visibly, and the embeddings and head to std
    0.5 so that the logits are O(1) (at std 0.02 they are ~0.3 and differences hide)."""
    out = {}
    for n, t in P.items():
        if n.endswith(("norm.weight", "norm_f.weight", ".D", ".bias", "log_A_real", "A_imag")):
            t = t + 0.1 * torch.randn(t.shape, generator=gen)
        elif n.endswith(("in_proj.weight", "out_proj.weight")):
            t = t * (0.2 / cfg["initializer_range"])
        elif n.endswith(("embeddings.weight", "lm_head.weight")):
            t = t * (0.5 / cfg["initializer_range"])
        out[n] = t.float().contiguous()
    return out


def greedy_prompt(cfg, P, ids, n):
    for row in range(ids.shape[0]):
        for start in range(ids.shape[1] - n + 1):
            prompt = ids[row:row + 1, start:start + n]
            toks, chosen = R.greedy(cfg, P, prompt, GREEDY)
            top2 = chosen.topk(2, dim=-1).values
            gap = (top2[..., 0] - top2[..., 1]).min().item()
            if gap > 1e-3 and len(set(toks[0].tolist())) >= 4:
                return prompt, toks, chosen, gap
    raise SystemExit("no prompt with a varied greedy continuation and no near tie; change the seed")


def gen_lm(name, spec):
    gen = torch.Generator().manual_seed(spec["seed"])
    cfg = R.parse_config(spec["config"])
    P = perturb(cfg, R.init_params(cfg, gen), gen)
    V = cfg["vocab_size"]
    ids = torch.randint(0, V, (BATCH, T), generator=gen)
    exp = {}
    with torch.no_grad():
        trace = {}
        logits, _ = R.forward(cfg, P, ids, trace=trace)
        step_logits, states = R.forward(cfg, P, ids, mode="recurrent")
        a, sa = R.forward(cfg, P, ids[:, :5], mode="recurrent")
        b, _ = R.forward(cfg, P, ids[:, 5:], mode="recurrent", states=sa)
    err = (step_logits - logits).abs().max().item()
    assert err < 1e-10 and (torch.cat([a, b], 1) - logits).abs().max().item() < 1e-10
    exp["logits"] = logits
    for i, s in enumerate(states):
        exp[f"state.{i}"] = torch.view_as_real(s)
    exp.update({f"debug.{k}": v for k, v in trace.items()})

    leaves = {n: t.clone().requires_grad_() for n, t in P.items()}
    loss = R.loss_of(cfg, leaves, ids)
    loss.backward()
    exp["loss"] = loss.detach().reshape(1)
    for n, t in leaves.items():
        assert t.grad is not None and t.grad.abs().max().item() > 0, f"{name}: no gradient for {n}"
        exp[f"grad.{n}"] = t.grad

    prompt, toks, chosen, gap = greedy_prompt(cfg, P, ids, spec["prompt_len"])
    exp["greedy.logits"] = chosen

    # left padding: row 0 gets PAD_LEFT padding positions (pad id 0) before its first T-PAD_LEFT ids
    padded = ids.clone()
    padded[0] = torch.cat([torch.zeros(PAD_LEFT, dtype=ids.dtype), ids[0, :T - PAD_LEFT]])
    with torch.no_grad():
        plog, _ = R.forward(cfg, P, padded, pad_left=[PAD_LEFT, 0])
        alone, _ = R.forward(cfg, P, ids[:1, :T - PAD_LEFT])
    assert (plog[0, PAD_LEFT:] - alone[0]).abs().max().item() < 1e-10 and (plog[1] - logits[1]).abs().max().item() < 1e-10
    exp["padded.logits"] = plog

    y, x = trace["layers.0.mixer.y"], trace["layers.0.mixer.x"]
    D = P["backbone.layers.0.mixer.D"].to(R.F64)
    conv_share = ((y - x * D).norm() / y.norm()).item()

    d = os.path.join(OUT, "lm", name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        f.write(R.config_json(cfg))
    write_safetensors(os.path.join(d, "model.safetensors"), P, {"format": "pt"})
    exp = {k: v.detach().float().contiguous() for k, v in exp.items()}
    write_safetensors(os.path.join(d, "expected.safetensors"), exp)
    back = read_safetensors(os.path.join(d, "model.safetensors"))
    assert all(torch.equal(back[n], P[n]) for n in P) and set(back) == set(P)
    info = {
        "case": name,
        "generator": "scripts/gen_s4d_fixtures.py (independent float64 PyTorch S4D LM, scripts/ref_s4d.py)",
        "input_ids": ids.tolist(),
        "loss": loss.item(),
        "greedy": {"prompt": prompt[0].tolist(), "ids": toks[0].tolist(), "min_top2_gap": r9(gap)},
        "padded": {"input_ids": padded.tolist(), "pad_left": [PAD_LEFT, 0],
                   "note": "row 0 is left-padded; its logits at real positions equal forward(input_ids[0][:8]) alone; row 1 is as unpadded"},
        "conv_share": r9(conv_share),
        "tensors": {k: list(v.shape) for k, v in sorted(exp.items())},
        "parameters": {n: list(t.shape) for n, t in P.items()},
    }
    dump(os.path.join(d, "expected.json"), info)
    sizes = {fn: os.path.getsize(os.path.join(d, fn)) for fn in sorted(os.listdir(d))}
    print(f"lm {name}: loss {loss.item():.6f}, step-vs-conv {err:.1e}, greedy gap {gap:.4f} ids {toks[0].tolist()}, "
          f"conv share {conv_share:.3f}, files {sizes}")


def main():
    os.makedirs(OUT, exist_ok=True)
    gen_hippo()
    gen_layer()
    for name, spec in LM_CASES.items():
        gen_lm(name, spec)


if __name__ == "__main__":
    main()
