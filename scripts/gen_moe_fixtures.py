"""Golden fixtures for tslm's mixture-of-experts LLaMA graph, from the independent PyTorch MoE in
scripts/ref_moe.py (HF MixtralForCausalLM / Qwen2MoeForCausalLM semantics and tensor names, plus
our router z-loss and capacity dropping, defined there).

Run: /usr/bin/python3 scripts/gen_moe_fixtures.py   (Debian: apt-get install python3-torch)
Deterministic (a torch.Generator per case, float32 throughout, ~2 s). For each case it writes
test/fixtures/moe/<case>/:
  config.json            as transformers' save_pretrained writes the config (+ our fields where used)
  model.safetensors      the weights, F32, Hugging Face tensor names
  expected.safetensors   F32 reference tensors (names below)
  expected.json          small things: ids, losses, routing (chosen experts, counts, drops), greedy
                         tokens, margins, the shape of every tensor

Weights: ref_moe.conditioned_weights (so that every parameter matters and the router's top-k
choice is clear). The case's seed is the first (from its base seed up) for which: every token's
k-th and (k+1)-th router probability differ by at least MARGIN in every sparse layer (for the
batch and along the greedy continuation), every expert is chosen by some token in every sparse
layer, some assignment is really dropped (capacity case), and a greedy prompt exists whose
continuation has no near tie (top-2 logit gap > 1e-3) and at least 4 distinct tokens.

expected.safetensors (B = 2, T = 10 input tokens, N = B*T = 20 rows, V = vocab, E = experts,
k = experts per token; <i> is a sparse layer's index in the model, <router> its gate's name):
  logits               (B, T, V)  forward(input_ids): eval mode, or training mode (case `capacity`)
  logits_eval          (B, T, V)  capacity case only: the same in eval mode (nothing dropped)
  loss                 (1,)       ce + router_aux_loss_coef * aux + router_z_loss_coef * z
  ce, aux, z           (1,)       the three terms (definitions in ref_moe.py / the README)
  grad.<param>         param's    d loss / d param for every parameter (the total loss; the
                       shape      mode of `logits`)
  grad_aux.<router>    (E, D)     d aux / d router weight (debug: the aux term alone)
  grad_z.<router>      (E, D)     d z / d router weight (debug: the z term alone)
  router.<i>.logits    (N, E)     the router's logits, rows n = b*T + t
  router.<i>.probs     (N, E)     softmax of them (float32)
  router.<i>.weights   (N, k)     the top-k routing weights as routed (renormalised per config),
                                  before any dropping; largest first
  greedy.logits        (1, G, V)  the logits that chose each greedy token (eval mode, full recompute)
"""
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ref_moe import (active_params, check_weights, conditioned_weights, ffn_names, forward, greedy,  # noqa: E402
                     hf_config_json, is_sparse_layer, next_token_loss, param_shapes, parse_config)
from st import read_safetensors, write_safetensors  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "moe")

CASES = {
    # (a) Mixtral: GQA (4 heads, 2 KV heads), untied head, all layers sparse, k weights renormalised,
    # aux and z losses in the total
    "mixtral": dict(seed=100, training=False, config=dict(
        model_type="mixtral", vocab_size=64, hidden_size=32, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2,
        max_position_embeddings=64, rope_theta=1e6, rms_norm_eps=1e-5, tie_word_embeddings=False,
        router_aux_loss_coef=0.02, router_z_loss_coef=0.001, router_jitter_noise=0.0)),
    # (b) Qwen2-MoE: q/k/v biases, MHA, tied embeddings, 3 layers of which only layer 1 is sparse
    # (layer 0 is in mlp_only_layers, layer 2 fails (2+1) % 2 == 0), dense layers with
    # intermediate_size 48, experts with moe_intermediate_size 32, a shared expert of 40 behind its
    # sigmoid gate, k weights NOT renormalised, no router_z_loss_coef (so z is not in the loss)
    "qwen2_moe": dict(seed=200, training=False, embed_std=0.3, config=dict(
        model_type="qwen2_moe", vocab_size=80, hidden_size=32, intermediate_size=48, moe_intermediate_size=32,
        shared_expert_intermediate_size=40, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=4,
        num_experts=4, num_experts_per_tok=2, norm_topk_prob=False, decoder_sparse_step=2, mlp_only_layers=[0],
        max_position_embeddings=64, rope_theta=1e6, rms_norm_eps=1e-6, tie_word_embeddings=True,
        bos_token_id=1, eos_token_id=2, router_aux_loss_coef=0.01)),
    # (c) Mixtral-shaped with our capacity factor 1.0 (C = ceil(1.0 * 20 * 2 / 4) = 10 per expert
    # per layer), evaluated in TRAINING mode; MQA (1 KV head), tied embeddings, no jitter
    "capacity": dict(seed=300, training=True, embed_std=0.3, config=dict(
        model_type="mixtral", vocab_size=64, hidden_size=32, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=1, num_local_experts=4, num_experts_per_tok=2,
        max_position_embeddings=64, rope_theta=10000.0, rms_norm_eps=1e-5, tie_word_embeddings=True,
        router_aux_loss_coef=0.02, router_z_loss_coef=0.001, router_jitter_noise=0.0, moe_capacity_factor=1.0)),
}
BATCH, T, PROMPT, GREEDY = 2, 10, 4, 10
MARGIN = 3e-3           # least gap between the k-th and (k+1)-th router probability of any row
TOP2_GAP = 1e-3         # least gap between the two largest logits at every greedy step
SEARCH = 1000           # seeds tried per case

