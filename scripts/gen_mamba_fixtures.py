"""Golden fixtures for tslm's Mamba family, from the independent PyTorch Mamba in scripts/ref_mamba.py.

Run: /usr/bin/python3 scripts/gen_mamba_fixtures.py   (Debian: apt-get install python3-torch)
Deterministic (torch.manual_seed per case, float32 throughout). For each case it writes
test/fixtures/mamba/<case>/:
  config.json            as transformers' save_pretrained writes a MambaConfig
  model.safetensors      the weights, F32, Hugging Face tensor names
  expected.safetensors   F32 reference tensors (names below)
  expected.json          small things: ids, loss, greedy tokens, the padding batch, shapes

The weights are HF's initialisation (ref_mamba.init_weights), then conditioned for testing:
every tensor whose init is a constant or rows of the same values (norm weights, D, A_log,
in/out_proj biases) is moved by N(0, 0.1^2) noise, so that a model that skips or misindexes any
parameter fails the comparison; x_proj.weight is scaled by 8 and dt_proj.bias shifted by +1 so
that the selective scan carries a real share of the mixer output (at HF's init it is ~0.3%).

expected.safetensors (B = batch 2, T = 12 tokens, V = vocab, Di = d_inner, K = conv_kernel, N = state_size):
  logits                      (B, T, V)  forward(input_ids) from an empty state
  step_logits                 (B, T, V)  the same ids fed one token at a time through the recurrent
                                         step from a zero state (equal to logits within 1e-5)
  loss                        (1,)       mean cross-entropy of forward(input_ids[:, :-1]) against input_ids[:, 1:]
  grad.<param name>           shape of the parameter: d loss / d parameter, for EVERY parameter
                                         (tied: the embedding gradient includes the head's part)
  cache.conv_states.<i>       (B, Di, K) layer i's conv state after the T tokens: the last K conv
                                         inputs (x from in_proj, before the conv), oldest first
  cache.ssm_states.<i>        (B, Di, N) layer i's SSM state h after the T tokens
  greedy.logits               (1, G, V)  the logits that chose each greedy token (G = 12)
  padded.logits               (B, T, V)  forward(padded ids, attention_mask) with HF's mask semantics
  debug.embeddings            (B, T, H)  embeddings[input_ids]
  debug.layers.<i>.out        (B, T, H)  residual stream after layer i
  debug.layers.0.mixer.<n>    first layer's mixer internals for input_ids: x, z (B, T, Di) the two
                                         halves of in_proj; x_conv = silu(conv(x)); dt = softplus(dt_proj(.));
                                         B, C (B, T, N); y = scan + D*x_conv (before the gate);
                                         out = out_proj(y * silu(z)) (B, T, H)
  debug.norm_f                (B, T, H)  norm_f of the last residual stream
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ref_mamba import (MambaForCausalLM, greedy, greedy_recompute, hf_config_json, init_weights,  # noqa: E402
                       load_state_dict, parse_config)
from st import read_safetensors, write_safetensors  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "mamba")

CASES = {
    # (a) the common shape: tied head, no in/out bias, conv bias, time_step_rank "auto" (= 2)
    "tied": dict(seed=30, prompt_len=5, config=dict(
        vocab_size=64, hidden_size=32, state_size=8, num_hidden_layers=2, expand=2, conv_kernel=4,
        use_bias=False, use_conv_bias=True, time_step_rank="auto", tie_word_embeddings=True)),
    # (b) everything else: untied head, in/out biases, no conv bias, explicit time_step_rank (auto
    # would give 2), odd sizes, a kernel of 3, eps 1e-6, other special token ids, a prompt shorter
    # than the kernel, wider dt init range, rescaled out_proj init
    "untied_bias": dict(seed=2, prompt_len=2, config=dict(
        vocab_size=67, hidden_size=24, state_size=5, num_hidden_layers=2, expand=2, conv_kernel=3,
        use_bias=True, use_conv_bias=False, time_step_rank=3, tie_word_embeddings=False,
        layer_norm_epsilon=1e-6, pad_token_id=1, bos_token_id=2, eos_token_id=3,
        time_step_min=0.01, time_step_max=0.5, rescale_prenorm_residual=True)),
}
BATCH, T, GREEDY, PAD_LEFT = 2, 12, 12, 4
# At HF's init the scan is ~0.3% of the mixer's y (dt ~ 0.001-0.1 and small B, C); these lift it
# to a third or so, so that the fixtures are sensitive to the scan and to A_log's gradient.
X_PROJ_GAIN, DT_BIAS_SHIFT = 8.0, 1.0


def perturb(model):
    """Condition the HF-initialised weights for testing (see the module docstring)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("norm.weight", "norm_f.weight", ".D", ".A_log", "in_proj.bias", "out_proj.bias")):
                p.add_(0.1 * torch.randn_like(p))
            elif name.endswith("x_proj.weight"):
                p.mul_(X_PROJ_GAIN)
            elif name.endswith("dt_proj.bias"):
                p.add_(DT_BIAS_SHIFT)


