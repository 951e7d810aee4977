"""Load a checkpoint tslm wrote into the independent PyTorch LLaMA and compute its loss.

Run: /usr/bin/python3 scripts/check_interop.py [DIR ...]
     (default: every directory under test/fixtures/interop; node scripts/gen_interop_fixtures.mjs
     runs this after writing the checkpoints)

Each DIR holds what tslm wrote -- config.json and model.safetensors (an HF model directory, as
tslm's training checkpoints are) -- and batch.json ({input_ids: (B, T+1)}). Only the standard
library and torch are used: the safetensors file is parsed by its spec (scripts/ref_llama.py),
the config's fields are read by their Hugging Face names, and the forward pass is
scripts/ref_llama.py's, which shares no code with tslm. Writes DIR/torch_loss.json:
  loss          mean next-token cross-entropy, float32 (what tslm's loss is compared with)
  loss_float64  the same in float64 (how far float32 rounding alone moves it)
and prints tslm's recorded loss from batch.json beside it.
"""
import glob
import json
import os
import sys

import torch

from ref_llama import next_token_loss, read_safetensors

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
INTEROP = os.path.join(ROOT, "test", "fixtures", "interop")


def expected_names(cfg):
    names = {"model.embed_tokens.weight", "model.norm.weight"}
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        names |= {p + "input_layernorm.weight", p + "post_attention_layernorm.weight"}
        names |= {p + f"self_attn.{n}.weight" for n in ("q_proj", "k_proj", "v_proj", "o_proj")}
        names |= {p + f"mlp.{n}.weight" for n in ("gate_proj", "up_proj", "down_proj")}
    if not cfg.get("tie_word_embeddings", False):
        names.add("lm_head.weight")
    return names


def load_config(path):
    with open(path) as f:
        cfg = json.load(f)
    # The reference implements plain LLaMA; refuse what it would silently compute differently.
    if cfg.get("model_type", "llama") != "llama":
        raise SystemExit(f"{path}: model_type {cfg.get('model_type')!r} (the reference checks llama)")
    D, H = cfg["hidden_size"], cfg["num_attention_heads"]
    if cfg.get("head_dim", D // H) != D // H:
        raise SystemExit(f"{path}: head_dim {cfg['head_dim']} != hidden_size / num_attention_heads")
    if cfg.get("attention_bias") or cfg.get("mlp_bias"):
        raise SystemExit(f"{path}: biases are not expected in a tslm llama checkpoint")
    if cfg.get("hidden_act", "silu") != "silu":
        raise SystemExit(f"{path}: hidden_act {cfg['hidden_act']!r}")
    cfg.setdefault("num_key_value_heads", H)
    cfg.setdefault("rms_norm_eps", 1e-6)
    cfg.setdefault("rope_theta", 10000.0)
    cfg.setdefault("tie_word_embeddings", False)
    return cfg


def check(d):
    cfg = load_config(os.path.join(d, "config.json"))
    W = read_safetensors(os.path.join(d, "model.safetensors"))
    want = expected_names(cfg)
    if set(W) != want:
        raise SystemExit(f"{d}/model.safetensors: missing {sorted(want - set(W))}, unexpected {sorted(set(W) - want)}")
    with open(os.path.join(d, "batch.json")) as f:
        batch = json.load(f)
    ids = torch.tensor(batch["input_ids"], dtype=torch.int64)
    if ids.min() < 0 or ids.max() >= cfg["vocab_size"]:
        raise SystemExit(f"{d}/batch.json: token ids outside [0, {cfg['vocab_size']})")
    with torch.no_grad():
        loss = next_token_loss(cfg, W, ids).item()
        loss64 = next_token_loss(cfg, {k: v.double() for k, v in W.items()}, ids).item()
    out = {"loss": loss, "loss_float64": loss64, "batch_shape": list(ids.shape), "torch": torch.__version__}
    with open(os.path.join(d, "torch_loss.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    tslm = batch.get("tslm_loss")
    diff = f", |tslm - torch| = {abs(tslm - loss):.2e}" if tslm is not None else ""
    print(f"{os.path.relpath(d, ROOT)}: torch loss {loss:.7f} (float64 {loss64:.7f}), tslm {tslm}{diff}")
    return abs(tslm - loss) if tslm is not None else 0.0


def main():
    dirs = sys.argv[1:] or sorted(p for p in glob.glob(os.path.join(INTEROP, "*")) if os.path.isdir(p))
    if not dirs:
        raise SystemExit(f"no checkpoint directories under {INTEROP}")
    worst = max(check(d) for d in dirs)
    if worst > 1e-5:
        raise SystemExit(f"tslm and the reference disagree by {worst:.2e} (> 1e-5)")


if __name__ == "__main__":
    main()