# HF's dense/sparse rule on a few more layouts, so that a loader's rule can be checked beyond case (b)
LAYER_RULE_EXAMPLES = [
    dict(num_hidden_layers=4, decoder_sparse_step=1, mlp_only_layers=[]),
    dict(num_hidden_layers=4, decoder_sparse_step=2, mlp_only_layers=[]),
    dict(num_hidden_layers=6, decoder_sparse_step=2, mlp_only_layers=[3]),
    dict(num_hidden_layers=6, decoder_sparse_step=3, mlp_only_layers=[0, 1]),
    dict(num_hidden_layers=3, decoder_sparse_step=1, mlp_only_layers=[1]),
]


def router_margin(probs, k):
    """Least gap between the k-th and (k+1)-th largest probability over the rows."""
    top = probs.topk(k + 1, dim=-1).values
    return (top[:, k - 1] - top[:, k]).min().item()


def routing_margin(cfg, W, ids, training):
    trace = {}
    with torch.no_grad():
        forward(cfg, W, ids, training=training, trace=trace)
    return min(router_margin(t["probs"], cfg["num_experts_per_tok"]) for t in trace.values()), trace


def find_prompt(cfg, W, tokens):
    """A prompt (1, PROMPT) from the batch whose greedy continuation has no near tie, is not one
    token repeated, and routes every row with a clear margin; or None."""
    for row in range(tokens.shape[0]):
        for start in range(tokens.shape[1] - PROMPT + 1):
            prompt = tokens[row:row + 1, start:start + PROMPT]
            toks, chosen = greedy(cfg, W, prompt, GREEDY)
            top2 = chosen.topk(2, dim=-1).values
            gap = (top2[..., 0] - top2[..., 1]).min().item()
            if gap <= TOP2_GAP or len(set(toks[0].tolist())) < 4:
                continue
            margin, _ = routing_margin(cfg, W, torch.cat([prompt, toks[:, :-1]], 1), False)
            if margin >= MARGIN:
                return prompt, toks, chosen, gap, margin
    return None


def try_seed(cfg, spec, seed):
    g = torch.Generator().manual_seed(seed)
    W = conditioned_weights(cfg, g, embed_std=spec.get("embed_std", 1.0))
    tokens = torch.randint(0, cfg["vocab_size"], (BATCH, T + 1), generator=g)
    margin, trace = routing_margin(cfg, W, tokens[:, :-1], spec["training"])
    if margin < MARGIN:
        return None
    if any((t["counts"] == 0).any() for t in trace.values()):
        return None
    if spec["training"] and cfg["moe_capacity_factor"] and sum(t["dropped"] for t in trace.values()) == 0:
        return None
    found = find_prompt(cfg, W, tokens)
    if found is None:
        return None
    return W, tokens, margin, trace, found


def rounded(x):
    return float(f"{x:.9g}")


