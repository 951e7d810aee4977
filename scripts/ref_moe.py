"""An independent plain-PyTorch sparse mixture-of-experts LLaMA: the reference that tslm's MoE
(the LLaMA graph with a MoE feed-forward block) is checked against.

Two Hugging Face model types, with their config fields, defaults and tensor names:
  mixtral     MixtralForCausalLM: every layer is sparse; experts `w1` (gate), `w3` (up), `w2`
              (down); the k routing weights are always renormalised; optional router jitter.
  qwen2_moe   Qwen2MoeForCausalLM: q/k/v biases; sparse layers also have a shared expert (its own
              intermediate size) behind a sigmoid gate; `norm_topk_prob` decides the
              renormalisation; some layers are dense (`mlp_only_layers`, `decoder_sparse_step`).
Written from HF's published semantics (modeling_mixtral.py, modeling_qwen2_moe.py and their
configurations, read, not copied), the Switch Transformer / ST-MoE / GShard papers, not from
tslm's code. Attention, RoPE and RMSNorm are those of scripts/ref_llama.py (imported).
Weights are a dict {HF tensor name: tensor}; the forward pass is plain tensor code,
differentiable when the weights require grad.

  model       x = embed_tokens[ids]
              for each layer i:  x = x + attention(input_layernorm(x))        (ref_llama)
                                 x = x + ffn_i(post_attention_layernorm(x))
              logits = norm(x) @ head^T           head = lm_head, or embed_tokens if tied
  ffn_i       dense layer:  swiglu(h) = down(silu(gate(h)) * up(h))        (HF's MLP)
              sparse layer: the MoE block below
  MoE block   (h is (B, T, D), flattened to N = B*T rows in row-major order: row n = b*T + t)
              [mixtral, training only] h = h * U(1 - j, 1 + j) elementwise, j = router_jitter_noise;
                  the jittered h feeds the router AND the experts (HF multiplies in place)
              router_logits = h @ gate^T                            (N, E), no bias
              probs = softmax(router_logits) in float32 (float64 stays float64)
              w, sel = top-k of probs (sorted, largest first)      (N, k)
              w = w / sum(w)   mixtral always; qwen2_moe only when norm_topk_prob
              w is cast back to h's dtype
              [training, moe_capacity_factor > 0] drop assignments over capacity (below)
              y[n] = sum over kept (n, slot): w[n, slot] * expert_{sel[n, slot]}(h[n])
              expert_e(h) = swiglu with expert e's matrices (mixtral w1/w3/w2)
              [qwen2_moe] y = y + sigmoid(h @ shared_expert_gate^T) * shared_expert(h)
  Experts are evaluated as HF does: a loop over experts, each on the rows routed to it
  (index_select the rows, index_add the weighted outputs back). self_test() checks it against a
  loop-free formulation (every expert on every row, weighted by a dense (N, E) matrix) and a
  per-row formulation.

Losses (next_token_loss; ids (B, T+1): the model reads ids[:, :-1], targets are ids[:, 1:]):
  ce    mean cross-entropy over the B*T targets (in float32 at least, as HF upcasts the logits)
  aux   HF load_balancing_loss_func over the router logits of ALL sparse layers concatenated
        (L_sparse * N rows, in layer order): p = softmax(rows) (in the logits' dtype, HF does not
        upcast here); sel = top-k of p; f[s, e] = mean over rows of [sel[:, s] == e] (k, E);
        P[e] = mean over rows of p[:, e]; aux = E * sum_{s,e} f[s, e] * P[e]
        (= E * sum_e (fraction of rows choosing e, summed over the k slots) * P[e]; the means are
        over all layers' rows together, not a mean of per-layer losses). It uses the router's
        choice BEFORE capacity dropping; gradient flows through P only (f is a count).
        With an attention_mask (B, T), both means are over the rows whose mask is 1 (HF).
  z     ST-MoE router z-loss over the same concatenated rows: mean over rows of
        logsumexp(router_logits)^2 (float32). Not in HF; ours.
  loss  = ce + router_aux_loss_coef * aux + router_z_loss_coef * z
        (router_z_loss_coef: ours, default 0; HF adds the aux term whenever labels are given)

Capacity dropping (ours, not in HF; config field `moe_capacity_factor`, 0 or absent = no limit):
  In TRAINING mode only, in each sparse layer, each expert takes at most
      C = ceil(moe_capacity_factor * N * k / E)       (N = B*T rows of this forward pass; the
                                                      product evaluated left to right in float64)
  token assignments. Assignments are taken in token order, first come first served (GShard /
  Switch): row 0's k choices (in rank order), then row 1's, ... with row n = b*T + t, i.e. batch
  row 0's positions 0..T-1, then batch row 1's. An expert that already holds C assignments
  drops every later one. A token never chooses an expert twice, so this is the same as: expert e
  keeps the first C rows (in increasing n) that chose it. A dropped assignment contributes
  nothing (neither output nor gradient); the token's other kept experts still count, with their
  weights as routed: the kept weights are NOT renormalised after dropping. A token whose every
  assignment is dropped gets y = 0 from the experts (plus the shared expert for qwen2_moe) and
  so passes through the residual unchanged. Eval mode never drops. The aux loss and the z-loss
  are computed from the router logits as if nothing were dropped.

Greedy generation recomputes the full forward for every new token (eval mode, no cache).

Run directly for a self-test: /usr/bin/python3 scripts/ref_moe.py
Used by scripts/gen_moe_fixtures.py (golden values) and bench/peers/torch_moe.py (training peer).
"""
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ref_llama import attention, causal_mask, rms_norm, rope_for  # noqa: E402

