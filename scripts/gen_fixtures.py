#!/usr/bin/python3
"""Golden-fixture generator for tslm's numeric tests (reference values from PyTorch).

Produces (under test/fixtures/):
  optim.json  parameter trajectories of torch.optim.SGD / AdamW (with and without
              momentum, nesterov, weight decay, amsgrad, clip_grad_norm_) over 10
              steps with stored gradients, plus LR-multiplier schedules (steps 0..99)
              recorded from torch.optim.lr_scheduler.LambdaLR.
  ops.json    forward outputs and input gradients (torch.autograd with a stored random
              upstream gradient) of cross-entropy, (log-)softmax, layer_norm, RMSNorm,
              activations, logsumexp, cumsum, RoPE (rotate-half and interleaved),
              GQA attention (causal and additive mask), embedding and broadcast matmul.

Every input is generated here with torch (seeded) and stored in the fixture, so the
TypeScript tests use exactly these inputs. All tensors are float32 unless marked
"dtype": "int64". Tensors are stored as {"shape": [...], "data": [flat, row-major],
"dtype": "float32" | "int64"}; a scalar has shape [] and one datum. Floats are rounded
to 9 significant digits (enough to round-trip a float32).

Run (needs Debian's python3-torch, i.e. the system Python, not the pyenv one):
    /usr/bin/python3 scripts/gen_fixtures.py
The output is deterministic for a given torch version (generated with torch 1.13).
"""

import json
import math
import os

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float32)

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures")


# ----------------------------------------------------------------------------- helpers

def r9(x):
    x = float(x)
    if not math.isfinite(x):
        raise ValueError("non-finite value in fixture")
    return float(f"{x:.9g}")


def T(t):
    """Tensor -> {shape, data, dtype} (flat row-major)."""
    t = t.detach().cpu()
    if t.dtype in (torch.int64, torch.int32, torch.long):
        return {"shape": list(t.shape), "dtype": "int64", "data": [int(v) for v in t.reshape(-1).tolist()]}
    return {"shape": list(t.shape), "dtype": "float32",
            "data": [r9(v) for v in t.to(torch.float64).reshape(-1).tolist()]}


def write(name, obj):
    os.makedirs(OUT_DIR, exist_ok=True)
    path = os.path.join(OUT_DIR, name)
    with open(path, "w") as f:
        json.dump(obj, f, allow_nan=False, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {os.path.relpath(path)} ({os.path.getsize(path)} bytes)")


# ----------------------------------------------------------------------------- optim.json

PARAM_SHAPES = {"a": [7], "b": [3, 5], "c": [4, 4]}
N_STEPS = 10
# Per-step gradient scales, so the total grad norm is sometimes below and sometimes
# above the clipping threshold 1.0.
GRAD_SCALES = [1.0, 0.1, 0.5, 0.05, 2.0, 0.12, 1.0, 0.08, 0.3, 1.5]


def gen_optim():
    torch.manual_seed(1234)
    init = {k: torch.randn(*s) for k, s in PARAM_SHAPES.items()}
    grads = [{k: torch.randn(*s) * GRAD_SCALES[i] for k, s in PARAM_SHAPES.items()} for i in range(N_STEPS)]

    def run(make_opt, clip=None):
        params = {k: torch.nn.Parameter(v.clone()) for k, v in init.items()}
        plist = [params[k] for k in PARAM_SHAPES]
        opt = make_opt(plist)
        traj, norms = [], []
        for i in range(N_STEPS):
            opt.zero_grad()
            for k in PARAM_SHAPES:
                params[k].grad = grads[i][k].clone()
            if clip is not None:
                n = torch.nn.utils.clip_grad_norm_(plist, max_norm=clip)
                norms.append(r9(n))
            opt.step()
            traj.append({k: T(params[k]) for k in PARAM_SHAPES})
        return traj, norms

    cases = []

    def add(name, kind, hp, clip=None):
        if kind == "sgd":
            mk = lambda p: torch.optim.SGD(p, **hp)
        else:
            mk = lambda p: torch.optim.AdamW(p, **hp)
        traj, norms = run(mk, clip)
        case = {"name": name, "optimizer": kind,
                "hparams": {k: (list(v) if isinstance(v, tuple) else v) for k, v in hp.items()},
                "clip_max_norm": clip, "params": traj}
        if clip is not None:
            case["grad_norms"] = norms
        cases.append(case)

    sgd_m = dict(lr=0.1, momentum=0.9, dampening=0.0, weight_decay=0.01, nesterov=False)
    add("sgd_plain", "sgd", dict(lr=0.1, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False))
    add("sgd_plain_wd", "sgd", dict(lr=0.1, momentum=0.0, dampening=0.0, weight_decay=0.01, nesterov=False))
    add("sgd_momentum", "sgd", sgd_m)
    add("sgd_nesterov", "sgd", dict(sgd_m, nesterov=True))
    adamw = dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1, amsgrad=False)
    add("adamw", "adamw", adamw)
    add("adamw_no_wd", "adamw", dict(adamw, weight_decay=0.0))
    add("adamw_amsgrad", "adamw", dict(adamw, amsgrad=True))
    add("adamw_clip", "adamw", adamw, clip=1.0)

    # --- LR schedules (multipliers of the base lr), transformers' formulas via LambdaLR.
    total, warmup = 100, 10

    def constant(step):
        return 1.0

    def cosine(step, min_lr_rate=0.0, num_cycles=0.5):
        if step < warmup:
            return float(step) / float(max(1, warmup))
        progress = float(step - warmup) / float(max(1, total - warmup))
        factor = 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress))
        factor = factor * (1 - min_lr_rate) + min_lr_rate
        return max(0.0, factor)

    def linear(step):
        if step < warmup:
            return float(step) / float(max(1, warmup))
        return max(0.0, float(total - step) / float(max(1, total - warmup)))

    scheds = [
        ("constant", constant, {}),
        ("cosine_warmup", lambda s: cosine(s), {"warmup_steps": warmup, "total_steps": total, "min_lr_ratio": 0.0}),
        ("cosine_warmup_min_lr", lambda s: cosine(s, 0.1), {"warmup_steps": warmup, "total_steps": total, "min_lr_ratio": 0.1}),
        ("linear_warmup", linear, {"warmup_steps": warmup, "total_steps": total}),
    ]
    schedules = []
    for name, fn, p in scheds:
        dummy = torch.nn.Parameter(torch.zeros(1))
        opt = torch.optim.SGD([dummy], lr=1.0)
        sch = torch.optim.lr_scheduler.LambdaLR(opt, fn)
        mults = []
        for _ in range(total):
            mults.append(r9(sch.get_last_lr()[0]))
            opt.step()
            sch.step()
        schedules.append({"name": name, "params": p, "multipliers": mults})

    write("optim.json", {
        "generator": "scripts/gen_fixtures.py",
        "torch_version": torch.__version__,
        "param_names": list(PARAM_SHAPES),
        "init": {k: T(v) for k, v in init.items()},
        "grads": [{k: T(g[k]) for k in PARAM_SHAPES} for g in grads],
        "cases": cases,
        "schedules": schedules,
    })


