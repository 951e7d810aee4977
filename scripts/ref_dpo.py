#!/usr/bin/python3
"""PyTorch reference for preference learning: the DPO / cDPO / IPO losses (src/align/dpo.ts), the
Bradley-Terry reward-model loss with LLaMA 2's margin and the reward model's forward pass in
Hugging Face's LlamaForSequenceClassification layout (src/align/reward_model.ts). Golden values
for test/align/dpo.test.ts and test/align/reward_model.test.ts.

Run with Debian's torch (deterministic):   /usr/bin/python3 scripts/ref_dpo.py
Writes test/fixtures/align/dpo/losses.json and test/fixtures/align/dpo/reward_model.json.

Semantics (written from the DPO, IPO and LLaMA 2 papers and TRL's DPOTrainer / RewardTrainer
and transformers' LlamaForSequenceClassification, not from tslm's code):
- Sequence log-probs are sums of the completion's token log-probs (mask 1 on real tokens).
- h = (pi_c - ref_c) - (pi_r - ref_r).
- sigmoid (DPO, conservative DPO with label smoothing eps): -logsigmoid(beta h)(1 - eps)
  - logsigmoid(-beta h) eps, mean over pairs.
- ipo: the chosen and rejected log-ratios are divided by their completion lengths (TRL's IPO),
  then (h_avg - 1/(2 beta))^2, mean over pairs.
- rewards = beta (pi - ref) of the summed log-probs; metrics: rewards/chosen, rewards/rejected
  (means), rewards/accuracies = mean(r_c > r_r), rewards/margins = mean(r_c - r_r),
  logps/chosen, logps/rejected = means of the policy's summed log-probs; loss.
- Bradley-Terry: -logsigmoid(r_c - r_r - m), mean over pairs (m = 0 without margins).
- Reward model: hidden states after the final norm of a LLaMA (scripts/ref_llama.py's layers),
  the reward of a row read at its rightmost token that is not pad_token_id
  (argmax(arange(T) * (ids != pad))), times score.weight (1, D), no bias.

The reference computes in float64 from the float32 inputs stored in the fixtures.
"""
import json
import os
import sys

import torch

from fixture_json import enc, r9

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import ref_llama  # noqa: E402

ROOT = os.path.join(HERE, "..")
OUT = os.path.join(ROOT, "test", "fixtures", "align", "dpo")
F = torch.nn.functional


def f32(t):
    """Round to float32 (what the fixture stores), then compute in float64."""
    return t.float().double()


def dpo_case(batch, beta, eps, loss_type):
    pc_tok = batch["pc"].clone().requires_grad_(True)
    pr_tok = batch["pr"].clone().requires_grad_(True)
    mc, mr = batch["mc"], batch["mr"]
    pc, pr = (pc_tok * mc).sum(-1), (pr_tok * mr).sum(-1)
    rc, rr = (batch["rc"] * mc).sum(-1), (batch["rr"] * mr).sum(-1)
    if loss_type == "sigmoid":
        h = (pc - rc) - (pr - rr)
        losses = -F.logsigmoid(beta * h) * (1 - eps) - F.logsigmoid(-beta * h) * eps
    else:
        nc, nr = mc.sum(-1).clamp(min=1), mr.sum(-1).clamp(min=1)
        h = (pc - rc) / nc - (pr - rr) / nr
        losses = (h - 1 / (2 * beta)) ** 2
    loss = losses.mean()
    loss.backward()
    cr, rj = beta * (pc - rc).detach(), beta * (pr - rr).detach()
    metrics = {
        "loss": loss.item(), "rewards/chosen": cr.mean().item(), "rewards/rejected": rj.mean().item(),
        "rewards/accuracies": (cr > rj).double().mean().item(), "rewards/margins": (cr - rj).mean().item(),
        "logps/chosen": pc.detach().mean().item(), "logps/rejected": pr.detach().mean().item(),
    }
    return {
        "name": f"{loss_type} beta={beta} eps={eps}", "beta": beta, "labelSmoothing": eps, "lossType": loss_type,
        "loss": r9(loss.item()), "gradChosen": enc(pc_tok.grad), "gradRejected": enc(pr_tok.grad),
        "metrics": {k: r9(v) for k, v in metrics.items()}, "losses": enc(losses),
    }


def dpo_fixture():
    g = torch.Generator().manual_seed(5)
    B, L = 6, 7
    lengths_c = [7, 3, 1, 5, 6, 2]
    lengths_r = [4, 7, 2, 1, 6, 3]
    mc = torch.zeros(B, L, dtype=torch.float64)
    mr = torch.zeros(B, L, dtype=torch.float64)
    for b in range(B):
        mc[b, :lengths_c[b]] = 1
        mr[b, :lengths_r[b]] = 1
    def lp(scale):
        return f32(-(torch.rand(B, L, generator=g, dtype=torch.float64) * scale + 0.05))
    batch = {"pc": lp(3.0), "pr": lp(3.0), "rc": lp(3.0), "rr": lp(3.0), "mc": mc, "mr": mr}
    # padding positions hold arbitrary values: the mask must remove them
    for k in ("pc", "pr", "rc", "rr"):
        m = batch["mc"] if k in ("pc", "rc") else batch["mr"]
        batch[k] = torch.where(m > 0, batch[k], f32(torch.full((B, L), -7.25, dtype=torch.float64)))
    cases = [
        dpo_case(batch, 0.1, 0.0, "sigmoid"),
        dpo_case(batch, 0.5, 0.1, "sigmoid"),
        dpo_case(batch, 8.0, 0.0, "sigmoid"),   # beta*h reaches tens: the saturated tails
        dpo_case(batch, 3.0, 0.3, "sigmoid"),
        dpo_case(batch, 0.1, 0.0, "ipo"),
        dpo_case(batch, 0.7, 0.0, "ipo"),
    ]
    return {
        "batch": {"B": B, "L": L, **{k: enc(v) for k, v in batch.items()}},
        "cases": cases,
    }