def greedy_prompt(model, ids, n):
    """A prompt (1, n) from the batch whose greedy continuation never has a near tie (top-2
    logit gap > 1e-3 at every step, so other implementations cannot flip a token by rounding) and
    is not one token repeated (at least 4 distinct tokens, so a state bug shows)."""
    for row in range(ids.shape[0]):
        for start in range(ids.shape[1] - n + 1):
            prompt = ids[row:row + 1, start:start + n]
            toks, chosen = greedy(model, prompt, GREEDY)
            top2 = chosen.topk(2, dim=-1).values
            gap = (top2[..., 0] - top2[..., 1]).min().item()
            if gap > 1e-3 and len(set(toks[0].tolist())) >= 4:
                return prompt, toks, chosen, gap
    raise SystemExit("no prompt with a varied continuation and no near tie; change the seed")


def rounded(x):
    return float(f"{x:.9g}")


def make_case(name, spec):
    torch.manual_seed(spec["seed"])
    cfg = parse_config(spec["config"], name)
    model = init_weights(MambaForCausalLM(cfg))
    perturb(model)
    V = cfg["vocab_size"]
    ids = torch.randint(0, V, (BATCH, T))
    exp = {}

    # full forward, with the first layer's internals
    with torch.no_grad():
        trace = {}
        logits, state = model(ids, trace=trace)
    exp["logits"] = logits
    for i, (conv, ssm) in enumerate(state):
        exp[f"cache.conv_states.{i}"] = conv
        exp[f"cache.ssm_states.{i}"] = ssm
    exp.update({f"debug.{k}": v for k, v in trace.items()})

    # the recurrent step, token by token from a zero state, must give the same logits and states
    with torch.no_grad():
        st = model.new_state(BATCH)
        steps = []
        for t in range(T):
            lg, st = model.step(ids[:, t], st)
            steps.append(lg)
        step_logits = torch.stack(steps, 1)
        # and so must a chunked prefill (5 tokens, then the rest from the state)
        a, s5 = model(ids[:, :5])
        b, s_end = model(ids[:, 5:], s5)
    err = (step_logits - logits).abs().max().item()
    assert err <= 1e-5, f"{name}: step vs forward logits differ by {err}"
    assert (torch.cat([a, b], 1) - logits).abs().max().item() <= 1e-5, f"{name}: chunked prefill differs"
    for i in range(len(state)):
        for j, what in enumerate(("conv", "ssm")):
            for other in (st, s_end):
                e = (other[i][j] - state[i][j]).abs().max().item()
                assert e <= 1e-5, f"{name}: layer {i} {what} state differs by {e}"
    exp["step_logits"] = step_logits

    # loss and the gradient of every parameter
    model.zero_grad(set_to_none=True)
    loss = model.loss(ids)
    loss.backward()
    exp["loss"] = loss.detach().reshape(1)
    for pname, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().max().item() > 0, f"{name}: no gradient for {pname}"
        exp[f"grad.{pname}"] = p.grad.detach().clone()

    # greedy continuation: state decoding and full recompute agree
    prompt, toks, chosen, gap = greedy_prompt(model, ids, spec["prompt_len"])
    assert torch.equal(toks, greedy_recompute(model, prompt, GREEDY)), f"{name}: greedy with state != recompute"
    exp["greedy.logits"] = chosen

    # left padding with HF's attention_mask: row 0 unpadded, row 1 = PAD_LEFT pad tokens + its first T-PAD_LEFT ids
    pad_id = cfg["pad_token_id"]
    padded = ids.clone()
    padded[1] = torch.cat([torch.full((PAD_LEFT,), pad_id), ids[1, :T - PAD_LEFT]])
    mask = torch.ones(BATCH, T, dtype=torch.long)
    mask[1, :PAD_LEFT] = 0
    with torch.no_grad():
        plog, _ = model(padded, mask=mask)
        alone, _ = model(ids[1:, :T - PAD_LEFT])
    assert (plog[0] - logits[0]).abs().max().item() <= 1e-5, f"{name}: padded batch changed the unpadded row"
    e = (plog[1, PAD_LEFT:] - alone[0]).abs().max().item()
    assert e <= 1e-5, f"{name}: left padding changed the real positions by {e}"
    exp["padded.logits"] = plog

    # how much the selective scan contributes (so the fixture is sensitive to it)
    y, x = trace["layers.0.mixer.y"], trace["layers.0.mixer.x_conv"]
    D = model.backbone.layers[0].mixer.D.detach()
    scan_share = ((y - x * D).norm() / y.norm()).item()

    # write, then read the checkpoint back and check it reproduces the logits
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        f.write(hf_config_json(cfg))
    weights = {n: p.detach() for n, p in model.named_parameters()}
    write_safetensors(os.path.join(d, "model.safetensors"), weights, {"format": "pt"})
    exp = {k: v.detach().contiguous().float() for k, v in exp.items()}
    write_safetensors(os.path.join(d, "expected.safetensors"), exp)
    with open(os.path.join(d, "config.json")) as f:
        again = load_state_dict(MambaForCausalLM(parse_config(json.load(f))), read_safetensors(os.path.join(d, "model.safetensors")))
    with torch.no_grad():
        assert torch.equal(again(ids)[0], logits), f"{name}: checkpoint round trip changed the logits"
    assert set(read_safetensors(os.path.join(d, "expected.safetensors"))) == set(exp)

    info = {
        "case": name,
        "generator": "scripts/gen_mamba_fixtures.py (independent PyTorch Mamba, scripts/ref_mamba.py), float32",
        "config_derived": {"intermediate_size": cfg["intermediate_size"], "time_step_rank": cfg["time_step_rank"],
                           "tie_word_embeddings": cfg["tie_word_embeddings"]},
        "input_ids": ids.tolist(),
        "loss": loss.item(),
        "greedy": {"prompt": prompt[0].tolist(), "ids": toks[0].tolist(), "min_top2_gap": rounded(gap)},
        "padded": {"input_ids": padded.tolist(), "attention_mask": mask.tolist(), "pad_token_id": pad_id,
                   "note": "row 1 is left-padded; logits at its real positions equal forward(input_ids[1][:8]) alone"},
        "scan_share": rounded(scan_share),
        "tensors": {k: list(v.shape) for k, v in sorted(exp.items())},
        "parameters": {n: list(p.shape) for n, p in model.named_parameters()},
    }
    with open(os.path.join(d, "expected.json"), "w") as f:   # one key a line, values compact
        f.write("{\n" + ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in info.items()) + "\n}\n")
    sizes = {fn: os.path.getsize(os.path.join(d, fn)) for fn in sorted(os.listdir(d))}
    print(f"{name}: loss {loss.item():.6f}, step-vs-forward {err:.2e}, greedy gap {gap:.4f}, "
          f"scan share {scan_share:.3f}, params {sum(p.numel() for p in model.parameters())}, files {sizes}")


def main():
    for name, spec in CASES.items():
        make_case(name, spec)


if __name__ == "__main__":
    main()
