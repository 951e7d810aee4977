"""Peer for bench/train.ts: PyTorch training throughput of a LLaMA config.

Usage: /usr/bin/python3 bench/peers/torch_train.py '<json>'
  json: {"config": HF config object, "batch": B, "seq_len": T, "steps": N, "warmup": W,
         "threads": n, "seed": s}
Trains the independent LLaMA of scripts/ref_llama.py (its forward pass on leaf tensors that
require grad; attention as HF's eager path: q k^T, causal mask, softmax, v; GQA by repeating KV
heads) with torch.optim.AdamW (lr 5e-4, betas (0.9, 0.95), eps 1e-8, weight decay 0.1 on
matrices only) and clip_grad_norm_(1.0): one step is forward + backward + clip + step +
zero_grad on a random (B, T+1) batch, as tslm's trainer does. torch.set_num_threads(threads).
Prints JSON {tokens_per_s (steps after the first W), tokens_per_cpu_s (the same over the
process's CPU time, all threads), ms_per_step [...], loss_first, loss_last,
peak_rss_mib (getrusage ru_maxrss), params, torch}.
"""
import json
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from ref_llama import next_token_loss  # noqa: E402


def init_weights(cfg, std):
    """HF LLaMA's init: normal(0, initializer_range) matrices, ones for the norms."""
    D, I, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    H, Hkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    hd = D // H
    shapes = {"model.embed_tokens.weight": (V, D), "model.norm.weight": (D,)}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        shapes.update({
            p + "input_layernorm.weight": (D,), p + "post_attention_layernorm.weight": (D,),
            p + "self_attn.q_proj.weight": (H * hd, D), p + "self_attn.k_proj.weight": (Hkv * hd, D),
            p + "self_attn.v_proj.weight": (Hkv * hd, D), p + "self_attn.o_proj.weight": (D, H * hd),
            p + "mlp.gate_proj.weight": (I, D), p + "mlp.up_proj.weight": (I, D), p + "mlp.down_proj.weight": (D, I),
        })
    if not cfg["tie_word_embeddings"]:
        shapes["lm_head.weight"] = (V, D)
    return {n: (torch.randn(s) * std if len(s) == 2 else torch.ones(s)).requires_grad_() for n, s in shapes.items()}


def main():
    spec = json.loads(sys.argv[1])
    cfg = dict(spec["config"])
    cfg.setdefault("num_key_value_heads", cfg["num_attention_heads"])
    cfg.setdefault("rms_norm_eps", 1e-5)
    cfg.setdefault("rope_theta", 10000.0)
    cfg.setdefault("tie_word_embeddings", False)
    B, T, steps, warmup = spec["batch"], spec["seq_len"], spec["steps"], spec.get("warmup", 2)
    torch.set_num_threads(spec["threads"])
    torch.manual_seed(spec.get("seed", 0))
    W = init_weights(cfg, cfg.get("initializer_range", 0.02))
    params = list(W.values())
    opt = torch.optim.AdamW([
        {"params": [p for p in params if p.ndim >= 2], "weight_decay": 0.1},
        {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0},
    ], lr=5e-4, betas=(0.9, 0.95), eps=1e-8)
    ms, losses = [], []
    cpu0 = time.process_time()
    for step in range(steps):
        if step == warmup:
            cpu0 = time.process_time()
        ids = torch.randint(0, cfg["vocab_size"], (B, T + 1))
        t0 = time.perf_counter()
        loss = next_token_loss(cfg, W, ids)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        ms.append((time.perf_counter() - t0) * 1000)
    cpu = time.process_time() - cpu0
    timed = ms[warmup:]
    print(json.dumps({
        "tokens_per_s": B * T * len(timed) / (sum(timed) / 1000) if timed else None,
        "tokens_per_cpu_s": B * T * len(timed) / cpu if timed else None,
        "ms_per_step": [round(x, 1) for x in ms], "loss_first": losses[0], "loss_last": losses[-1],
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "params": sum(p.numel() for p in params), "torch": torch.__version__, "threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    main()
