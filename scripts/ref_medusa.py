"""PyTorch reference for Medusa heads: golden values for test/nn/medusa.test.ts and the Medusa
files for test/io/medusa.test.ts.

Run with Debian's torch (deterministic):   /usr/bin/python3 scripts/ref_medusa.py

Written from the Medusa repo's semantics (FasterDecoding/Medusa, medusa/model/medusa_model.py and
medusa_model_legacy.py before its "version 2"; the axolotl fork's medusa_utils.py for the loss):

- ResBlock: x + SiLU(Linear(D, D)(x)), the Linear with bias, its weight zero-initialised.
- head i = nn.Sequential(*([ResBlock(D)] * medusa_num_layers), nn.Linear(D, V, bias=False)):
  the list repetition puts ONE ResBlock module medusa_num_layers times in the Sequential, so a
  head's layers share their weights; its state_dict still lists the tensor under every index.
- medusa_head = nn.ModuleList of the heads; its state_dict names are "{i}.{j}.linear.weight",
  "{i}.{j}.linear.bias" (j < L) and "{i}.{L}.weight", saved as medusa_lm_head.safetensors with a
  config.json holding medusa_num_heads, medusa_num_layers, base_model_name_or_path.
- loss: head i's logits at positions t < T-(i+2) against labels[t+i+2] (mean cross-entropy),
  weighted medusa_heads_coefficient * medusa_decay_coefficient ** (i+1) (0.2, 0.8 in every
  example config); with the base trained jointly (Medusa-2) the base's next-token loss is added
  with its own weight (1 in the repo): the cross-entropy, or with self-distillation the repo's
  F.kl_div(log_softmax(base logits), softmax(original model's logits), reduction="sum") over the
  positions whose label is not ignored, divided by all positions.

Outputs, in test/fixtures/medusa/:
- cases.json: for each case the config, hidden states h (B, T, D), ids (B, T), head weights
  (state-dict names), the base head (V, D) when the case has an LM term (and the teacher's logits
  (B, T, V) when that term is the self-distillation loss), the loss weights, the
  K heads' logits, per-head losses, the total loss, and the gradient of the total loss with
  respect to every head parameter (state-dict names; a shared ResBlock's gradient listed once,
  under layer 0) and to h.
- heads_k3_l2/: config.json + medusa_lm_head.safetensors of the first case's heads (F32), as the
  repo writes them (the shared tensor repeated under every layer index).
- heads_k2_l1_f16/: the second case's heads in float16 (as the hub's checkpoints), with the logits
  of those float16 weights on the case's h in expected.json.
"""
import json
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(__file__))
from st import write_safetensors  # noqa: E402

OUT = os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "medusa")


