"""PyTorch peer for Mamba benchmarks: training and recurrent-decoding throughput of the
independent Mamba in scripts/ref_mamba.py (HF MambaForCausalLM semantics; the selective scan is
a Python loop over time, as HF's CPU path `slow_forward` runs it).

Usage:
  /usr/bin/python3 bench/peers/torch_mamba.py --config CONFIG --batch B --seq L --steps S --threads T
        [--tokens FILE [--tokens-dtype uint16|int32]] [--seed 0] [--lr 1e-3] [--beta1 0.9] [--beta2 0.95]
        [--eps 1e-8] [--weight-decay 0.1] [--clip 1.0] [--warmup 2]
  /usr/bin/python3 bench/peers/torch_mamba.py --decode --config CONFIG --threads T
        [--contexts 256,4096] [--decode-steps 64] [--batch 1] [--prefill forward|step] [--tokens FILE]

CONFIG: a config.json path or inline JSON with HF MambaConfig fields (missing ones take HF's
defaults, so give at least vocab_size, hidden_size, num_hidden_layers).

Training: HF-style init (ref_mamba.init_weights), torch.optim.AdamW (weight decay on matrices
only: 2-D and 3-D weights, not A_log, D, biases or norms), clip_grad_norm_ (0 = off). One step =
forward + backward + clip + step + zero_grad on a (B, L+1) batch: random tokens, or random
windows of the token file (raw little-endian uint16 or int32). Prints ONE JSON line:
  {tokens_per_second (steps after the first `warmup`), step_ms (median of those), peak_rss_mb
   (getrusage ru_maxrss), loss_first, loss_last, params, ms_per_step [...], torch, threads, ...}

Decoding (--decode): for each context length, prefill with the parallel forward (or by stepping
token by token with --prefill step), then time `decode-steps` greedy tokens through the O(1)
recurrent step. Prints ONE JSON line:
  {decode: [{context, prefill_ms, prefill_tokens_per_second, decode_ms_per_token,
             decode_tokens_per_second}], params, peak_rss_mb, torch, threads, batch}
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from ref_mamba import MambaForCausalLM, init_weights, parse_config  # noqa: E402
from peer_common import load_config, peak_rss_mb, token_source  # noqa: E402


def train(args, cfg, model, draw):
    params = list(model.parameters())
    def decays(name, p):   # matrices and the conv kernel; not A_log, D, biases or norm weights
        return p.ndim >= 2 and not name.endswith("A_log")
    decay = [p for n, p in model.named_parameters() if decays(n, p)]
    no_decay = [p for n, p in model.named_parameters() if not decays(n, p)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(args.beta1, args.beta2), eps=args.eps)
    ms, losses = [], []
    for _ in range(args.steps):
        ids = draw(args.batch, args.seq + 1)
        t0 = time.perf_counter()
        loss = model.loss(ids)
        loss.backward()
        if args.clip > 0:
            torch.nn.utils.clip_grad_norm_(params, args.clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        ms.append((time.perf_counter() - t0) * 1000)
    timed = ms[args.warmup:] or ms
    return {
        "tokens_per_second": args.batch * args.seq * len(timed) / (sum(timed) / 1000),
        "step_ms": statistics.median(timed),
        "peak_rss_mb": peak_rss_mb(),
        "loss_first": losses[0], "loss_last": losses[-1],
        "params": sum(p.numel() for p in params),
        "ms_per_step": [round(x, 1) for x in ms],
        "batch": args.batch, "seq": args.seq, "steps": args.steps, "warmup": args.warmup,
        "optimizer": {"lr": args.lr, "betas": [args.beta1, args.beta2], "eps": args.eps,
                      "weight_decay": args.weight_decay, "clip": args.clip},
    }


@torch.no_grad()
def decode(args, cfg, model, draw):
    out = []
    logits, state = model(draw(args.batch, 8))          # warm-up, untimed
    last = logits[:, -1]
    for _ in range(8):
        last, state = model.step(last.argmax(-1), state)
    for ctx in [int(c) for c in args.contexts.split(",")]:
        prompt = draw(args.batch, ctx)
        t0 = time.perf_counter()
        if args.prefill == "forward":
            logits, state = model(prompt)
            last = logits[:, -1]
        else:
            state = model.new_state(args.batch)
            for t in range(ctx):
                last, state = model.step(prompt[:, t], state)
        prefill = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(args.decode_steps):
            last, state = model.step(last.argmax(-1), state)
        dec = time.perf_counter() - t0
        out.append({
            "context": ctx, "prefill": args.prefill,
            "prefill_ms": prefill * 1000, "prefill_tokens_per_second": args.batch * ctx / prefill,
            "decode_ms_per_token": dec * 1000 / args.decode_steps,
            "decode_tokens_per_second": args.batch * args.decode_steps / dec,
        })
    return {"decode": out, "params": sum(p.numel() for p in model.parameters()), "peak_rss_mb": peak_rss_mb(),
            "batch": args.batch, "decode_steps": args.decode_steps}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True, help="config.json path or inline JSON (HF MambaConfig fields)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2, help="first steps left out of the timing")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--tokens", help="token file (raw little-endian ids); random tokens when absent")
    ap.add_argument("--tokens-dtype", choices=["uint16", "int32"], default="uint16")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--beta1", type=float, default=0.9)
    ap.add_argument("--beta2", type=float, default=0.95)
    ap.add_argument("--eps", type=float, default=1e-8)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--clip", type=float, default=1.0, help="clip_grad_norm_ max norm (0 = off)")
    ap.add_argument("--decode", action="store_true", help="measure recurrent greedy decoding instead of training")
    ap.add_argument("--contexts", default="256,4096")
    ap.add_argument("--decode-steps", type=int, default=64)
    ap.add_argument("--prefill", choices=["forward", "step"], default="forward")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    cfg = load_config(args.config, parse_config)
    model = init_weights(MambaForCausalLM(cfg))
    draw = token_source(args, cfg["vocab_size"])
    result = decode(args, cfg, model, draw) if args.decode else train(args, cfg, model, draw)
    result.update({"torch": torch.__version__, "threads": torch.get_num_threads(),
                   "config": {k: cfg[k] for k in ("vocab_size", "hidden_size", "num_hidden_layers", "state_size",
                                                  "expand", "conv_kernel", "time_step_rank", "tie_word_embeddings")}})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
