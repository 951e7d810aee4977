#!/usr/bin/python3
"""PyTorch reference for the reasoning-RL policy losses (GRPO / BNPO / DAPO / Dr. GRPO / GSPO /
Kimi k1.5) and for the advantage and reward-shaping formulas: golden values for
test/align/losses.test.ts and test/align/advantages.test.ts.

Run with Debian's torch (deterministic):   /usr/bin/python3 scripts/ref_grpo.py
Writes test/fixtures/align/grpo/losses.json and test/fixtures/align/grpo/advantages.json.

Semantics (written from TRL's GRPOTrainer `_compute_loss` / advantage code and the papers; see
src/align/losses.ts for the same list):
- log ratio = logp - old (old = logp.detach() when absent, ratio 1); importance weight per token,
  or per sequence (GSPO; TRL importance_sampling_level="sequence"): sum_t(log ratio * mask) /
  max(sum_t mask, 1), broadcast over the tokens.
- coef_1 = exp(log weight); coef_2 = clamp(coef_1, 1 - eps_low, 1 + eps_high); with `delta`,
  coef_1 = clamp(coef_1, max=delta) (after coef_2 is taken).
- per-token loss = -min(coef_1 * A, coef_2 * A) + beta * KL(logp, ref), the KL estimators with
  log r = ref - logp: k1 = -log r, k2 = (log r)^2 / 2, k3 = exp(log r) - log r - 1 (TRL's).
- aggregation: grpo / gspo: mean over sequences of sum_t(loss*mask) / max(sum_t mask, 1);
  bnpo / dapo: sum(loss*mask) / max(sum mask, 1) over the batch (dapo: / num_items_in_batch when
  given); dr_grpo: sum(loss*mask) / (B * max_completion_length).
- Kimi k1.5 policy mirror descent: per group of k samples, (1/k) sum_j (r_j - mean_group(r)
  - tau * (log pi(y_j) - log pi_old(y_j)))^2 with sequence log-probs summed over the mask;
  averaged over the groups.
- metrics (TRL's names): kl = masked token mean of the KL; clip_ratio/low_mean = mean of
  (coef_1 < 1 - eps_low) & (A < 0), clip_ratio/high_mean of (coef_1 > 1 + eps_high) & (A > 0),
  clip_ratio/region_mean of either; over the masked tokens (token level) or over the B sequences
  (sequence level, as TRL); ratio/mean = the same mean of the (unclamped) importance ratio.
  k1.5: log_ratio/mean = mean over sequences of the summed log ratio.
- advantages (TRL): A = r - group mean, divided by (std + 1e-4) with std the UNBIASED std of the
  group ('group') or of the whole batch ('batch'), or not divided ('none'); std = 0 when the
  group (batch) has one element.
- DAPO overlong punishment: 0 if len <= Lmax - Lcache; ((Lmax - Lcache) - len) / Lcache up to
  Lmax; -1 beyond.
- Kimi length penalty per group: lambda = 0.5 - (len - min_len) / (max_len - min_len) (0 when all
  lengths are equal); lambda for a correct answer, min(0, lambda) for a wrong one.

The reference computes in float64 from the float32 inputs stored in the fixture. The script
checks that no importance ratio lies within MARGIN of a clip boundary, so that float32 rounding
and the tests' finite differences cannot flip a clip decision.
"""
import json
import math
import os

import torch

from fixture_json import enc, r9

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "align", "grpo")
MARGIN = 2e-3


def kl_estimate(logp, ref, kind):
    logr = ref - logp
    if kind == "k1":
        return -logr
    if kind == "k2":
        return 0.5 * logr * logr
    if kind == "k3":
        return torch.exp(logr) - logr - 1
    raise ValueError(kind)


def masked_mean(x, mask):
    if x.shape[1] == 1:  # one value per sequence (sequence-level importance sampling), as TRL
        return float(x.sum() / max(x.shape[0], 1))
    return float((x * mask).sum() / mask.sum().clamp(min=1.0))