# ----------------------------------------------------------------------------- config

# transformers 4.4x defaults (MixtralConfig / Qwen2MoeConfig __init__), plus the PretrainedConfig
# fields that matter here. Mixtral calls its expert count num_local_experts (HF maps the name
# num_experts onto it); its experts' hidden size is intermediate_size.
MIXTRAL_DEFAULTS = {
    "vocab_size": 32000, "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
    "num_attention_heads": 32, "num_key_value_heads": 8, "hidden_act": "silu",
    "max_position_embeddings": 4096 * 32, "initializer_range": 0.02, "rms_norm_eps": 1e-5,
    "use_cache": True, "pad_token_id": None, "bos_token_id": 1, "eos_token_id": 2,
    "tie_word_embeddings": False, "rope_theta": 1e6, "sliding_window": None, "attention_dropout": 0.0,
    "num_experts_per_tok": 2, "num_local_experts": 8, "output_router_logits": False,
    "router_aux_loss_coef": 0.001, "router_jitter_noise": 0.0,
}
QWEN2_MOE_DEFAULTS = {
    "vocab_size": 151936, "hidden_size": 2048, "intermediate_size": 5632, "num_hidden_layers": 24,
    "num_attention_heads": 16, "num_key_value_heads": 16, "hidden_act": "silu",
    "max_position_embeddings": 32768, "initializer_range": 0.02, "rms_norm_eps": 1e-6,
    "use_cache": True, "pad_token_id": None, "bos_token_id": None, "eos_token_id": None,
    "tie_word_embeddings": False, "rope_theta": 10000.0, "rope_scaling": None,
    "use_sliding_window": False, "sliding_window": 4096, "max_window_layers": 28,
    "attention_dropout": 0.0, "decoder_sparse_step": 1, "moe_intermediate_size": 1408,
    "shared_expert_intermediate_size": 5632, "num_experts_per_tok": 4, "num_experts": 60,
    "norm_topk_prob": False, "output_router_logits": False, "router_aux_loss_coef": 0.001,
    "mlp_only_layers": [],
}
DEFAULTS = {"mixtral": MIXTRAL_DEFAULTS, "qwen2_moe": QWEN2_MOE_DEFAULTS}
ARCHITECTURES = {"mixtral": "MixtralForCausalLM", "qwen2_moe": "Qwen2MoeForCausalLM"}
# Our fields, not in HF (absent from a config = these values)
OUR_DEFAULTS = {"router_z_loss_coef": 0.0, "moe_capacity_factor": 0.0}


class ConfigError(ValueError):
    pass


def _positive_int(cfg, key, source):
    v = cfg[key]
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise ConfigError(f"{source}: {key} must be a positive integer, got {v!r}")


def _non_negative_number(cfg, key, source):
    v = cfg[key]
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v < 0:
        raise ConfigError(f"{source}: {key} must be a finite number >= 0, got {v!r}")


def is_sparse_layer(cfg, i):
    """HF's rule: mixtral, every layer; qwen2_moe, layer i is sparse iff i is not in
    mlp_only_layers and (i + 1) % decoder_sparse_step == 0 (and num_experts > 0)."""
    if cfg["model_type"] == "mixtral":
        return True
    return i not in cfg["mlp_only_layers"] and (i + 1) % cfg["decoder_sparse_step"] == 0