class ResBlock(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.linear = nn.Linear(hidden, hidden)
        nn.init.zeros_(self.linear.weight)
        self.act = nn.SiLU()

    def forward(self, x):
        return x + self.act(self.linear(x))


def make_heads(K, L, D, V):
    return nn.ModuleList([nn.Sequential(*([ResBlock(D)] * L), nn.Linear(D, V, bias=False)) for _ in range(K)])


def enc(t):
    t = t.detach().to(torch.float64) if t.is_floating_point() else t.detach()
    vals = t.reshape(-1).tolist()
    if t.is_floating_point():
        vals = [float(f"{v:.9g}") for v in vals]
    return {"shape": list(t.shape), "dtype": "float32" if t.is_floating_point() else "int64", "data": vals}


def unique_params(heads):
    """(state-dict name, parameter), each parameter once: a shared ResBlock under layer 0."""
    seen, out = set(), []
    for name, p in heads.state_dict(keep_vars=True).items():
        if id(p) in seen:
            continue
        seen.add(id(p))
        out.append((name, p))
    return out


def case(name, K, L, D, V, B, T, seed, lm_weight=None, heads_coef=0.2, decay=0.8, distill=False):
    g = torch.Generator().manual_seed(seed)
    heads = make_heads(K, L, D, V)
    with torch.no_grad():
        for _, p in unique_params(heads):  # non-zero weights so that every term is exercised
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    h = (torch.randn(B, T, D, generator=g)).requires_grad_()
    ids = torch.randint(0, V, (B, T), generator=g)
    ids[0, -1] = -100  # an ignored label (the repo's IGNORE_TOKEN_ID): it leaves the mean
    base_w = torch.randn(V, D, generator=g) * 0.5 if lm_weight is not None else None
    teacher = torch.randn(B, T, V, generator=g) * 2 if distill else None

    logits = [heads[i](h) for i in range(K)]
    weights = [heads_coef * decay ** (i + 1) for i in range(K)]
    losses = []
    for i in range(K):
        lg = logits[i][:, : -(2 + i)].reshape(-1, V)
        lb = ids[:, 2 + i:].reshape(-1)
        losses.append(F.cross_entropy(lg, lb, ignore_index=-100))
    total = sum(w * l for w, l in zip(weights, losses))
    lm_loss = None
    if base_w is not None:
        base_logits = h @ base_w.t()
        if teacher is not None:
            lg = base_logits[:, :-1].reshape(-1, V)
            mask = ids[:, 1:].reshape(-1).ne(-100)
            soft = F.softmax(teacher[:, :-1].reshape(-1, V)[mask], dim=-1)
            lm_loss = F.kl_div(F.log_softmax(lg[mask], dim=-1), soft, reduction="sum") / lg.shape[0]
        else:
            lm_loss = F.cross_entropy(base_logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1), ignore_index=-100)
        total = total + lm_weight * lm_loss
    params = unique_params(heads)
    grads = torch.autograd.grad(total, [p for _, p in params] + [h])
    out = {
        "name": name,
        "config": {"medusa_num_heads": K, "medusa_num_layers": L, "hidden_size": D, "vocab_size": V},
        "h": enc(h), "ids": enc(ids),
        "weights": {n: enc(p) for n, p in params},
        "loss_weights": weights, "lm_weight": lm_weight,
        "base_head": enc(base_w) if base_w is not None else None,
        "teacher": enc(teacher) if teacher is not None else None,
        "logits": [enc(l) for l in logits],
        "head_losses": [float(l) for l in losses],
        "lm_loss": float(lm_loss) if lm_loss is not None else None,
        "loss": float(total),
        "grads": {n: enc(gr) for (n, _), gr in zip(params, grads[:-1])},
        "grad_h": enc(grads[-1]),
    }
    return out, heads, h


def save_heads(dirname, heads, K, L, base, dtype=torch.float32):
    d = os.path.join(OUT, dirname)
    os.makedirs(d, exist_ok=True)
    # The state dict as the repo saves it; safetensors cannot alias, so shared tensors are cloned.
    sd = {k: v.detach().clone().to(dtype) for k, v in heads.state_dict().items()}
    write_safetensors(os.path.join(d, "medusa_lm_head.safetensors"), sd)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({"medusa_num_heads": K, "medusa_num_layers": L, "base_model_name_or_path": base}, f, indent=2)
        f.write("\n")
    return d


def main():
    torch.manual_seed(0)
    os.makedirs(OUT, exist_ok=True)
    cases = []
    c1, heads1, _ = case("k3_l2_shared", K=3, L=2, D=5, V=11, B=2, T=9, seed=1)
    cases.append(c1)
    c2, heads2, h2 = case("k2_l1", K=2, L=1, D=4, V=9, B=1, T=7, seed=2)
    cases.append(c2)
    c3, _, _ = case("k4_l0_joint", K=4, L=0, D=6, V=13, B=2, T=8, seed=3, lm_weight=0.7)
    cases.append(c3)
    c4, _, _ = case("k2_l3_unweighted", K=2, L=3, D=3, V=7, B=1, T=6, seed=4, heads_coef=1.0, decay=1.0)
    cases.append(c4)
    c5, _, _ = case("k3_l1_joint_distill", K=3, L=1, D=5, V=11, B=2, T=8, seed=5, lm_weight=0.6, distill=True)

    cases.append(c5)
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump({"cases": cases}, f)
        f.write("\n")
    save_heads("heads_k3_l2", heads1, 3, 2, "tiny-base")
    d = save_heads("heads_k2_l1_f16", heads2, 2, 1, "tiny-base-f16", dtype=torch.float16)
    with torch.no_grad():
        half = make_heads(2, 1, 4, 9)
        half.load_state_dict({k: v.half().float() for k, v in heads2.state_dict().items()})
        logits = [half[i](h2) for i in range(2)]
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump({"h": enc(h2), "logits": [enc(l) for l in logits]}, f)
        f.write("\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
