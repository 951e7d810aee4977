"""An independent PyTorch LLaMA: the reference that tslm's LLaMA family is checked against.

Written from the LLaMA / LLaMA-2 papers and Hugging Face's published semantics (RMSNorm
pre-norm, rotate-half RoPE on q and k, grouped-query attention by repeating KV heads, SwiGLU
MLP, optional tied embeddings, optional q/k/v biases as Qwen2 has), not from tslm's code.
Weights are a dict of Hugging Face tensor names -> float32 tensors; the forward pass is plain
tensor code, so it is differentiable when the weights require grad (bench/peers/torch_train.py
trains it). Safetensors files are read and written with the standard library, following the
spec (8-byte little-endian header length, JSON header, raw little-endian data).

Used by scripts/gen_llama_fixtures.py (golden logits), scripts/check_interop.py (the loss of
a checkpoint tslm wrote), bench/peers/torch_train.py (training throughput peer) and
scripts/ref_moe.py (its attention, RoPE and RMSNorm, for the mixture-of-experts models).
"""
import math

import torch

from st import read_safetensors as _st_read, write_safetensors as _st_write


def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope_cos_sin(T, hd, theta, scaling, offset=0):
    inv = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    pos = (torch.arange(offset, offset + T, dtype=torch.float64) / scaling)[:, None]
    ang = pos * inv[None, :]
    emb = torch.cat([ang, ang], dim=-1)
    return emb.cos().float(), emb.sin().float()


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


