"""An independent plain-PyTorch reference for HiPPO, the S4D layer and tslm's S4D language model.

Written from the papers (HiPPO: Gu et al. 2020, "HiPPO: Recurrent Memory with Optimal Polynomial
Projections"; S4D: Gu et al. 2022, "On the Parameterization and Initialization of Diagonal State
Space Models"; the S4 repository's published semantics of `transition()`, `nplr()` and the S4D
kernel), not from tslm's TypeScript. Everything is computed in float64 (complex128), so the
golden values are the exact answer for the float32 weights stored in the fixtures; tslm computes
in float32 and is compared with a tolerance.

HiPPO (the continuous-time memory dc/dt = A c + B f for two measures; S4's sign convention, A
stable):
  LegS  A[n,k] = -sqrt((2n+1)(2k+1)) (n > k), -(n+1) (n = k), 0 (n < k);  B[n] = sqrt(2n+1)
        dc/dt = (1/t)(A c + B f): coefficients of f on [0, t] in the basis
        sqrt(2n+1) P_n(2x/t - 1) (Legendre polynomials P_n), uniform measure on [0, t]
  LegT  A[n,k] = -sqrt((2n+1)(2k+1)) * (1 if n >= k else (-1)^(n-k));  B[n] = sqrt(2n+1)
        dc/dt = (1/theta)(A c + B f): coefficients on the window [t - theta, t] in the basis
        sqrt(2n+1) P_n(2(x - t)/theta + 1)
  NPLR  with P[n] = sqrt(n + 1/2), A_legs + P P^T = -I/2 + S, S skew-symmetric (a normal matrix)
S4D initialisations of the N/2 complex modes A_n (n = 0 .. N/2-1; the conjugates are implicit):
  lin   -1/2 + i pi n
  inv   -1/2 + i (N/pi) (N/(2n+1) - 1)
  real  -(n+1)
  legs  -1/2 + i lambda_n, lambda_n > 0 the imaginary parts of the eigenvalues of the normal part
        of LegS (one per conjugate pair), ascending

S4D layer over H channels, parameters as the S4 repository's S4D kernel:
  dt = exp(log_dt) (H), A = -exp(log_A_real) + i A_imag (H, N/2), C (H, N/2) complex stored as
  (H, N/2, 2) (re, im), D (H); B = 1 (absorbed in C).
  zero-order hold: dA = exp(dt A), dB = (exp(dt A) - 1) / A
  convolution  K[h, l] = 2 Re sum_n C dB dA^l,  y = K * x (causal) + D x       (here by FFT)
  recurrence   h <- dA h + dB x,  y = 2 Re sum_n C h + D x                       (state (B, H, N/2))

The language model (model_type "s4d", tslm's own): Mamba's block without the convolution and
without selectivity, gated like H3/GSS:
  h = embeddings[ids]
  for each layer:  x, z = split(in_proj(rms_norm(h)));  h = h + out_proj(S4D(x) * silu(z))
  logits = rms_norm_f(h) @ head^T          head = embeddings (tied) or lm_head
Left padding: x (the S4D input) is zeroed at padding positions, so the modal state stays 0 until
the row's first real token and the real positions are as without padding.

Run directly for a self-test: /usr/bin/python3 scripts/ref_s4d.py
"""
import json
import math

import torch

F64, C128 = torch.float64, torch.complex128

# ----------------------------------------------------------------------------- HiPPO


def transition(measure, N):
    """(A (N, N), B (N,)) float64 for 'legs' or 'legt'."""
    n = torch.arange(N, dtype=F64)
    r = torch.sqrt(2 * n + 1)
    rr = r[:, None] * r[None, :]
    row, col = n[:, None], n[None, :]
    if measure == "legs":
        A = torch.where(row > col, -rr, torch.zeros_like(rr))
        A = A - torch.diag(n + 1)
    elif measure == "legt":
        sign = torch.where(row >= col, torch.ones_like(rr), (-1.0) ** (row - col))
        A = -rr * sign
    else:
        raise ValueError(f"unknown measure {measure!r}")
    return A, r.clone()


def legs_normal(N):
    """(S, P): S = A_legs + P P^T = -I/2 + skew-symmetric, P[n] = sqrt(n + 1/2)."""
    A, _ = transition("legs", N)
    P = torch.sqrt(torch.arange(N, dtype=F64) + 0.5)
    return A + P[:, None] * P[None, :], P


