"""An independent PyTorch LLaMA: the reference that tslm's LLaMA family is checked against.

Written from the LLaMA / LLaMA-2 papers and Hugging Face's published semantics (RMSNorm
pre-norm, rotate-half RoPE on q and k, grouped-query attention by repeating KV heads, SwiGLU
MLP, optional tied embeddings, optional q/k/v biases as Qwen2 has), not from tslm's code.
Weights are a dict of Hugging Face tensor names -> float32 tensors; the forward pass is plain
tensor code, so it is differentiable when the weights require grad (bench/peers/torch_train.py
trains it). Safetensors files are read and written with the standard library, following the
spec (8-byte little-endian header length, JSON header, raw little-endian data).

Used by scripts/gen_llama_fixtures.py (golden logits), scripts/check_interop.py (the loss of
a checkpoint tslm wrote) and bench/peers/torch_train.py (training throughput peer).
"""
import json
import math
import struct

import torch


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


def forward(cfg, W, ids):
    """Logits (B, T, V) for token ids (B, T) (int64)."""
    B, T = ids.shape
    H, Hkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    D = cfg["hidden_size"]
    hd = D // H
    eps = cfg["rms_norm_eps"]
    scaling = (cfg.get("rope_scaling") or {}).get("factor", 1.0)
    cos, sin = rope_cos_sin(T, hd, cfg["rope_theta"], scaling)
    x = W["model.embed_tokens.weight"][ids]
    mask = torch.full((T, T), float("-inf")).triu(1)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        h = rms_norm(x, W[p + "input_layernorm.weight"], eps)

        def proj(name):
            y = h @ W[p + f"self_attn.{name}.weight"].T
            b = W.get(p + f"self_attn.{name}.bias")
            return y + b if b is not None else y

        q = proj("q_proj").view(B, T, H, hd).transpose(1, 2)      # (B, H, T, hd)
        k = proj("k_proj").view(B, T, Hkv, hd).transpose(1, 2)    # (B, Hkv, T, hd)
        v = proj("v_proj").view(B, T, Hkv, hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(H // Hkv, dim=1)
        v = v.repeat_interleave(H // Hkv, dim=1)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(hd) + mask
        o = (att.softmax(-1) @ v).transpose(1, 2).reshape(B, T, D)
        x = x + o @ W[p + "self_attn.o_proj.weight"].T
        h = rms_norm(x, W[p + "post_attention_layernorm.weight"], eps)
        g = torch.nn.functional.silu(h @ W[p + "mlp.gate_proj.weight"].T)
        u = h @ W[p + "mlp.up_proj.weight"].T
        x = x + (g * u) @ W[p + "mlp.down_proj.weight"].T
    x = rms_norm(x, W["model.norm.weight"], eps)
    head = W["model.embed_tokens.weight"] if cfg["tie_word_embeddings"] else W["lm_head.weight"]
    return x @ head.T


def next_token_loss(cfg, W, ids):
    """Mean next-token cross-entropy of ids (B, T+1): positions 0..T-1 predict 1..T."""
    logits = forward(cfg, W, ids[:, :-1])
    V = logits.shape[-1]
    return torch.nn.functional.cross_entropy(logits.reshape(-1, V), ids[:, 1:].reshape(-1))


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
    header, blobs, off = {}, [], 0
    for name in sorted(W):
        t = W[name].contiguous().float()
        b = t.numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


_ST_DTYPES = {"F32": (torch.float32, 4), "F16": (torch.float16, 2), "BF16": (torch.bfloat16, 2)}


def read_safetensors(path):
    """{name: float32 tensor} from a safetensors file (F32, F16 or BF16 tensors), checking the
    header against the spec: offsets contiguous from 0, sizes matching shape x dtype."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise ValueError(f"{path}: too short for a safetensors file ({len(data)} bytes)")
    (n,) = struct.unpack("<Q", data[:8])
    if 8 + n > len(data):
        raise ValueError(f"{path}: header length {n} runs past the end of the file ({len(data)} bytes)")
    header = json.loads(data[8:8 + n].decode("utf-8"))
    body = data[8 + n:]
    out, spans = {}, []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] not in _ST_DTYPES:
            raise ValueError(f"{path}: tensor {name} has dtype {info['dtype']} (expected F32, F16 or BF16)")
        dtype, size = _ST_DTYPES[info["dtype"]]
        s, e = info["data_offsets"]
        count = math.prod(info["shape"])
        if e - s != count * size or e > len(body):
            raise ValueError(f"{path}: tensor {name}: offsets [{s}, {e}) do not hold shape {info['shape']} {info['dtype']}")
        spans.append((s, e))
        raw = bytearray(body[s:e])  # a writable copy, so torch does not warn
        t = torch.frombuffer(raw, dtype=dtype) if count else torch.empty(0, dtype=dtype)
        out[name] = t.reshape(info["shape"]).float()
    spans.sort()
    pos = 0
    for s, e in spans:
        if s != pos:
            raise ValueError(f"{path}: tensor data is not contiguous (gap or overlap at byte {pos})")
        pos = e
    if pos != len(body):
        raise ValueError(f"{path}: {len(body) - pos} trailing bytes after the last tensor")
    return out
