"""PyTorch peer for mixture-of-experts benchmarks: training throughput of the independent MoE
LLaMA in scripts/ref_moe.py (HF MixtralForCausalLM / Qwen2MoeForCausalLM semantics; the experts
run as HF runs them, a loop over experts, each on the rows routed to it with index_select and
index_add_).

Usage:
  /usr/bin/python3 bench/peers/torch_moe.py --config CONFIG --batch B --seq L --steps S --threads T
        [--warmup 2] [--seed 0] [--tokens FILE [--tokens-dtype uint16|int32]] [--lr 1e-3]
        [--beta1 0.9] [--beta2 0.95] [--eps 1e-8] [--weight-decay 0.1] [--clip 1.0]

CONFIG: a config.json path or inline JSON with HF Mixtral / Qwen2-MoE fields (model_type is
required; missing fields take HF's defaults, so give at least the sizes), plus ours:
router_z_loss_coef, moe_capacity_factor (see ref_moe.py).

HF's init (ref_moe.init_weights: normal(0, initializer_range), unit norms, zero biases),
torch.optim.AdamW (weight decay on matrices only: every 2-D tensor, so embeddings, routers and
experts, not norms or biases), clip_grad_norm_ (0 = off). One step = forward in training mode
(router jitter and capacity dropping apply when configured) + backward of
ce + router_aux_loss_coef * aux + router_z_loss_coef * z + clip + step + zero_grad, on a (B, L+1)
batch of random tokens or random windows of the token file (raw little-endian ids).
Prints ONE JSON line:
  {tokens_per_second (steps after the first `warmup`), step_ms (median of those), peak_rss_mb
   (getrusage ru_maxrss), loss_first, loss_last (total losses), params, active_params (params one
   token uses: all less the E-k unchosen experts of every sparse layer), aux_last, z_last,
   ms_per_step [...], torch, threads, ...}
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from ref_moe import active_params, init_weights, next_token_loss, parse_config  # noqa: E402
from peer_common import load_config, peak_rss_mb, token_source  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True, help="config.json path or inline JSON (HF Mixtral / Qwen2-MoE fields)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2, help="first steps left out of the timing")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tokens", help="token file (raw little-endian ids); random tokens when absent")
    ap.add_argument("--tokens-dtype", choices=["uint16", "int32"], default="uint16")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--beta1", type=float, default=0.9)
    ap.add_argument("--beta2", type=float, default=0.95)
    ap.add_argument("--eps", type=float, default=1e-8)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--clip", type=float, default=1.0, help="clip_grad_norm_ max norm (0 = off)")
    args = ap.parse_args()
    if args.steps <= args.warmup:
        raise SystemExit(f"--steps {args.steps} must exceed --warmup {args.warmup} (nothing would be timed)")

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    cfg = load_config(args.config, parse_config)
    W = {n: t.requires_grad_() for n, t in init_weights(cfg, gen).items()}
    params = list(W.values())
    opt = torch.optim.AdamW([{"params": [p for p in params if p.ndim >= 2], "weight_decay": args.weight_decay},
                             {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}],
                            lr=args.lr, betas=(args.beta1, args.beta2), eps=args.eps)
    draw = token_source(args, cfg["vocab_size"], gen)
    ms, losses = [], []
    for _ in range(args.steps):
        ids = draw(args.batch, args.seq + 1)
        t0 = time.perf_counter()
        out = next_token_loss(cfg, W, ids, training=True, generator=gen)
        out["loss"].backward()
        if args.clip > 0:
            torch.nn.utils.clip_grad_norm_(params, args.clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(out["loss"].item())
        ms.append((time.perf_counter() - t0) * 1000)
    timed = ms[args.warmup:]
    print(json.dumps({
        "tokens_per_second": args.batch * args.seq * len(timed) / (sum(timed) / 1000),
        "step_ms": statistics.median(timed),
        "peak_rss_mb": peak_rss_mb(),
        "loss_first": losses[0], "loss_last": losses[-1],
        "params": sum(p.numel() for p in params), "active_params": active_params(cfg),
        "aux_last": out["aux"].item(), "z_last": out["z"].item(),
        "ms_per_step": [round(x, 1) for x in ms],
        "batch": args.batch, "seq": args.seq, "steps": args.steps, "warmup": args.warmup,
        "optimizer": {"lr": args.lr, "betas": [args.beta1, args.beta2], "eps": args.eps,
                      "weight_decay": args.weight_decay, "clip": args.clip},
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "config": {k: cfg[k] for k in ("model_type", "vocab_size", "hidden_size", "num_hidden_layers", "num_experts",
                                       "num_experts_per_tok", "expert_intermediate_size", "shared_expert_size",
                                       "sparse_layers", "moe_capacity_factor", "router_aux_loss_coef",
                                       "router_z_loss_coef")},
    }))


if __name__ == "__main__":
    main()