def attention(cfg, W, p, h, cos, sin, mask):
    """Self-attention of one layer (prefix p, e.g. "model.layers.0.") on the normed input h (B, T, D):
    q/k/v projections (+ biases where W has them), rotate-half RoPE with cos/sin (T, hd), GQA by
    repeating each KV head H/Hkv times, scaled dot product + mask (T, T), softmax, o_proj."""
    B, T, D = h.shape
    H, Hkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = D // H

    def proj(name):
        y = h @ W[p + f"self_attn.{name}.weight"].T
        b = W.get(p + f"self_attn.{name}.bias")
        return y + b if b is not None else y

    q = proj("q_proj").view(B, T, H, hd)
    k = proj("k_proj").view(B, T, Hkv, hd)
    if cfg["model_type"] == "chameleon":
        # QK-norm (Chameleon): layer norm of each head over head_dim, then weight and bias per (head, dim).
        q = torch.nn.functional.layer_norm(q, (hd,)) * W[p + "self_attn.q_norm.weight"] + W[p + "self_attn.q_norm.bias"]
        k = torch.nn.functional.layer_norm(k, (hd,)) * W[p + "self_attn.k_norm.weight"] + W[p + "self_attn.k_norm.bias"]
    q = q.transpose(1, 2)      # (B, H, T, hd)
    k = k.transpose(1, 2)      # (B, Hkv, T, hd)
    v = proj("v_proj").view(B, T, Hkv, hd).transpose(1, 2)
    q = q * cos + rotate_half(q) * sin
    k = k * cos + rotate_half(k) * sin
    k = k.repeat_interleave(H // Hkv, dim=1)
    v = v.repeat_interleave(H // Hkv, dim=1)
    att = (q @ k.transpose(-1, -2)) / math.sqrt(hd) + mask
    o = (att.softmax(-1) @ v).transpose(1, 2).reshape(B, T, D)
    return o @ W[p + "self_attn.o_proj.weight"].T


def rope_for(cfg, T):
    """cos, sin (T, head_dim) for positions 0..T-1 under cfg's rope_theta and linear rope_scaling."""
    hd = cfg["hidden_size"] // cfg["num_attention_heads"]
    scaling = (cfg.get("rope_scaling") or {}).get("factor", 1.0)
    return rope_cos_sin(T, hd, cfg["rope_theta"], scaling)


def causal_mask(T):
    """(T, T) additive mask: 0 on and below the diagonal, -inf above."""
    return torch.full((T, T), float("-inf")).triu(1)


def sliding_window(cfg):
    """The attention window in effect: Mistral's sliding_window, Qwen2's when use_sliding_window; else None."""
    w = cfg.get("sliding_window")
    if not w:
        return None
    if cfg["model_type"] == "mistral" or (cfg["model_type"] == "qwen2" and cfg.get("use_sliding_window")):
        return w
    return None


def window_mask(T, window):
    """(T, T) additive mask of Hugging Face's sliding-window attention: query i sees key j only if
    i - window < j <= i (its own position and the window - 1 before it)."""
    m = causal_mask(T)
    if window is not None:
        i = torch.arange(T).view(-1, 1)
        j = torch.arange(T).view(1, -1)
        m = m.masked_fill(j <= i - window, float("-inf"))
    return m


def forward(cfg, W, ids):
    """Logits (B, T, V) for token ids (B, T) (int64)."""
    B, T = ids.shape
    eps = cfg["rms_norm_eps"]
    cos, sin = rope_for(cfg, T)
    x = W["model.embed_tokens.weight"][ids]
    full, windowed = causal_mask(T), window_mask(T, sliding_window(cfg))
    # Qwen2: layers below max_window_layers (default 28) attend to everything; Mistral: none do.
    first_windowed = cfg.get("max_window_layers", 28) if cfg["model_type"] == "qwen2" else 0
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        mask = windowed if i >= first_windowed else full

        def mlp(h):
            g = torch.nn.functional.silu(h @ W[p + "mlp.gate_proj.weight"].T)
            return (g * (h @ W[p + "mlp.up_proj.weight"].T)) @ W[p + "mlp.down_proj.weight"].T
        if cfg.get("swin_norm"):
            # Chameleon's norm reordering: the norms on the blocks' outputs.
            x = x + rms_norm(attention(cfg, W, p, x, cos, sin, mask), W[p + "input_layernorm.weight"], eps)
            x = x + rms_norm(mlp(x), W[p + "post_attention_layernorm.weight"], eps)
            continue
        x = x + attention(cfg, W, p, rms_norm(x, W[p + "input_layernorm.weight"], eps), cos, sin, mask)
        x = x + mlp(rms_norm(x, W[p + "post_attention_layernorm.weight"], eps))
    x = rms_norm(x, W["model.norm.weight"], eps)
    head = W["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else W["lm_head.weight"]
    return x @ head.T


def next_token_loss(cfg, W, ids):
    """Mean next-token cross-entropy of ids (B, T+1): positions 0..T-1 predict 1..T."""
    logits = forward(cfg, W, ids[:, :-1])
    V = logits.shape[-1]
    return torch.nn.functional.cross_entropy(logits.reshape(-1, V), ids[:, 1:].reshape(-1))


def z_loss(cfg, W, ids):
    """Chameleon's z-loss of ids (B, T+1): mean over the predicting positions of logsumexp(logits)^2."""
    logits = forward(cfg, W, ids[:, :-1])
    return (torch.logsumexp(logits, -1) ** 2).mean()


def make_weights(cfg):
    """Random weights (torch's global generator) with a scale that keeps activations O(1)."""
    D, I, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    H, Hkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = D // H
    W = {"model.embed_tokens.weight": torch.randn(V, D) * 0.5}
    bias = cfg["model_type"] == "qwen2"
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        W[p + "input_layernorm.weight"] = 1 + 0.1 * torch.randn(D)
        W[p + "self_attn.q_proj.weight"] = torch.randn(H * hd, D) / math.sqrt(D)
        W[p + "self_attn.k_proj.weight"] = torch.randn(Hkv * hd, D) / math.sqrt(D)
        W[p + "self_attn.v_proj.weight"] = torch.randn(Hkv * hd, D) / math.sqrt(D)
        if bias:
            W[p + "self_attn.q_proj.bias"] = 0.1 * torch.randn(H * hd)
            W[p + "self_attn.k_proj.bias"] = 0.1 * torch.randn(Hkv * hd)
            W[p + "self_attn.v_proj.bias"] = 0.1 * torch.randn(Hkv * hd)
        if cfg["model_type"] == "chameleon":
            W[p + "self_attn.q_norm.weight"] = 1 + 0.1 * torch.randn(H, hd)
            W[p + "self_attn.q_norm.bias"] = 0.1 * torch.randn(H, hd)
            W[p + "self_attn.k_norm.weight"] = 1 + 0.1 * torch.randn(Hkv, hd)
            W[p + "self_attn.k_norm.bias"] = 0.1 * torch.randn(Hkv, hd)
        W[p + "self_attn.o_proj.weight"] = torch.randn(D, H * hd) / math.sqrt(H * hd)
        W[p + "post_attention_layernorm.weight"] = 1 + 0.1 * torch.randn(D)
        W[p + "mlp.gate_proj.weight"] = torch.randn(I, D) / math.sqrt(D)
        W[p + "mlp.up_proj.weight"] = torch.randn(I, D) / math.sqrt(D)
        W[p + "mlp.down_proj.weight"] = torch.randn(D, I) / math.sqrt(I)
    W["model.norm.weight"] = 1 + 0.1 * torch.randn(D)
    if not cfg["tie_word_embeddings"]:
        W["lm_head.weight"] = torch.randn(V, D) / math.sqrt(D)
    return W


def write_safetensors(path, W):
    """Write {name: tensor} as F32 with transformers' {"format": "pt"} metadata (scripts/st.py)."""
    _st_write(path, {name: t.contiguous().float() for name, t in W.items()}, {"format": "pt"})


def read_safetensors(path):
    """{name: float32 tensor} from a safetensors file of F32, F16 or BF16 tensors (scripts/st.py
    reads it, checking the header against the spec)."""
    out = {}
    for name, t in _st_read(path).items():
        if t.dtype not in (torch.float32, torch.float16, torch.bfloat16):
            raise ValueError(f"{path}: tensor {name} has dtype {t.dtype} (expected F32, F16 or BF16)")
        out[name] = t.float()
    return out