# ----------------------------------------------------------------------------- ops.json

CASES = []


def case(name, inputs, fn, params=None, grad_of=None):
    """inputs: dict name -> tensor. fn(**inputs) -> output. grad_of: names needing grads
    (default: all float inputs)."""
    if grad_of is None:
        grad_of = [k for k, v in inputs.items() if v.is_floating_point()]
    leaves = {k: (v.clone().requires_grad_(k in grad_of)) for k, v in inputs.items()}
    out = fn(**leaves)
    upstream = torch.randn(out.shape)
    gs = torch.autograd.grad(out, [leaves[k] for k in grad_of], upstream)
    CASES.append({
        "name": name,
        "inputs": {k: T(v) for k, v in inputs.items()},
        "params": params or {},
        "output": T(out),
        "upstream": T(upstream),
        "grads": {k: T(g) for k, g in zip(grad_of, gs)},
    })


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def gqa_attention(q, k, v, n_rep, scale, causal, mask=None):
    # torch 1.13 has no F.scaled_dot_product_attention; this is its math path.
    k = k.repeat_interleave(n_rep, dim=1)
    v = v.repeat_interleave(n_rep, dim=1)
    s = (q @ k.transpose(-2, -1)) * scale
    if causal:
        L, S = q.shape[-2], k.shape[-2]
        keep = torch.ones(L, S, dtype=torch.bool).tril()
        s = s.masked_fill(~keep, float("-inf"))
    if mask is not None:
        s = s + mask
    return torch.softmax(s, dim=-1) @ v