def make_case(name, spec):
    cfg = parse_config(spec["config"], name)
    for seed in range(spec["seed"], spec["seed"] + SEARCH):
        got = try_seed(cfg, spec, seed)
        if got is not None:
            break
    else:
        raise SystemExit(f"{name}: no seed in {SEARCH} tries meets the conditions; change the case")
    W, tokens, margin, trace, (prompt, toks, chosen, gap, greedy_margin) = got
    check_weights(cfg, W)
    training = spec["training"]
    input_ids, labels = tokens[:, :-1], tokens[:, 1:]
    k, E = cfg["num_experts_per_tok"], cfg["num_experts"]
    routers = {i: ffn_names(cfg, i)["router"] for i in trace}
    exp = {}

    # the total loss and the gradient of every parameter
    Wg = {n: t.clone().requires_grad_() for n, t in W.items()}
    trace2 = {}
    out = next_token_loss(cfg, Wg, tokens, training=training, trace=trace2)
    out["loss"].backward()
    exp["logits"] = out["logits"].detach()
    for key in ("loss", "ce", "aux", "z"):
        exp[key] = out[key].detach().reshape(1)
    expect_total = out["ce"] + cfg["router_aux_loss_coef"] * out["aux"] + cfg["router_z_loss_coef"] * out["z"]
    assert torch.allclose(out["loss"], expect_total), f"{name}: loss != ce + aux + z terms"
    for pname, p in Wg.items():
        assert p.grad is not None and p.grad.abs().max().item() > 0, f"{name}: no gradient for {pname}"
        exp[f"grad.{pname}"] = p.grad.detach().clone()
    for i in trace:
        assert torch.equal(trace2[i]["selected"], trace[i]["selected"]) and torch.equal(trace2[i]["keep"], trace[i]["keep"])

    # the aux and z terms alone, on the router weights (debugging aids)
    shares = {}
    for term in ("aux", "z"):
        Wt = {n: t.clone().requires_grad_() for n, t in W.items()}
        next_token_loss(cfg, Wt, tokens, training=training)[term].backward()
        coef = cfg["router_aux_loss_coef"] if term == "aux" else cfg["router_z_loss_coef"]
        for i, r in routers.items():
            exp[f"grad_{term}.{r}"] = Wt[r].grad.detach().clone()
            shares[f"{term}.{i}"] = rounded((coef * Wt[r].grad).norm().item() / exp[f"grad.{r}"].norm().item())

    # routing, per sparse layer
    routing = {}
    for i, t in trace.items():
        exp[f"router.{i}.logits"] = t["router_logits"]
        exp[f"router.{i}.probs"] = t["probs"]
        exp[f"router.{i}.weights"] = t["weights"]
        routing[str(i)] = {"selected": t["selected"].tolist(), "counts": t["counts"].tolist()}
        if t["capacity"] is not None:
            routing[str(i)].update(capacity=t["capacity"], kept=t["keep"].int().tolist(),
                                   kept_counts=t["kept_counts"].tolist(), dropped=t["dropped"])
    dropped = sum(t["dropped"] for t in trace.values())
    if training and cfg["moe_capacity_factor"]:
        assert dropped > 0, f"{name}: nothing dropped"
        with torch.no_grad():
            ev = forward(cfg, W, input_ids, training=False)[0]
        assert not torch.allclose(ev, exp["logits"], atol=1e-3), f"{name}: eval and training logits agree"
        exp["logits_eval"] = ev
    exp["greedy.logits"] = chosen

    # write, then read the checkpoint back and check it reproduces the logits
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        f.write(hf_config_json(cfg))
    write_safetensors(os.path.join(d, "model.safetensors"), W, {"format": "pt"})
    exp = {n: v.detach().contiguous().float() for n, v in exp.items()}
    write_safetensors(os.path.join(d, "expected.safetensors"), exp)
    with open(os.path.join(d, "config.json")) as f:
        cfg2 = parse_config(json.load(f), name)
    W2 = read_safetensors(os.path.join(d, "model.safetensors"))
    check_weights(cfg2, W2)
    with torch.no_grad():
        assert torch.equal(forward(cfg2, W2, input_ids, training=training)[0], exp["logits"]), f"{name}: round trip"
    assert set(read_safetensors(os.path.join(d, "expected.safetensors"))) == set(exp)

    info = {
        "case": name,
        "generator": "scripts/gen_moe_fixtures.py (independent PyTorch MoE, scripts/ref_moe.py), float32",
        "seed": seed,
        "mode": "training" if training else "eval",
        "config_derived": {"num_experts": E, "num_experts_per_tok": k, "expert_intermediate_size": cfg["expert_intermediate_size"],
                           "shared_expert_size": cfg["shared_expert_size"], "norm_topk_prob": cfg["norm_topk_prob"],
                           "sparse_layers": cfg["sparse_layers"], "router_aux_loss_coef": cfg["router_aux_loss_coef"],
                           "router_z_loss_coef": cfg["router_z_loss_coef"], "moe_capacity_factor": cfg["moe_capacity_factor"]},
        "tokens": tokens.tolist(),
        "input_ids": input_ids.tolist(),
        "labels": labels.tolist(),
        "loss": out["loss"].item(), "ce": out["ce"].item(), "aux": out["aux"].item(), "z": out["z"].item(),
        "routing": routing,
        "dropped": dropped,
        "min_router_margin": rounded(min(margin, greedy_margin)),
        "router_grad_share": shares,
        "greedy": {"prompt": prompt[0].tolist(), "ids": toks[0].tolist(), "min_top2_gap": rounded(gap)},
        "layer_rule_examples": [dict(ex, sparse_layers=[is_sparse_layer(dict(ex, model_type="qwen2_moe"), i)
                                                         for i in range(ex["num_hidden_layers"])])
                                for ex in LAYER_RULE_EXAMPLES],
        "params": sum(math.prod(s) for s in param_shapes(cfg).values()),
        "active_params": active_params(cfg),
        "tensors": {n: list(v.shape) for n, v in sorted(exp.items())},
        "parameters": {n: list(s) for n, s in param_shapes(cfg).items()},
    }
    with open(os.path.join(d, "expected.json"), "w") as f:   # one key a line, values compact
        f.write("{\n" + ",\n".join(f"  {json.dumps(k_)}: {json.dumps(v)}" for k_, v in info.items()) + "\n}\n")
    sizes = {fn: os.path.getsize(os.path.join(d, fn)) for fn in sorted(os.listdir(d))}
    print(f"{name}: seed {seed}, loss {out['loss'].item():.6f} (ce {out['ce'].item():.6f}, aux {out['aux'].item():.6f}, "
          f"z {out['z'].item():.6f}), dropped {dropped}, router margin {min(margin, greedy_margin):.4f}, "
          f"greedy gap {gap:.4f}, grad shares {shares}, files {sizes}")


def main():
    for name, spec in CASES.items():
        make_case(name, spec)


if __name__ == "__main__":
    main()