def bt_case(rc, rr, margin):
    a = rc.clone().requires_grad_(True)
    b = rr.clone().requires_grad_(True)
    d = a - b - (margin if margin is not None else 0)
    loss = (-F.logsigmoid(d)).mean()
    loss.backward()
    return {"margin": enc(margin) if margin is not None else None, "loss": r9(loss.item()),
            "gradChosen": enc(a.grad), "gradRejected": enc(b.grad), "accuracy": r9((rc > rr).double().mean().item())}


def hidden(cfg, W, ids):
    """ref_llama.forward up to the final norm: (B, T, D)."""
    B, T = ids.shape
    eps = cfg["rms_norm_eps"]
    cos, sin = ref_llama.rope_for(cfg, T)
    x = W["model.embed_tokens.weight"][ids]
    mask = ref_llama.causal_mask(T)
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        x = x + ref_llama.attention(cfg, W, p, ref_llama.rms_norm(x, W[p + "input_layernorm.weight"], eps), cos, sin, mask)
        h = ref_llama.rms_norm(x, W[p + "post_attention_layernorm.weight"], eps)
        g = F.silu(h @ W[p + "mlp.gate_proj.weight"].T)
        u = h @ W[p + "mlp.up_proj.weight"].T
        x = x + (g * u) @ W[p + "mlp.down_proj.weight"].T
    return ref_llama.rms_norm(x, W["model.norm.weight"], eps)


def reward_fixture():
    g = torch.Generator().manual_seed(11)
    # Bradley-Terry on fixed rewards, with and without margins (pairs ranked the wrong way included).
    B = 7
    rc = f32(torch.randn(B, generator=g, dtype=torch.float64) * 2)
    rr = f32(torch.randn(B, generator=g, dtype=torch.float64) * 2)
    margin = f32(torch.tensor([0, 1, 3, 0.5, 0, 2, 1], dtype=torch.float64))
    bt = {"chosen": enc(rc), "rejected": enc(rr), "cases": [bt_case(rc, rr, None), bt_case(rc, rr, margin)]}
    # The reward model on the LLaMA fixture's weights (untied: its lm_head is not used).
    fx = json.load(open(os.path.join(ROOT, "test", "fixtures", "llama", "llama_gqa_untied.json")))
    cfg = fx["config"]
    W = {k: v.double() for k, v in ref_llama.read_safetensors(os.path.join(ROOT, "test", "fixtures", "llama", "llama_gqa_untied.safetensors")).items()}
    D, pad = cfg["hidden_size"], 0
    score = f32(torch.randn(1, D, generator=g, dtype=torch.float64) * 0.3)
    # Right-padded pairs (chosen rows, then rejected rows); one row's last real token is followed by pads,
    # one is full length, one has a pad id in the middle (only trailing pads are padding).
    seqs = [[5, 9, 13, 40, 22], [7, 3, 3, 61, 12, 19, 4, 33], [8, 0, 17], [5, 9, 13, 41, 22, 50], [7, 3, 3, 60], [8, 0, 17, 2]]
    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), pad, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, :len(s)] = torch.tensor(s)
    # The weights as float32 leaves, float64 compute.
    Wg = {k: v.clone().requires_grad_(True) for k, v in W.items()}
    sc = score.clone().requires_grad_(True)
    h = hidden(cfg, Wg, ids)
    last = (torch.arange(T)[None, :] * (ids != pad).long()).argmax(-1)
    rewards = (h[torch.arange(len(seqs)), last] @ sc.T)[:, 0]
    n = len(seqs) // 2
    m = f32(torch.tensor([0.0, 1.5, 0.25], dtype=torch.float64))
    loss = (-F.logsigmoid(rewards[:n] - rewards[n:] - m)).mean()
    loss.backward()
    rm = {
        "pad_token_id": pad, "ids": ids.tolist(), "length": T, "last": last.tolist(), "score": enc(score), "margin": enc(m),
        "rewards": enc(rewards), "loss": r9(loss.item()), "gradScore": enc(sc.grad),
        "gradNorm": enc(Wg["model.norm.weight"].grad), "gradEmbed": enc(Wg["model.embed_tokens.weight"].grad),
    }
    return {"bt": bt, "model": rm}


def main():
    torch.set_default_dtype(torch.float64)
    os.makedirs(OUT, exist_ok=True)
    for name, data in (("losses.json", dpo_fixture()), ("reward_model.json", reward_fixture())):
        with open(os.path.join(OUT, name), "w") as f:
            json.dump(data, f, separators=(",", ":"))
            f.write("\n")
        print("wrote", os.path.join(OUT, name))


if __name__ == "__main__":
    main()