def parse_config(raw, source="config"):
    """HF config dict (config.json contents) -> config dict: HF's defaults filled in, our two
    fields (router_z_loss_coef, moe_capacity_factor) defaulted, and derived keys:
      num_experts               E (mixtral: num_local_experts)
      expert_intermediate_size  each routed expert's hidden size (mixtral: intermediate_size;
                                qwen2_moe: moe_intermediate_size)
      shared_expert_size        qwen2_moe: shared_expert_intermediate_size; mixtral: 0 (none)
      norm_topk_prob            mixtral: always True
      sparse_layers             [bool] per layer
    Unknown keys are kept. Errors name the field at fault."""
    mt = raw.get("model_type")
    if mt not in DEFAULTS:
        raise ConfigError(f"{source}: model_type is {mt!r}, expected one of {sorted(DEFAULTS)}")
    cfg = dict(DEFAULTS[mt])
    cfg.update(OUR_DEFAULTS)
    cfg.update(raw)
    if mt == "mixtral":
        # HF's attribute_map: "num_experts" is another name for num_local_experts
        if "num_experts" in raw:
            if "num_local_experts" in raw and raw["num_local_experts"] != raw["num_experts"]:
                raise ConfigError(f"{source}: num_experts {raw['num_experts']} != num_local_experts {raw['num_local_experts']}")
            cfg["num_local_experts"] = raw["num_experts"]
        cfg["num_experts"] = cfg["num_local_experts"]
        e_key = "num_local_experts"
    else:
        e_key = "num_experts"
    if cfg["num_key_value_heads"] is None:
        cfg["num_key_value_heads"] = cfg["num_attention_heads"]
    ints = ["vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "num_key_value_heads", e_key, "num_experts_per_tok"]
    if mt == "qwen2_moe":
        ints += ["moe_intermediate_size", "shared_expert_intermediate_size", "decoder_sparse_step"]
    for k in ints:
        _positive_int(cfg, k, source)
    if cfg["num_experts_per_tok"] > cfg[e_key]:
        raise ConfigError(f"{source}: num_experts_per_tok {cfg['num_experts_per_tok']} exceeds {e_key} {cfg[e_key]} "
                          f"(a token cannot choose more experts than there are)")
    D, H, Hkv = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_key_value_heads"]
    if D % H != 0:
        raise ConfigError(f"{source}: hidden_size {D} is not divisible by num_attention_heads {H}")
    if H % Hkv != 0:
        raise ConfigError(f"{source}: num_attention_heads {H} is not a multiple of num_key_value_heads {Hkv}")
    if cfg.get("head_dim") not in (None, D // H):
        raise ConfigError(f"{source}: head_dim {cfg['head_dim']} != hidden_size / num_attention_heads (this reference needs it equal)")
    if cfg["hidden_act"] not in ("silu", "swish"):
        raise ConfigError(f"{source}: hidden_act {cfg['hidden_act']!r} is not supported (silu)")
    rs = cfg.get("rope_scaling")
    if rs is not None and rs.get("type", rs.get("rope_type")) != "linear":
        raise ConfigError(f"{source}: rope_scaling {rs!r} is not supported (linear only)")
    window = cfg["sliding_window"] if (mt == "mixtral" or cfg["use_sliding_window"]) else None
    if window is not None:
        raise ConfigError(f"{source}: sliding_window {window} is active; this reference has full attention only")
    for k in ("router_aux_loss_coef", "router_z_loss_coef", "moe_capacity_factor"):
        _non_negative_number(cfg, k, source)
    if mt == "mixtral":
        _non_negative_number(cfg, "router_jitter_noise", source)
        if cfg["router_jitter_noise"] >= 1:
            raise ConfigError(f"{source}: router_jitter_noise {cfg['router_jitter_noise']} must be < 1")
        cfg["expert_intermediate_size"] = cfg["intermediate_size"]
        cfg["shared_expert_size"] = 0
        cfg["norm_topk_prob"] = True
    else:
        # HF's Qwen2-MoE has no jitter; refuse rather than silently ignore it
        if cfg.get("router_jitter_noise", 0):
            raise ConfigError(f"{source}: router_jitter_noise is a Mixtral field; Qwen2-MoE has no router jitter")
        if not isinstance(cfg["mlp_only_layers"], list) or not all(isinstance(i, int) for i in cfg["mlp_only_layers"]):
            raise ConfigError(f"{source}: mlp_only_layers must be a list of layer indices, got {cfg['mlp_only_layers']!r}")
        if not isinstance(cfg["norm_topk_prob"], bool):
            raise ConfigError(f"{source}: norm_topk_prob must be true or false, got {cfg['norm_topk_prob']!r}")
        cfg["expert_intermediate_size"] = cfg["moe_intermediate_size"]
        cfg["shared_expert_size"] = cfg["shared_expert_intermediate_size"]
    cfg["sparse_layers"] = [is_sparse_layer(cfg, i) for i in range(cfg["num_hidden_layers"])]
    return cfg


# The fields transformers' save_pretrained writes for each type (its own __init__ arguments, and
# the PretrainedConfig ones whose value differs from PretrainedConfig's default: bos/eos when not
# None; tie_word_embeddings always, since the class default (false) differs from the base one).
_KEYS = {
    "mixtral": ["vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "hidden_act", "max_position_embeddings", "initializer_range", "rms_norm_eps",
                "use_cache", "rope_theta", "sliding_window", "attention_dropout", "num_experts_per_tok",
                "num_local_experts", "output_router_logits", "router_aux_loss_coef", "router_jitter_noise",
                "tie_word_embeddings"],
    "qwen2_moe": ["vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                  "num_key_value_heads", "hidden_act", "max_position_embeddings", "initializer_range", "rms_norm_eps",
                  "use_cache", "rope_theta", "rope_scaling", "use_sliding_window", "sliding_window", "max_window_layers",
                  "attention_dropout", "decoder_sparse_step", "moe_intermediate_size", "shared_expert_intermediate_size",
                  "num_experts_per_tok", "num_experts", "norm_topk_prob", "output_router_logits", "router_aux_loss_coef",
                  "mlp_only_layers", "tie_word_embeddings"],
}


def hf_config_json(cfg):
    """config.json text as transformers (4.4x) save_pretrained writes the config: the type's
    fields, bos/eos/pad ids when not None, architectures, model_type, torch_dtype; plus our fields
    router_z_loss_coef / moe_capacity_factor only when nonzero. Sorted keys, indent 2.
    (transformers_version is left out: no transformers ran.)"""
    mt = cfg["model_type"]
    out = {k: cfg[k] for k in _KEYS[mt]}
    for k in ("pad_token_id", "bos_token_id", "eos_token_id"):
        if cfg[k] is not None:
            out[k] = cfg[k]
    for k in OUR_DEFAULTS:
        if cfg[k]:
            out[k] = cfg[k]
    out["architectures"] = [ARCHITECTURES[mt]]
    out["model_type"] = mt
    out["torch_dtype"] = "float32"
    return json.dumps(out, indent=2, sort_keys=True) + "\n"


# ----------------------------------------------------------------------------- tensor names

def ffn_names(cfg, i):
    """Names of layer i's feed-forward tensors:
    {"kind": "dense", "mlp": (gate, up, down)} or
    {"kind": "sparse", "router": name, "experts": [(gate, up, down)] * E, "shared": (g, u, d) | None,
     "shared_gate": name | None}."""
    p = f"model.layers.{i}."
    if not cfg["sparse_layers"][i]:
        return {"kind": "dense", "mlp": tuple(p + f"mlp.{n}.weight" for n in ("gate_proj", "up_proj", "down_proj"))}
    E = cfg["num_experts"]
    if cfg["model_type"] == "mixtral":
        b = p + "block_sparse_moe."
        return {"kind": "sparse", "router": b + "gate.weight",
                "experts": [tuple(b + f"experts.{e}.{n}.weight" for n in ("w1", "w3", "w2")) for e in range(E)],
                "shared": None, "shared_gate": None}
    b = p + "mlp."
    return {"kind": "sparse", "router": b + "gate.weight",
            "experts": [tuple(b + f"experts.{e}.{n}.weight" for n in ("gate_proj", "up_proj", "down_proj"))
                        for e in range(E)],
            "shared": tuple(b + f"shared_expert.{n}.weight" for n in ("gate_proj", "up_proj", "down_proj")),
            "shared_gate": b + "shared_expert_gate.weight"}


def param_shapes(cfg):
    """{name: shape} of every parameter, in HF's module order."""
    D, V = cfg["hidden_size"], cfg["vocab_size"]
    H, Hkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = D // H
    bias = cfg["model_type"] == "qwen2_moe"   # Qwen2-MoE: q/k/v biases, no o_proj bias
    shapes = {"model.embed_tokens.weight": (V, D)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        shapes[p + "self_attn.q_proj.weight"] = (H * hd, D)
        if bias:
            shapes[p + "self_attn.q_proj.bias"] = (H * hd,)
        shapes[p + "self_attn.k_proj.weight"] = (Hkv * hd, D)
        if bias:
            shapes[p + "self_attn.k_proj.bias"] = (Hkv * hd,)
        shapes[p + "self_attn.v_proj.weight"] = (Hkv * hd, D)
        if bias:
            shapes[p + "self_attn.v_proj.bias"] = (Hkv * hd,)
        shapes[p + "self_attn.o_proj.weight"] = (D, H * hd)
        f = ffn_names(cfg, i)
        if f["kind"] == "dense":
            I = cfg["intermediate_size"]
            g, u, d = f["mlp"]
            shapes.update({g: (I, D), u: (I, D), d: (D, I)})
        else:
            shapes[f["router"]] = (cfg["num_experts"], D)
            I = cfg["expert_intermediate_size"]
            for g, u, d in f["experts"]:
                shapes.update({g: (I, D), u: (I, D), d: (D, I)})
            if f["shared"]:
                Is = cfg["shared_expert_size"]
                g, u, d = f["shared"]
                shapes.update({g: (Is, D), u: (Is, D), d: (D, Is)})
                shapes[f["shared_gate"]] = (1, D)
        shapes[p + "input_layernorm.weight"] = (D,)
        shapes[p + "post_attention_layernorm.weight"] = (D,)
    shapes["model.norm.weight"] = (D,)
    if not cfg["tie_word_embeddings"]:
        shapes["lm_head.weight"] = (V, D)
    return shapes


def init_weights(cfg, generator=None, dtype=torch.float32):
    """HF's _init_weights: every Linear weight and the embedding ~ normal(0, initializer_range),
    biases 0, RMSNorm weights 1. (HF also zeroes the embedding row of pad_token_id when set.)"""
    std = cfg["initializer_range"]
    W = {}
    for name, shape in param_shapes(cfg).items():
        if name.endswith("norm.weight"):
            W[name] = torch.ones(shape, dtype=dtype)
        elif name.endswith(".bias"):
            W[name] = torch.zeros(shape, dtype=dtype)
        else:
            W[name] = torch.randn(shape, generator=generator, dtype=dtype) * std
    if cfg["pad_token_id"] is not None:
        W["model.embed_tokens.weight"][cfg["pad_token_id"]] = 0
    return W


def check_weights(cfg, W, source="weights"):
    """Every expected tensor present with its shape, nothing extra."""
    shapes = param_shapes(cfg)
    for name, shape in shapes.items():
        if name not in W:
            raise ValueError(f"{source}: missing tensor {name}")
        if tuple(W[name].shape) != tuple(shape):
            raise ValueError(f"{source}: tensor {name} has shape {tuple(W[name].shape)}, expected {tuple(shape)}")
    extra = sorted(set(W) - set(shapes))
    if extra:
        raise ValueError(f"{source}: unexpected tensors {extra[:5]}")


# ----------------------------------------------------------------------------- the MoE block

def swiglu(x, W, names):
    """down(silu(gate(x)) * up(x)) for names = (gate, up, down) (HF's MLP; Mixtral's w1, w3, w2)."""
    g, u, d = names
    return (F.silu(x @ W[g].T) * (x @ W[u].T)) @ W[d].T


def route(cfg, router_logits):
    """(probs (N, E), weights (N, k), selected (N, k)): softmax in float32 (float64 kept), top-k
    sorted largest first, renormalised to sum 1 when norm_topk_prob (always for mixtral)."""
    probs = F.softmax(router_logits.to(torch.promote_types(router_logits.dtype, torch.float32)), dim=-1)
    weights, selected = probs.topk(cfg["num_experts_per_tok"], dim=-1)
    if cfg["norm_topk_prob"]:
        weights = weights / weights.sum(dim=-1, keepdim=True)
    return probs, weights, selected


def expert_capacity(cfg, n_rows):
    """C = ceil(moe_capacity_factor * n_rows * k / E), or None when the factor is 0 (no limit)."""
    cf = cfg["moe_capacity_factor"]
    if not cf:
        return None
    return math.ceil(float(cf) * n_rows * cfg["num_experts_per_tok"] / cfg["num_experts"])


def capacity_keep(selected, n_experts, capacity):
    """keep (N, k) bool: walk the assignments in order (row 0's k choices, row 1's, ...); an
    expert takes an assignment while it holds fewer than `capacity`, else it is dropped."""
    held = [0] * n_experts
    keep = []
    for choices in selected.tolist():          # rows in order (plain ints: fast enough for the peer)
        row = []
        for e in choices:                      # the row's k choices in rank order
            row.append(held[e] < capacity)
            if row[-1]:
                held[e] += 1
        keep.append(row)
    return torch.tensor(keep, dtype=torch.bool).view(selected.shape)


def moe_block(cfg, W, names, h, training=False, generator=None, trace=None):
    """The sparse block on h (B, T, D) -> (y (B, T, D), router_logits (B*T, E)); the experts in a
    loop over experts as HF runs them. trace (a dict) receives the routing for debugging."""
    B, T, D = h.shape
    E, k = cfg["num_experts"], cfg["num_experts_per_tok"]
    if training and cfg.get("router_jitter_noise", 0) > 0:
        j = cfg["router_jitter_noise"]
        noise = torch.rand(h.shape, generator=generator, dtype=h.dtype) * (2 * j) + (1 - j)   # U(1-j, 1+j)
        h = h * noise
    x = h.reshape(B * T, D)
    router_logits = x @ W[names["router"]].T
    probs, weights, selected = route(cfg, router_logits)
    weights = weights.to(x.dtype)
    capacity = expert_capacity(cfg, B * T) if training else None
    keep = capacity_keep(selected, E, capacity) if capacity is not None else torch.ones(B * T, k, dtype=torch.bool)
    y = torch.zeros_like(x)
    for e in range(E):
        rows, slots = torch.where((selected == e) & keep)   # rows in increasing order
        if rows.numel() == 0:
            continue
        out = swiglu(x.index_select(0, rows), W, names["experts"][e]) * weights[rows, slots, None]
        y.index_add_(0, rows, out)                          # in place, as HF (autograd records it)
    if names["shared"]:
        y = y + torch.sigmoid(x @ W[names["shared_gate"]].T) * swiglu(x, W, names["shared"])
    if trace is not None:
        trace.update(router_logits=router_logits.detach(), probs=probs.detach(), weights=weights.detach(),
                     selected=selected, keep=keep, capacity=capacity,
                     counts=torch.bincount(selected.flatten(), minlength=E),
                     kept_counts=torch.bincount(selected[keep], minlength=E),
                     dropped=int((~keep).sum()))
    return y.view(B, T, D), router_logits


# ----------------------------------------------------------------------------- the model

def forward(cfg, W, ids, training=False, generator=None, trace=None):
    """(logits (B, T, V), [router_logits (B*T, E) of each sparse layer, in layer order]) for ids
    (B, T). training: jitter (mixtral) and capacity dropping apply. trace (a dict) receives
    {layer index: routing trace} for the sparse layers."""
    B, T = ids.shape
    eps = cfg["rms_norm_eps"]
    dtype = W["model.embed_tokens.weight"].dtype
    cos, sin = rope_for(cfg, T)
    mask = causal_mask(T)
    x = W["model.embed_tokens.weight"][ids]
    router_logits = []
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        x = x + attention(cfg, W, p, rms_norm(x, W[p + "input_layernorm.weight"], eps), cos.to(dtype), sin.to(dtype), mask)
        h = rms_norm(x, W[p + "post_attention_layernorm.weight"], eps)
        names = ffn_names(cfg, i)
        if names["kind"] == "dense":
            x = x + swiglu(h, W, names["mlp"])
        else:
            t = {} if trace is not None else None
            y, logits = moe_block(cfg, W, names, h, training, generator, t)
            if trace is not None:
                trace[i] = t
            router_logits.append(logits)
            x = x + y
    x = rms_norm(x, W["model.norm.weight"], eps)
    head = W["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else W["lm_head.weight"]
    return x @ head.T, router_logits


def load_balancing_loss(router_logits, num_experts, top_k, attention_mask=None):
    """HF's load_balancing_loss_func (Switch Transformer eqs. 4-6) over the concatenated router
    logits of all sparse layers. attention_mask (B, T) of 0/1, the same for every layer."""
    cat = torch.cat(list(router_logits), dim=0)                     # (L*N, E)
    probs = F.softmax(cat, dim=-1)
    selected = probs.topk(top_k, dim=-1).indices                    # (L*N, k)
    chosen = F.one_hot(selected, num_experts).to(probs.dtype)       # (L*N, k, E)
    if attention_mask is None:
        f = chosen.mean(dim=0)                                      # (k, E)
        P = probs.mean(dim=0)                                       # (E,)
    else:
        m = attention_mask.reshape(-1).to(probs.dtype).repeat(len(router_logits))   # (L*N,), layer-major
        f = (chosen * m[:, None, None]).sum(dim=0) / m.sum()
        P = (probs * m[:, None]).sum(dim=0) / m.sum()
    return num_experts * (f * P[None, :]).sum()


def router_z_loss(router_logits, attention_mask=None):
    """ST-MoE z-loss: mean over the concatenated rows of logsumexp(router_logits)^2, in float32
    (float64 kept); with a mask, over the rows whose mask is 1."""
    cat = torch.cat(list(router_logits), dim=0)
    z = torch.logsumexp(cat.to(torch.promote_types(cat.dtype, torch.float32)), dim=-1) ** 2
    if attention_mask is None:
        return z.mean()
    m = attention_mask.reshape(-1).to(z.dtype).repeat(len(router_logits))
    return (z * m).sum() / m.sum()


def next_token_loss(cfg, W, ids, training=False, generator=None, trace=None):
    """Losses of ids (B, T+1): the model reads ids[:, :-1] (B*T rows: aux, z and capacity count
    these) and predicts ids[:, 1:]. Returns {loss, ce, aux, z, logits, router_logits}."""
    logits, router_logits = forward(cfg, W, ids[:, :-1], training, generator, trace)
    V = logits.shape[-1]
    ce = F.cross_entropy(logits.reshape(-1, V).to(torch.promote_types(logits.dtype, torch.float32)), ids[:, 1:].reshape(-1))
    aux = load_balancing_loss(router_logits, cfg["num_experts"], cfg["num_experts_per_tok"])
    z = router_z_loss(router_logits)
    loss = ce + cfg["router_aux_loss_coef"] * aux + cfg["router_z_loss_coef"] * z
    return {"loss": loss, "ce": ce, "aux": aux, "z": z, "logits": logits, "router_logits": router_logits}


@torch.no_grad()
def greedy(cfg, W, prompt, n):
    """(ids (1, n), logits (1, n, V) that chose them): n greedy tokens after prompt (1, P), the
    full forward recomputed for every token (eval mode, no cache)."""
    seq, chosen = prompt.clone(), []
    for _ in range(n):
        last = forward(cfg, W, seq)[0][:, -1]
        chosen.append(last)
        seq = torch.cat([seq, last.argmax(-1, keepdim=True)], dim=1)
    return seq[:, prompt.shape[1]:], torch.stack(chosen, 1)


def active_params(cfg):
    """Parameters one token uses: all, less (E - k) routed experts in every sparse layer."""
    D, E, k = cfg["hidden_size"], cfg["num_experts"], cfg["num_experts_per_tok"]
    total = sum(math.prod(s) for s in param_shapes(cfg).values())
    per_expert = 3 * D * cfg["expert_intermediate_size"]
    return total - sum(cfg["sparse_layers"]) * (E - k) * per_expert


# ----------------------------------------------------------------------------- self-test

def _moe_block_dense(cfg, W, names, h, keep):
    """Loop-free: every expert on every row, combined with a dense (N, E) weight matrix that holds
    each row's kept routing weights (zeros elsewhere)."""
    B, T, D = h.shape
    x = h.reshape(B * T, D)
    _, weights, selected = route(cfg, x @ W[names["router"]].T)
    dense_w = torch.zeros(B * T, cfg["num_experts"], dtype=x.dtype).scatter(1, selected, (weights * keep).to(x.dtype))
    outs = torch.stack([swiglu(x, W, n) for n in names["experts"]], dim=1)     # (N, E, D)
    y = (dense_w[:, :, None] * outs).sum(dim=1)
    if names["shared"]:
        y = y + torch.sigmoid(x @ W[names["shared_gate"]].T) * swiglu(x, W, names["shared"])
    return y.view(B, T, D)


def _moe_block_per_row(cfg, W, names, h, keep):
    """One row at a time: softmax, top-k, renormalise, then its kept experts one by one."""
    B, T, D = h.shape
    x = h.reshape(B * T, D)
    rows = []
    for n in range(B * T):
        p = torch.softmax(x[n] @ W[names["router"]].T, dim=-1)
        order = sorted(range(cfg["num_experts"]), key=lambda e: -float(p[e]))[:cfg["num_experts_per_tok"]]
        w = p[order] / p[order].sum() if cfg["norm_topk_prob"] else p[order]
        y = torch.zeros(D, dtype=x.dtype)
        for s, e in enumerate(order):
            if keep[n, s]:
                y = y + w[s] * swiglu(x[n:n + 1], W, names["experts"][e])[0]
        if names["shared"]:
            y = y + torch.sigmoid(x[n] @ W[names["shared_gate"]][0]) * swiglu(x[n:n + 1], W, names["shared"])[0]
        rows.append(y)
    return torch.stack(rows).view(B, T, D)


def _keep_by_cumsum(selected, E, capacity):
    """capacity_keep without the Python loop: an assignment's place in its expert's queue is the
    number of earlier assignments (in row-major (row, slot) order) to the same expert."""
    onehot = F.one_hot(selected.reshape(-1), E)                     # (N*k, E)
    place = (onehot.cumsum(0) - onehot)[torch.arange(onehot.shape[0]), selected.reshape(-1)]
    return (place < capacity).view(selected.shape)


def _tiny(model_type, **over):
    base = dict(model_type=model_type, vocab_size=23, hidden_size=12, intermediate_size=10, num_hidden_layers=3,
                num_attention_heads=3, num_key_value_heads=1, num_experts_per_tok=2, rope_theta=10000.0)
    if model_type == "mixtral":
        base.update(num_local_experts=4)
    else:
        base.update(num_experts=5, moe_intermediate_size=6, shared_expert_intermediate_size=7,
                    decoder_sparse_step=1, mlp_only_layers=[1])
    base.update(over)
    return parse_config(base, f"tiny {model_type}")


def conditioned_weights(cfg, generator=None, dtype=torch.float32, router_gain=3.0, embed_std=1.0):
    """Test weights on which every parameter matters (HF's init, normal(0, 0.02) with unit norms and
    zero biases, leaves a tiny model nearly constant and the router nearly uniform):
      embeddings N(0, embed_std^2) (a tied model with embed_std 1 keeps predicting its last
      input token: the embedding dominates the residual stream); every other matrix (in, out) N(0, 1/in), so activations stay O(1);
      routers (gate.weight) N(0, (router_gain / sqrt(D))^2), so router logits spread ~router_gain
      and the top-k choice is clear; shared_expert_gate N(0, 1/D) like the other matrices;
      RMSNorm weights 1 + N(0, 0.1^2); biases N(0, 0.1^2).
    Drawn in param_shapes order from `generator`."""
    W = {}
    for name, shape in param_shapes(cfg).items():
        r = torch.randn(shape, generator=generator, dtype=dtype)
        if name.endswith("norm.weight"):
            W[name] = 1 + 0.1 * r
        elif name.endswith(".bias"):
            W[name] = 0.1 * r
        elif name == "model.embed_tokens.weight":
            W[name] = embed_std * r
        elif name.endswith(".gate.weight"):   # a router (mixtral block_sparse_moe.gate, qwen2_moe mlp.gate)
            W[name] = router_gain * r / math.sqrt(shape[1])
        else:
            W[name] = r / math.sqrt(shape[1])
    return W


def _conditioned(cfg, seed, dtype):
    return conditioned_weights(cfg, torch.Generator().manual_seed(seed), dtype)


def self_test():
    torch.manual_seed(0)
    # config rules
    for bad, field in ((dict(num_experts_per_tok=5), "num_experts_per_tok"), (dict(num_local_experts=0), "num_local_experts")):
        try:
            _tiny("mixtral", **bad)
        except ConfigError as e:
            assert field in str(e), e
        else:
            raise AssertionError(f"{bad} accepted")
    try:
        _tiny("qwen2_moe", num_experts_per_tok=6)
    except ConfigError as e:
        assert "num_experts_per_tok 6 exceeds num_experts 5" in str(e), e
    else:
        raise AssertionError("k > E accepted")
    q = _tiny("qwen2_moe", num_hidden_layers=6, decoder_sparse_step=2, mlp_only_layers=[3])
    assert q["sparse_layers"] == [False, True, False, False, False, True], q["sparse_layers"]
    assert _tiny("qwen2_moe", num_hidden_layers=3, decoder_sparse_step=2, mlp_only_layers=[0])["sparse_layers"] == [False, True, False]
    again = parse_config(json.loads(hf_config_json(q)))
    assert {k: v for k, v in again.items() if k not in ("architectures", "torch_dtype")} == q, "config.json round trip"

    # capacity: loop == cumsum formulation
    for N, k, E, C in ((17, 2, 4, 5), (9, 3, 5, 1), (30, 1, 3, 7)):
        sel = torch.stack([torch.randperm(E)[:k] for _ in range(N)])
        assert torch.equal(capacity_keep(sel, E, C), _keep_by_cumsum(sel, E, C))
        assert int(capacity_keep(sel, E, C).sum()) == sum(min(C, int((sel == e).sum())) for e in range(E))

    for mt in ("mixtral", "qwen2_moe"):
        for norm in (False, True):
            cfg = _tiny(mt, norm_topk_prob=norm, moe_capacity_factor=0.75, router_aux_loss_coef=0.3, router_z_loss_coef=0.05)
            W = _conditioned(cfg, 1, torch.float64)
            ids = torch.randint(0, cfg["vocab_size"], (2, 8))
            i = cfg["sparse_layers"].index(True)
            names = ffn_names(cfg, i)
            h = torch.randn(2, 7, cfg["hidden_size"], dtype=torch.float64)
            # the expert loop == loop-free == per-row, without and with dropping
            t = {}
            y, _ = moe_block(cfg, W, names, h, training=True, trace=t)
            assert t["dropped"] > 0, "the tiny capacity case drops nothing"
            for keep in (t["keep"], torch.ones_like(t["keep"])):
                ref = _moe_block_dense(cfg, W, names, h, keep)
                assert torch.allclose(_moe_block_per_row(cfg, W, names, h, keep), ref, atol=1e-12)
            assert torch.allclose(y, _moe_block_dense(cfg, W, names, h, t["keep"]), atol=1e-12), "expert loop != dense"
            y_eval, _ = moe_block(cfg, W, names, h)
            assert torch.allclose(y_eval, _moe_block_dense(cfg, W, names, h, torch.ones_like(t["keep"])), atol=1e-12)
            if mt == "mixtral" or norm:
                assert torch.allclose(t["weights"].sum(-1), torch.ones(14, dtype=torch.float64)), "weights not renormalised"
            # capacity large enough to never drop == no dropping; eval == no dropping
            no_cap = dict(cfg, moe_capacity_factor=0.0)
            big = dict(cfg, moe_capacity_factor=cfg["num_experts"] / cfg["num_experts_per_tok"])   # C = N
            ref_logits = forward(no_cap, W, ids, training=True)[0]
            assert torch.equal(forward(big, W, ids, training=True)[0], ref_logits)
            assert torch.equal(forward(cfg, W, ids, training=False)[0], ref_logits)
            assert not torch.allclose(forward(cfg, W, ids, training=True)[0], ref_logits), "dropping changed nothing"
            # aux: HF's per-slot form == the per-expert form; a full mask == no mask; a mask == leaving the rows out
            _, rl = forward(cfg, W, ids)
            cat = torch.cat(rl)
            p = torch.softmax(cat, -1)
            frac = torch.bincount(p.topk(cfg["num_experts_per_tok"], -1).indices.flatten(), minlength=cfg["num_experts"]) / cat.shape[0]
            aux = load_balancing_loss(rl, cfg["num_experts"], cfg["num_experts_per_tok"])
            assert torch.allclose(aux, cfg["num_experts"] * (frac * p.mean(0)).sum())
            assert torch.allclose(load_balancing_loss(rl, cfg["num_experts"], cfg["num_experts_per_tok"], torch.ones(2, 8)), aux)
            mask = torch.ones(2, 8)
            mask[1, :3] = 0
            sub = [r.view(2, 8, -1)[mask.bool()] for r in rl]
            assert torch.allclose(load_balancing_loss(rl, cfg["num_experts"], cfg["num_experts_per_tok"], mask),
                                  load_balancing_loss(sub, cfg["num_experts"], cfg["num_experts_per_tok"]))
            assert torch.allclose(router_z_loss(rl, mask), router_z_loss(sub))
            zz = torch.stack([torch.log(torch.exp(r).sum()) ** 2 for r in cat]).mean()
            assert torch.allclose(router_z_loss(rl), zz)
            # finite differences of the total loss (training mode, dropping on) in float64
            Wg = {n: t_.clone().requires_grad_() for n, t_ in W.items()}
            ids9 = torch.randint(0, cfg["vocab_size"], (2, 9))
            out = next_token_loss(cfg, Wg, ids9, training=True)
            out["loss"].backward()
            for name, w in Wg.items():
                assert w.grad is not None and w.grad.abs().max() > 0, f"{mt}: no gradient for {name}"
                for j in torch.randperm(w.numel())[:3].tolist():
                    def at(d):
                        W2 = dict(W)
                        W2[name] = W[name].clone()
                        W2[name].view(-1)[j] += d
                        return next_token_loss(cfg, W2, ids9, training=True)["loss"].item()
                    fd = (at(1e-6) - at(-1e-6)) / 2e-6
                    g = w.grad.view(-1)[j].item()
                    assert abs(fd - g) < 1e-7 + 1e-5 * abs(fd), f"{mt} grad {name}[{j}]: {g} vs fd {fd}"

    # jitter: eval ignores it; training applies it, reproducibly from a generator
    cfg = _tiny("mixtral", router_jitter_noise=0.1)
    W = _conditioned(cfg, 2, torch.float64)
    ids = torch.randint(0, cfg["vocab_size"], (2, 6))
    plain = forward(dict(cfg, router_jitter_noise=0.0), W, ids)[0]
    assert torch.equal(forward(cfg, W, ids)[0], plain)
    a = forward(cfg, W, ids, True, torch.Generator().manual_seed(5))[0]
    assert torch.equal(a, forward(cfg, W, ids, True, torch.Generator().manual_seed(5))[0])
    assert not torch.allclose(a, plain)

    # identical experts (renormalised weights) and no shared expert == the dense LLaMA / Qwen2 of ref_llama
    from ref_llama import forward as llama_forward
    for mt, dense_type in (("mixtral", "mistral"), ("qwen2_moe", "qwen2")):
        cfg = _tiny(mt, norm_topk_prob=True)
        W = _conditioned(cfg, 3, torch.float64)
        Wd = {n: t_ for n, t_ in W.items() if "mlp" not in n and "block_sparse_moe" not in n}
        for i in range(cfg["num_hidden_layers"]):
            f = ffn_names(cfg, i)
            dense = tuple(f"model.layers.{i}.mlp.{n}.weight" for n in ("gate_proj", "up_proj", "down_proj"))
            src = f["mlp"] if f["kind"] == "dense" else f["experts"][0]
            if f["kind"] == "sparse":
                for ex in f["experts"]:
                    for a_, b_ in zip(ex, f["experts"][0]):
                        W[a_] = W[b_]
                if f["shared"]:
                    W[f["shared"][2]] = torch.zeros_like(W[f["shared"][2]])
            for a_, b_ in zip(dense, src):
                Wd[a_] = W[b_]
        dcfg = dict(cfg, model_type=dense_type)
        assert torch.allclose(forward(cfg, W, ids)[0], llama_forward(dcfg, Wd, ids), atol=1e-10), f"{mt} != dense"

    # greedy recomputes; float32 weights of the HF init run
    cfg = _tiny("qwen2_moe")
    W = init_weights(cfg, torch.Generator().manual_seed(4))
    check_weights(cfg, W)
    toks, chosen = greedy(cfg, W, ids[:1, :3], 4)
    assert toks.shape == (1, 4) and torch.equal(chosen.argmax(-1), toks)
    print("ref_moe self-test passed")


if __name__ == "__main__":
    self_test()