def gen_ops():
    torch.manual_seed(4321)

    # cross-entropy
    logits = torch.randn(6, 11) * 2
    t_ign = torch.tensor([3, -100, 0, 10, -100, 7])
    t_all = torch.tensor([3, 5, 0, 10, 2, 7])
    case("cross_entropy_ignore_index", {"logits": logits, "targets": t_ign},
         lambda logits, targets: F.cross_entropy(logits, targets, ignore_index=-100),
         {"ignore_index": -100, "label_smoothing": 0.0, "reduction": "mean"})
    case("cross_entropy_label_smoothing", {"logits": logits, "targets": t_all},
         lambda logits, targets: F.cross_entropy(logits, targets, label_smoothing=0.1),
         {"ignore_index": -100, "label_smoothing": 0.1, "reduction": "mean"})
    case("cross_entropy_ignore_index_label_smoothing", {"logits": logits, "targets": t_ign},
         lambda logits, targets: F.cross_entropy(logits, targets, ignore_index=-100, label_smoothing=0.1),
         {"ignore_index": -100, "label_smoothing": 0.1, "reduction": "mean"})

    # softmax / log_softmax
    x = torch.randn(3, 4, 9) * 3
    case("log_softmax", {"x": x}, lambda x: F.log_softmax(x, dim=-1), {"dim": -1})
    case("softmax", {"x": x}, lambda x: F.softmax(x, dim=-1), {"dim": -1})

    # layer_norm
    x = torch.randn(2, 3, 16) * 2 + 0.5
    w = torch.randn(16) * 0.5 + 1
    b = torch.randn(16) * 0.1
    case("layer_norm", {"x": x, "weight": w, "bias": b},
         lambda x, weight, bias: F.layer_norm(x, (16,), weight, bias, eps=1e-5),
         {"normalized_shape": [16], "eps": 1e-5})

    # RMSNorm (LLaMA)
    x = torch.randn(2, 3, 16) * 2 + 0.5
    w = torch.randn(16) * 0.5 + 1

    def rms(x, weight, eps=1e-6):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight
    case("rms_norm", {"x": x, "weight": w}, rms, {"eps": 1e-6})

    # activations
    x = torch.rand(64) * 12 - 6
    case("gelu", {"x": x}, lambda x: F.gelu(x), {"approximate": "none"})
    case("gelu_tanh", {"x": x}, lambda x: F.gelu(x, approximate="tanh"), {"approximate": "tanh"})
    case("silu", {"x": x}, lambda x: F.silu(x))
    case("softplus", {"x": x}, lambda x: F.softplus(x), {"beta": 1, "threshold": 20})
    case("sigmoid", {"x": x}, lambda x: torch.sigmoid(x))
    case("tanh", {"x": x}, lambda x: torch.tanh(x))

    # logsumexp, cumsum
    x = torch.randn(4, 7, 3) * 3
    case("logsumexp", {"x": x}, lambda x: torch.logsumexp(x, dim=1), {"dim": 1, "keepdim": False})
    x = torch.randn(3, 5)
    case("cumsum", {"x": x}, lambda x: torch.cumsum(x, dim=1), {"dim": 1})

    # RoPE
    theta, hd, T_ = 10000.0, 8, 6
    pos = torch.arange(T_, dtype=torch.float32)
    inv_freq = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
    freqs = torch.outer(pos, inv_freq)  # [T, hd/2]
    x = torch.randn(1, 2, T_, hd)
    rope_params = {"rope_theta": theta, "head_dim": hd, "positions": list(range(T_)),
                   "layout_of_x": "[batch, heads, seq, head_dim]"}

    def rope_half(x):
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos()[None, None], emb.sin()[None, None]
        return x * cos + rotate_half(x) * sin
    case("rope_rotate_half", {"x": x}, rope_half, dict(rope_params, style="rotate_half"))

    def rope_interleaved(x):
        fc = torch.polar(torch.ones_like(freqs), freqs)  # [T, hd/2] complex64
        xc = torch.view_as_complex(x.reshape(*x.shape[:-1], -1, 2).contiguous())
        return torch.view_as_real(xc * fc).flatten(-2)
    case("rope_interleaved", {"x": x}, rope_interleaved, dict(rope_params, style="interleaved"))

    # GQA attention
    q = torch.randn(2, 4, 5, 8)
    k = torch.randn(2, 2, 5, 8)
    v = torch.randn(2, 2, 5, 8)
    scale = 1.0 / math.sqrt(8)
    case("attention_gqa_causal", {"q": q, "k": k, "v": v},
         lambda q, k, v: gqa_attention(q, k, v, 2, scale, True),
         {"causal": True, "scale": r9(scale), "n_rep": 2, "kv_head_of_query_head": "h // n_rep"})
    mask = torch.randn(5, 5)
    case("attention_gqa_mask", {"q": q, "k": k, "v": v, "mask": mask},
         lambda q, k, v, mask: gqa_attention(q, k, v, 2, scale, False, mask),
         {"causal": False, "scale": r9(scale), "n_rep": 2, "kv_head_of_query_head": "h // n_rep",
          "mask": "additive, added to scores before softmax"},
         grad_of=["q", "k", "v"])

    # embedding
    table = torch.randn(10, 6)
    idx = torch.tensor([[1, 3, 3], [9, 0, 3]])
    case("embedding", {"weight": table, "indices": idx},
         lambda weight, indices: F.embedding(indices, weight))

    # broadcast batched matmul
    a = torch.randn(2, 1, 3, 4)
    b = torch.randn(5, 4, 6)
    case("matmul_broadcast", {"a": a, "b": b}, lambda a, b: torch.matmul(a, b))

    write("ops.json", {
        "generator": "scripts/gen_fixtures.py",
        "torch_version": torch.__version__,
        "cases": CASES,
    })


if __name__ == "__main__":
    gen_optim()
    gen_ops()
