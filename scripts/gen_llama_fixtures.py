"""Golden fixtures for tslm's LLaMA family, from an independent PyTorch implementation.

Run: /usr/bin/python3 scripts/gen_llama_fixtures.py   (Debian: apt-get install python3-torch)

The model below is written from the LLaMA / LLaMA-2 papers and Hugging Face's published
semantics (RMSNorm pre-norm, rotate-half RoPE on q and k, grouped-query attention by repeating
KV heads, SwiGLU MLP, optional tied embeddings, optional q/k/v biases as Qwen2 has), not from
tslm's code. For each variant it writes, under test/fixtures/llama/:
  <name>.safetensors  weights with Hugging Face tensor names (F32), written with the standard
                      library following the safetensors spec
  <name>.json         {config, input_ids, logits (B,T,V flat), greedy: {prompt, ids}} where
                      `greedy` holds 12 tokens generated greedily by recomputing the full
                      forward pass each step (no KV cache), so a cache bug cannot hide.
Deterministic: torch.manual_seed per variant.
"""
import json
import math
import os
import struct

import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "llama")


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

        q = proj("q_proj").view(B, T, H, hd).transpose(1, 2)
        k = proj("k_proj").view(B, T, Hkv, hd).transpose(1, 2)
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


def make_weights(cfg):
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


def r9(xs):
    return [float(f"{x:.9g}") for x in xs]


BASE = dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, max_position_embeddings=64, rms_norm_eps=1e-5,
            rope_theta=10000.0, hidden_act="silu", bos_token_id=1, eos_token_id=2)
VARIANTS = {
    "llama_gqa_untied": dict(BASE, model_type="llama", num_key_value_heads=2, tie_word_embeddings=False),
    "llama_mha_tied": dict(BASE, model_type="llama", num_key_value_heads=4, tie_word_embeddings=True,
                           rope_theta=500000.0, rope_scaling={"type": "linear", "factor": 2.0}),
    "qwen2_bias": dict(BASE, model_type="qwen2", num_key_value_heads=1, tie_word_embeddings=True, rms_norm_eps=1e-6,
                       rope_theta=1000000.0),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for seed, (name, cfg) in enumerate(VARIANTS.items()):
        torch.manual_seed(1000 + seed)
        W = make_weights(cfg)
        ids = torch.randint(0, cfg["vocab_size"], (2, 9))
        with torch.no_grad():
            logits = forward(cfg, W, ids)
            prompt = ids[:1, :5]
            seq = prompt.clone()
            for _ in range(12):
                nxt = forward(cfg, W, seq)[:, -1].argmax(-1, keepdim=True)
                seq = torch.cat([seq, nxt], dim=1)
        write_safetensors(os.path.join(OUT, name + ".safetensors"), W)
        with open(os.path.join(OUT, name + ".json"), "w") as f:
            json.dump({"config": cfg, "input_ids": ids.tolist(), "logits_shape": list(logits.shape),
                       "logits": r9(logits.flatten().tolist()),
                       "greedy": {"prompt": prompt[0].tolist(), "ids": seq[0, 5:].tolist()}}, f)
        print(name, "written")


if __name__ == "__main__":
    main()