def policy_loss(logp, old, ref, mask, adv, rewards, o):
    """Returns (loss, metrics, ratios-to-check) for the options o (the TypeScript option names)."""
    kind = o["loss"]
    old_ = logp.detach() if old is None else old
    metrics = {}
    if kind == "k1.5":
        k, tau = o["groupSize"], o.get("tau", 1.0)
        seq = ((logp - old_) * mask).sum(-1)  # (B,)
        r = rewards.view(-1, k)
        base = r.mean(dim=1, keepdim=True).expand_as(r).reshape(-1)
        d = rewards - base - tau * seq
        loss = (d * d).view(-1, k).mean(dim=1).mean()
        metrics["log_ratio/mean"] = float(seq.mean())
        if ref is not None:
            metrics["kl"] = masked_mean(kl_estimate(logp, ref, o.get("kl", "k3")), mask)
        return loss, metrics, []
    eps_low = o.get("epsilonLow", 0.2)
    eps_high = o.get("epsilonHigh", eps_low)
    beta = o.get("beta", 0.0)
    level = o.get("importanceSampling", "sequence" if kind == "gspo" else "token")
    log_ratio = logp - old_
    if level == "token":
        log_w = log_ratio
    else:
        log_w = ((log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).unsqueeze(-1)
    coef_1 = torch.exp(log_w)
    ratio = coef_1.detach().clone()
    coef_2 = torch.clamp(coef_1, 1 - eps_low, 1 + eps_high)
    if o.get("delta") is not None:
        coef_1 = torch.clamp(coef_1, max=o["delta"])
    A = adv.unsqueeze(1)
    per_token = -torch.min(coef_1 * A, coef_2 * A)
    kl = None
    if ref is not None:
        kl = kl_estimate(logp, ref, o.get("kl", "k3"))
    if beta != 0.0:
        per_token = per_token + beta * kl
    B = logp.shape[0]
    if kind in ("grpo", "gspo"):
        loss = ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    elif kind == "bnpo" or (kind == "dapo" and o.get("numItemsInBatch") is None):
        loss = (per_token * mask).sum() / mask.sum().clamp(min=1.0)
    elif kind == "dapo":
        loss = (per_token * mask).sum() / max(o["numItemsInBatch"], 1.0)
    elif kind == "dr_grpo":
        loss = (per_token * mask).sum() / (B * o["maxCompletionLength"])
    else:
        raise ValueError(kind)
    if kl is not None:
        metrics["kl"] = masked_mean(kl.detach(), mask)
    c1 = coef_1.detach()
    low = ((c1 < 1 - eps_low) & (A < 0)).double()
    high = ((c1 > 1 + eps_high) & (A > 0)).double()
    metrics["clip_ratio/low_mean"] = masked_mean(low, mask)
    metrics["clip_ratio/high_mean"] = masked_mean(high, mask)
    metrics["clip_ratio/region_mean"] = masked_mean(torch.maximum(low, high), mask)
    metrics["ratio/mean"] = masked_mean(ratio, mask)
    # the ratios that take part in a clip decision, and the boundaries they must stay away from
    # (a sequence without tokens has ratio exactly 1 and no gradient: it cannot flip)
    live = ratio.expand_as(mask)[mask > 0] if level == "token" else ratio.view(-1)[mask.sum(-1) > 0]
    bounds = [1 - eps_low, 1 + eps_high] + ([o["delta"]] if o.get("delta") is not None else [])
    return loss, metrics, [(live, bounds)]


def make_batch(seed):
    """A fixed batch: B = 6 completions in 2 groups of 3, L = 7 token slots."""
    g = torch.Generator().manual_seed(seed)
    B, L, G = 6, 7, 3
    mask = torch.zeros(B, L)
    lengths = [7, 5, 3, 0, 6, 1]  # row 3 has no completion token at all; row 5 one token
    for i, n in enumerate(lengths):
        mask[i, :n] = 1
    mask[4, 2] = 0  # a hole inside a completion (a masked tool-output token)
    logp = -(0.05 + 2.45 * torch.rand(B, L, generator=g))
    old = logp + 0.3 * torch.randn(B, L, generator=g)
    ref = logp + 0.4 * torch.randn(B, L, generator=g)
    # the padding holds arbitrary (finite) numbers, as a padded batch does
    pad = mask == 0
    logp[pad] = -5 * torch.rand(int(pad.sum()), generator=g)
    old[pad] = -5 * torch.rand(int(pad.sum()), generator=g)
    ref[pad] = -5 * torch.rand(int(pad.sum()), generator=g)
    rewards = torch.tensor([1.0, 0.0, 0.5, 0.25, 1.0, 0.0])
    adv = group_advantages(rewards.double(), G, "group").float()
    return {"B": B, "L": L, "groupSize": G, "logprobs": logp, "old": old, "ref": ref, "mask": mask,
            "rewards": rewards, "advantages": adv}


def loss_cases():
    cases = []
    for loss in ("grpo", "bnpo", "dapo", "dr_grpo", "gspo"):
        extra = {"maxCompletionLength": 10} if loss == "dr_grpo" else {}
        base = {"loss": loss, "epsilonLow": 0.2, "epsilonHigh": 0.28, **extra}
        for kl in ("k1", "k2", "k3"):
            cases.append((f"{loss} beta=0.1 {kl}", {**base, "beta": 0.1, "kl": kl}, True, True))
        cases.append((f"{loss} beta=0", {**base, "beta": 0.0}, True, False))
        cases.append((f"{loss} beta=0.1 k3, no old logprobs (ratio 1)", {**base, "beta": 0.1, "kl": "k3"}, False, True))
    cases.append(("grpo symmetric eps 0.2, delta 1.3 (two-sided clip), beta=0.04 k3",
                  {"loss": "grpo", "epsilonLow": 0.2, "epsilonHigh": 0.2, "delta": 1.3, "beta": 0.04, "kl": "k3"}, True, True))
    cases.append(("dapo clip-higher, num_items_in_batch 40",
                  {"loss": "dapo", "epsilonLow": 0.2, "epsilonHigh": 0.28, "beta": 0.0, "numItemsInBatch": 40}, True, False))
    cases.append(("dapo with sequence-level importance sampling",
                  {"loss": "dapo", "epsilonLow": 0.2, "epsilonHigh": 0.28, "beta": 0.0, "importanceSampling": "sequence"}, True, False))
    cases.append(("gspo paper clip range 3e-4 / 4e-4",
                  {"loss": "gspo", "epsilonLow": 3e-4, "epsilonHigh": 4e-4, "beta": 0.0}, True, False))
    cases.append(("k1.5 tau=0.5", {"loss": "k1.5", "groupSize": 3, "tau": 0.5}, True, True))
    cases.append(("k1.5 tau=1", {"loss": "k1.5", "groupSize": 3, "tau": 1.0}, True, False))
    cases.append(("k1.5 tau=0.1, no old logprobs", {"loss": "k1.5", "groupSize": 3, "tau": 0.1}, False, False))
    return cases


class TooClose(Exception):
    pass


def build_losses():
    # the first seed from 1717 on whose ratios keep MARGIN from every clip boundary of every case
    for seed in range(1717, 1817):
        try:
            return build_losses_for(seed)
        except TooClose as e:
            print(f"seed {seed}: {e}")
    raise SystemExit("no seed in range keeps the ratios away from the clip boundaries")


def build_losses_for(seed):
    b = make_batch(seed)
    out_cases = []
    for name, o, use_old, use_ref in loss_cases():
        logp = b["logprobs"].double().clone().requires_grad_()
        old = b["old"].double() if use_old else None
        ref = b["ref"].double() if use_ref else None
        loss, metrics, checks = policy_loss(logp, old, ref, b["mask"].double(), b["advantages"].double(),
                                            b["rewards"].double(), o)
        for live, bounds in checks:
            for bound in bounds:
                gap = float((live - bound).abs().min()) if live.numel() else math.inf
                if gap < MARGIN:
                    raise TooClose(f"{name}: a ratio lies {gap:.2e} from the clip boundary {bound}")
        (grad,) = torch.autograd.grad(loss, [logp])
        out_cases.append({"name": name, "options": o, "old": use_old, "ref": use_ref,
                          "loss": r9(loss), "grad": enc(grad), "metrics": {k: r9(v) for k, v in metrics.items()}})
    batch = {"seed": seed, "B": b["B"], "L": b["L"], "groupSize": b["groupSize"],
             **{k: enc(b[k]) for k in ("logprobs", "old", "ref", "mask", "rewards", "advantages")}}
    return {"batch": batch, "cases": out_cases}


# ------------------------------------------------------------------ advantages and shaping

def group_advantages(rewards, G, scale):
    grouped = rewards.view(-1, G)
    mean = grouped.mean(dim=1).repeat_interleave(G)
    if scale in ("group", "none"):
        std = grouped.std(dim=1).repeat_interleave(G) if G > 1 else torch.zeros_like(rewards)
    elif scale == "batch":
        std = rewards.std().expand_as(rewards) if rewards.numel() > 1 else torch.zeros_like(rewards)
    else:
        raise ValueError(scale)
    adv = rewards - mean
    if scale != "none":
        adv = adv / (std + 1e-4)
    return adv


def overlong_penalty(length, max_len, cache_len):
    if length <= max_len - cache_len:
        return 0.0
    if length <= max_len:
        return ((max_len - cache_len) - length) / cache_len
    return -1.0


def kimi_length_penalty(lengths, correct, G):
    out = []
    for g in range(0, len(lengths), G):
        ls, cs = lengths[g:g + G], correct[g:g + G]
        lo, hi = min(ls), max(ls)
        for n, c in zip(ls, cs):
            lam = 0.0 if hi == lo else 0.5 - (n - lo) / (hi - lo)
            out.append(lam if c else min(0.0, lam))
    return out


def build_advantages():
    cases = []
    reward_sets = [
        ("binary rewards, 3 groups of 4, one group all equal", [1, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 1], 4),
        ("real-valued rewards, 2 groups of 5", [0.3, -1.2, 2.5, 0.0, 0.7, 1.1, 1.1, 1.0999, -0.4, 3.25], 5),
        ("group size 1 (no group statistics)", [0.5, 1.0, -2.0], 1),
        ("one completion in the batch", [0.75], 1),
        ("all rewards equal", [2.0, 2.0, 2.0, 2.0], 2),
    ]
    for name, r, G in reward_sets:
        rw = torch.tensor(r, dtype=torch.float32).double()
        entry = {"name": name, "rewards": [r9(v) for v in rw.tolist()], "groupSize": G}
        for scale in ("group", "batch", "none"):
            entry[scale] = [r9(v) for v in group_advantages(rw, G, scale).tolist()]
        entry["zeroStd"] = [bool((rw.view(-1, G).max(dim=1).values == rw.view(-1, G).min(dim=1).values)[i])
                            for i in range(len(r) // G)]
        cases.append(entry)

    overlong = []
    for max_len, cache_len in ((20, 5), (16, 1), (10, 10)):
        lengths = list(range(0, max_len + 4))
        overlong.append({"maxLen": max_len, "cacheLen": cache_len, "lengths": lengths,
                         "penalty": [r9(overlong_penalty(n, max_len, cache_len)) for n in lengths]})

    lengths = [10, 20, 30, 40, 7, 7, 7, 7, 100, 3, 55, 21]
    correct = [True, False, True, False, True, False, True, True, False, True, False, True]
    kimi = [{"lengths": lengths, "correct": correct, "groupSize": 4,
             "penalty": [r9(v) for v in kimi_length_penalty(lengths, correct, 4)]},
            {"lengths": [5, 9, 2], "correct": [False, False, False], "groupSize": 3,
             "penalty": [r9(v) for v in kimi_length_penalty([5, 9, 2], [False] * 3, 3)]}]
    return {"advantages": cases, "overlong": overlong, "kimiLength": kimi}


def write(name, obj):
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, name), "w") as f:
        json.dump(obj, f, allow_nan=False, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    torch.set_default_dtype(torch.float32)
    write("losses.json", build_losses())
    write("advantages.json", build_advantages())
    print("wrote", OUT)