def s4d_init(kind, N):
    """The N/2 complex modes A_n (complex128) of an S4D initialisation."""
    n = torch.arange(N // 2, dtype=F64)
    half = -0.5 * torch.ones_like(n)
    if kind == "lin":
        return torch.complex(half, math.pi * n)
    if kind == "inv":
        return torch.complex(half, (N / math.pi) * (N / (2 * n + 1) - 1))
    if kind == "real":
        return torch.complex(-(n + 1), torch.zeros_like(n))
    if kind == "legs":
        S, _ = legs_normal(N)
        w = torch.linalg.eigvals(S)
        imag = torch.sort(w.imag[w.imag > 0]).values
        assert imag.numel() == N // 2 and torch.allclose(w.real, torch.full_like(w.real, -0.5), atol=1e-9)
        return torch.complex(half, imag)
    raise ValueError(f"unknown s4d_init {kind!r}")


def discretize(A, B, dt, method):
    """(dA, dB) of dc/dt = A c + B f for a step dt: 'bilinear' or 'zoh'."""
    N = A.shape[0]
    I = torch.eye(N, dtype=F64)
    if method == "bilinear":
        left = I - dt / 2 * A
        return torch.linalg.solve(left, I + dt / 2 * A), torch.linalg.solve(left, dt * B)
    if method == "zoh":
        # exp of the augmented matrix [[A, B], [0, 0]] dt holds both.
        M = torch.zeros(N + 1, N + 1, dtype=F64)
        M[:N, :N], M[:N, N] = A * dt, B * dt
        E = torch.linalg.matrix_exp(M)
        return E[:N, :N], E[:N, N]
    raise ValueError(f"unknown method {method!r}")


def legendre(N, s):
    """P_0 .. P_{N-1} at points s: (N, len(s)), by Bonnet's recurrence."""
    out = [torch.ones_like(s), s.clone()]
    for n in range(1, N - 1):
        out.append(((2 * n + 1) * s * out[n] - n * out[n - 1]) / (n + 1))
    return torch.stack(out[:N])


def hippo_run(measure, N, f, dt, method, theta=None):
    """Run the discretised HiPPO memory over samples f[k] = f(k dt), k = 1 .. L; the coefficients
    after the last sample (N,). LegS is time-varying: step k uses A/k, B/k with a unit step
    (the dt of the samples cancels); LegT uses A/theta, B/theta and the step dt."""
    A, B = transition(measure, N)
    c = torch.zeros(N, dtype=F64)
    if measure == "legt":
        dA, dB = discretize(A / theta, B / theta, dt, method)
        for fk in f:
            c = dA @ c + dB * fk
    else:
        for k, fk in enumerate(f, start=1):
            dA, dB = discretize(A / k, B / k, 1.0, method)
            c = dA @ c + dB * fk
    return c


def hippo_reconstruct(measure, c, x, t, theta=None):
    """The approximation sum_n c_n sqrt(2n+1) P_n(s(x)) at points x of the memory at time t."""
    N = c.shape[0]
    s = 2 * x / t - 1 if measure == "legs" else 2 * (x - t) / theta + 1
    return (c[:, None] * torch.sqrt(2 * torch.arange(N, dtype=F64) + 1)[:, None] * legendre(N, s)).sum(0)


def test_signal(x):
    """The smooth signal the online-approximation fixtures use."""
    return torch.sin(2 * math.pi * 1.5 * x) * torch.exp(-x) + 0.5 * torch.cos(5 * x) + 0.2 * x


# ----------------------------------------------------------------------------- S4D layer


def complex_C(C):
    """(…, N/2, 2) stored (re, im) -> complex128 (…, N/2)."""
    return torch.complex(C[..., 0].to(F64), C[..., 1].to(F64))


def s4d_discrete(log_dt, log_A_real, A_imag, C):
    """(dA, dB, C) complex128 (H, N/2): zero-order hold of A = -exp(log_A_real) + i A_imag."""
    dt = torch.exp(log_dt.to(F64))[:, None]
    A = torch.complex(-torch.exp(log_A_real.to(F64)), A_imag.to(F64))
    dA = torch.exp(dt * A)
    dB = (dA - 1) / A
    return dA, dB, complex_C(C)


def s4d_kernel(log_dt, log_A_real, A_imag, C, L):
    """K (H, L) float64: K[h, l] = 2 Re sum_n C dB dA^l (the Vandermonde product)."""
    dA, dB, Cc = s4d_discrete(log_dt, log_A_real, A_imag, C)
    dtA = torch.exp(log_dt.to(F64))[:, None] * torch.complex(-torch.exp(log_A_real.to(F64)), A_imag.to(F64))
    V = torch.exp(dtA[..., None] * torch.arange(L, dtype=F64))  # dA^l = exp(l dt A), (H, N/2, L)
    return 2 * torch.einsum("hn,hnl->hl", Cc * dB, V).real


def causal_conv_fft(x, K):
    """y[b, l, h] = sum_{j <= l} K[h, j] x[b, l - j, h] by FFT of length 2L (S4's way)."""
    L = x.shape[1]
    xf = torch.fft.rfft(x.transpose(1, 2), n=2 * L)
    kf = torch.fft.rfft(K, n=2 * L)
    return torch.fft.irfft(xf * kf, n=2 * L)[..., :L].transpose(1, 2)


def s4d_conv(x, p):
    """S4D in convolution mode: x (B, L, H) -> y (B, L, H), float64."""
    x = x.to(F64)
    K = s4d_kernel(p["log_dt"], p["log_A_real"], p["A_imag"], p["C"], x.shape[1])
    return causal_conv_fft(x, K) + p["D"].to(F64) * x


def s4d_recurrent(x, p, state=None):
    """S4D as a recurrence, one position at a time: x (B, L, H) -> (y (B, L, H), final state
    (B, H, N/2) complex128). `state` (B, H, N/2) complex continues from there (not modified)."""
    x = x.to(F64)
    dA, dB, Cc = s4d_discrete(p["log_dt"], p["log_A_real"], p["A_imag"], p["C"])
    Bsz, L, H = x.shape
    h = torch.zeros(Bsz, H, dA.shape[1], dtype=C128) if state is None else state
    ys = []
    for t in range(L):
        xt = x[:, t, :, None]  # (B, H, 1)
        h = dA * h + dB * xt
        ys.append(2 * (Cc * h).sum(-1).real + p["D"].to(F64) * x[:, t])
    return torch.stack(ys, 1), h


def s4d_init_params(H, N, kind, dt_min, dt_max, gen=None):
    """Parameters of one S4D layer as S4D initialises them (float32): log_dt uniform in
    [log dt_min, log dt_max], C complex normal (E|C|^2 = 1), D = 1, A from `kind`."""
    A = s4d_init(kind, N)
    log_dt = torch.rand(H, generator=gen, dtype=F64) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
    C = torch.randn(H, N // 2, 2, generator=gen, dtype=F64) * math.sqrt(0.5)
    return {
        "log_dt": log_dt.float(),
        "log_A_real": torch.log(-A.real).expand(H, N // 2).float().clone(),
        "A_imag": A.imag.expand(H, N // 2).float().clone(),
        "C": C.float(),
        "D": torch.ones(H),
    }


# ----------------------------------------------------------------------------- the language model

DEFAULTS = {
    "state_size": 64, "expand": 2, "layer_norm_epsilon": 1e-5, "s4d_init": "lin", "dt_min": 0.001,
    "dt_max": 0.1, "use_bias": False, "tie_word_embeddings": True, "initializer_range": 0.02,
    "bos_token_id": None, "eos_token_id": None, "pad_token_id": None,
}
REQUIRED = ["vocab_size", "hidden_size", "num_hidden_layers"]
FIELDS = ["vocab_size", "hidden_size", "state_size", "expand", "num_hidden_layers", "layer_norm_epsilon",
          "s4d_init", "dt_min", "dt_max", "use_bias", "tie_word_embeddings", "initializer_range",
          "bos_token_id", "eos_token_id", "pad_token_id"]


def parse_config(raw):
    cfg = dict(DEFAULTS)
    cfg.update(raw)
    for k in REQUIRED:
        if k not in raw:
            raise ValueError(f"missing {k}")
    if cfg["state_size"] % 2:
        raise ValueError("state_size must be even")
    if cfg["s4d_init"] not in ("lin", "inv", "real", "legs"):
        raise ValueError("s4d_init")
    cfg["d_inner"] = cfg["expand"] * cfg["hidden_size"]
    return cfg


def config_json(cfg):
    out = {"architectures": ["S4DForCausalLM"], "model_type": "s4d"}
    out.update({k: cfg[k] for k in FIELDS})
    out["torch_dtype"] = "float32"
    return json.dumps(out, indent=2) + "\n"


def param_shapes(cfg):
    """Tensor name -> shape, in the model's order."""
    V, D, Di, N2 = cfg["vocab_size"], cfg["hidden_size"], cfg["d_inner"], cfg["state_size"] // 2
    out = {"backbone.embeddings.weight": (V, D)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"backbone.layers.{i}."
        out[p + "norm.weight"] = (D,)
        out[p + "mixer.in_proj.weight"] = (2 * Di, D)
        if cfg["use_bias"]:
            out[p + "mixer.in_proj.bias"] = (2 * Di,)
        out[p + "mixer.kernel.log_dt"] = (Di,)
        out[p + "mixer.kernel.log_A_real"] = (Di, N2)
        out[p + "mixer.kernel.A_imag"] = (Di, N2)
        out[p + "mixer.kernel.C"] = (Di, N2, 2)
        out[p + "mixer.D"] = (Di,)
        out[p + "mixer.out_proj.weight"] = (D, Di)
        if cfg["use_bias"]:
            out[p + "mixer.out_proj.bias"] = (D,)
    out["backbone.norm_f.weight"] = (D,)
    if not cfg["tie_word_embeddings"]:
        out["lm_head.weight"] = (V, D)
    return out


def init_params(cfg, gen=None):
    """Weights as tslm initialises an S4D model (float32): embeddings, projections and head
    N(0, initializer_range^2), biases 0, norms 1, the S4D kernels as s4d_init_params."""
    std, Di = cfg["initializer_range"], cfg["d_inner"]
    out = {}
    for name, shape in param_shapes(cfg).items():
        if ".mixer.kernel." in name or name.endswith(".mixer.D"):
            continue
        if name.endswith("norm.weight") or name.endswith("norm_f.weight"):
            out[name] = torch.ones(shape)
        elif name.endswith(".bias"):
            out[name] = torch.zeros(shape)
        else:
            out[name] = torch.randn(shape, generator=gen) * std
    for i in range(cfg["num_hidden_layers"]):
        p = f"backbone.layers.{i}.mixer."
        s = s4d_init_params(Di, cfg["state_size"], cfg["s4d_init"], cfg["dt_min"], cfg["dt_max"], gen)
        out[p + "kernel.log_dt"], out[p + "kernel.log_A_real"] = s["log_dt"], s["log_A_real"]
        out[p + "kernel.A_imag"], out[p + "kernel.C"], out[p + "D"] = s["A_imag"], s["C"], s["D"]
    return {k: out[k] for k in param_shapes(cfg)}


def rms_norm(x, w, eps):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * w


def layer_params(P, i):
    p = f"backbone.layers.{i}.mixer."
    return {"log_dt": P[p + "kernel.log_dt"], "log_A_real": P[p + "kernel.log_A_real"],
            "A_imag": P[p + "kernel.A_imag"], "C": P[p + "kernel.C"], "D": P[p + "D"]}


def forward(cfg, P, ids, pad_left=None, mode="conv", states=None, trace=None):
    """Logits (B, T, V) float64 for ids (B, T). P: name -> tensor (float32 leaves, may require
    grad; the computation is float64). mode 'conv' (from a zero state) or 'recurrent' (from
    `states`, a list of (B, H, N/2) complex, or zeros). pad_left[b]: leading padding positions
    of row b (their S4D input is zeroed). Returns (logits, final states)."""
    g = lambda n: P[n].to(F64)  # noqa: E731
    eps, Di = cfg["layer_norm_epsilon"], cfg["d_inner"]
    Bsz, T = ids.shape
    h = g("backbone.embeddings.weight")[ids]
    keep = torch.ones(Bsz, T, 1, dtype=F64)
    if pad_left is not None:
        for b, n in enumerate(pad_left):
            keep[b, :n] = 0
    finals = []
    for i in range(cfg["num_hidden_layers"]):
        pre = f"backbone.layers.{i}."
        u = rms_norm(h, g(pre + "norm.weight"), eps)
        xz = u @ g(pre + "mixer.in_proj.weight").T
        if cfg["use_bias"]:
            xz = xz + g(pre + "mixer.in_proj.bias")
        x, z = xz[..., :Di] * keep, xz[..., Di:]
        lp = layer_params(P, i)
        if mode == "conv":
            y = s4d_conv(x, lp)
            finals.append(None)
        else:
            y, hT = s4d_recurrent(x, lp, None if states is None else states[i])
            finals.append(hT)
        gated = y * z * torch.sigmoid(z)
        out = gated @ g(pre + "mixer.out_proj.weight").T
        if cfg["use_bias"]:
            out = out + g(pre + "mixer.out_proj.bias")
        if trace is not None and i == 0:
            trace.update({"layers.0.mixer.x": x, "layers.0.mixer.z": z, "layers.0.mixer.y": y, "layers.0.mixer.out": out})
        h = h + out
        if trace is not None:
            trace[f"layers.{i}.out"] = h
    hn = rms_norm(h, g("backbone.norm_f.weight"), eps)
    head = g("backbone.embeddings.weight") if cfg["tie_word_embeddings"] else g("lm_head.weight")
    return hn @ head.T, finals


def loss_of(cfg, P, ids):
    """Mean next-token cross-entropy of ids (B, T+1): inputs ids[:, :-1], targets ids[:, 1:]."""
    logits, _ = forward(cfg, P, ids[:, :-1])
    V = logits.shape[-1]
    return torch.nn.functional.cross_entropy(logits.reshape(-1, V), ids[:, 1:].reshape(-1))


def greedy(cfg, P, prompt, n):
    """Greedy continuation of prompt (1, T0) by n tokens with the recurrent mode: (tokens (1, n),
    the logits that chose them (1, n, V))."""
    logits, states = forward(cfg, P, prompt, mode="recurrent")
    toks, chosen = [], []
    last = logits[:, -1]
    for _ in range(n):
        t = last.argmax(-1)
        toks.append(t)
        chosen.append(last)
        logits, states = forward(cfg, P, t[:, None], mode="recurrent", states=states)
        last = logits[:, -1]
    return torch.stack(toks, 1), torch.stack(chosen, 1)


# ----------------------------------------------------------------------------- self-test


def _self_test():
    torch.manual_seed(0)
    # HiPPO: LegS's normal part is -I/2 + skew; eigenvalues of A_legs are -(n+1)
    for N in (4, 7, 8):
        S, _ = legs_normal(N)
        K = S + 0.5 * torch.eye(N, dtype=F64)
        assert torch.allclose(K, -K.T)
        A, _ = transition("legs", N)
        assert torch.allclose(torch.sort(torch.linalg.eigvals(A).real).values, -torch.arange(N, 0, -1, dtype=F64))
    # the inv init is the asymptotic of legs's imaginary parts: same order of magnitude
    assert (s4d_init("legs", 64).imag[-1] / s4d_init("inv", 64).imag[0]).item() > 0.1
    # online approximation: the reconstruction of a smooth signal is close
    L = 2000
    xs = torch.arange(1, L + 1, dtype=F64) / L
    f = test_signal(xs)
    for method in ("bilinear", "zoh"):
        c = hippo_run("legs", 16, f, 1 / L, method)
        grid = torch.linspace(0, 1, 201, dtype=F64)
        err = (hippo_reconstruct("legs", c, grid, 1.0) - test_signal(grid)).abs().max().item()
        assert err < 0.05, (method, err)
    # S4D: conv mode == recurrent mode; the kernel by the Vandermonde == by powers
    H, N, L, B = 3, 8, 20, 2
    for kind in ("lin", "inv", "real", "legs"):
        p = s4d_init_params(H, N, kind, 0.01, 0.5)
        x = torch.randn(B, L, H)
        yc = s4d_conv(x, p)
        yr, _ = s4d_recurrent(x, p)
        assert torch.allclose(yc, yr, atol=1e-10), kind
        dA, dB, Cc = s4d_discrete(p["log_dt"], p["log_A_real"], p["A_imag"], p["C"])
        K = s4d_kernel(p["log_dt"], p["log_A_real"], p["A_imag"], p["C"], L)
        K2 = torch.stack([2 * (Cc * dB * dA ** l).sum(-1).real for l in range(L)], -1)
        assert torch.allclose(K, K2, atol=1e-10), kind
    # the LM: conv == recurrent, chunked recurrent == whole, left padding leaves the row alone
    cfg = parse_config({"vocab_size": 11, "hidden_size": 8, "num_hidden_layers": 2, "state_size": 4})
    P = init_params(cfg)
    ids = torch.randint(0, 11, (2, 9))
    lc, _ = forward(cfg, P, ids)
    lr, st = forward(cfg, P, ids, mode="recurrent")
    assert torch.allclose(lc, lr, atol=1e-10)
    la, sa = forward(cfg, P, ids[:, :4], mode="recurrent")
    lb, _ = forward(cfg, P, ids[:, 4:], mode="recurrent", states=sa)
    assert torch.allclose(torch.cat([la, lb], 1), lr, atol=1e-10)
    padded = torch.cat([torch.zeros(2, 3, dtype=ids.dtype), ids], 1)
    lp, _ = forward(cfg, P, padded, pad_left=[3, 3])
    assert torch.allclose(lp[:, 3:], lc, atol=1e-10)
    print("ref_s4d self-test passed")


if __name__ == "__main__":
    _self_test()
