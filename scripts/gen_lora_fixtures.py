"""Golden fixtures for tslm's LoRA adapters: a tiny base LLaMA plus PEFT-format adapters, and the
logits of base + adapter computed in PyTorch as W' = W + scale * B @ A on every target projection
(scale = lora_alpha / r, or lora_alpha / sqrt(r) with use_rslora), the semantics of PEFT's
LoraLayer merge.

Run: /usr/bin/python3 scripts/gen_lora_fixtures.py   (Debian: apt-get install python3-torch)

The LLaMA forward pass is the independent one of scripts/gen_llama_fixtures.py. Writes, under
test/fixtures/lora/:
  base.safetensors, base.json           weights (HF names) and {config, input_ids, logits}
  <adapter>/adapter_config.json         PEFT LoraConfig fields
  <adapter>/adapter_model.safetensors   base_model.model.<module>.lora_{A,B}.weight
  <adapter>.json                        {input_ids, logits} of base + adapter
"""
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_llama_fixtures import forward, make_weights, write_safetensors, r9  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "lora")

CONFIG = dict(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-5, rope_theta=10000.0,
              hidden_act="silu", bos_token_id=1, eos_token_id=2, model_type="llama", tie_word_embeddings=False)

ADAPTERS = {
    "all_r4": dict(r=4, lora_alpha=8, use_rslora=False,
                   target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]),
    "qv_r8_rslora": dict(r=8, lora_alpha=16, use_rslora=True, target_modules=["q_proj", "v_proj"]),
}

MODULE_PATH = {"q_proj": "self_attn", "k_proj": "self_attn", "v_proj": "self_attn", "o_proj": "self_attn",
               "gate_proj": "mlp", "up_proj": "mlp", "down_proj": "mlp"}


def peft_config(a):
    return {
        "alpha_pattern": {}, "auto_mapping": None, "base_model_name_or_path": "tslm-test-base", "bias": "none",
        "fan_in_fan_out": False, "inference_mode": True, "init_lora_weights": True, "layers_pattern": None,
        "layers_to_transform": None, "lora_alpha": a["lora_alpha"], "lora_dropout": 0.0, "modules_to_save": None,
        "peft_type": "LORA", "r": a["r"], "rank_pattern": {}, "revision": None,
        "target_modules": sorted(a["target_modules"]), "task_type": "CAUSAL_LM", "use_dora": False,
        "use_rslora": a["use_rslora"],
    }


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(2024)
    W = make_weights(CONFIG)
    ids = torch.randint(0, CONFIG["vocab_size"], (2, 7))
    with torch.no_grad():
        base_logits = forward(CONFIG, W, ids)
    write_safetensors(os.path.join(OUT, "base.safetensors"), W)
    with open(os.path.join(OUT, "base.json"), "w") as f:
        json.dump({"config": CONFIG, "input_ids": ids.tolist(), "logits": r9(base_logits.flatten().tolist())}, f)
    for name, a in ADAPTERS.items():
        r, alpha = a["r"], a["lora_alpha"]
        scale = alpha / math.sqrt(r) if a["use_rslora"] else alpha / r
        merged = dict(W)
        tensors = {}
        for i in range(CONFIG["num_hidden_layers"]):
            for mod in a["target_modules"]:
                key = f"model.layers.{i}.{MODULE_PATH[mod]}.{mod}"
                w = W[key + ".weight"]
                out_f, in_f = w.shape
                A = torch.randn(r, in_f) / math.sqrt(in_f)
                B = torch.randn(out_f, r) * 0.2  # as after training (PEFT initialises B to zero)
                tensors[f"base_model.model.{key}.lora_A.weight"] = A
                tensors[f"base_model.model.{key}.lora_B.weight"] = B
                merged[key + ".weight"] = w + scale * (B @ A)
        with torch.no_grad():
            logits = forward(CONFIG, merged, ids)
        d = os.path.join(OUT, name)
        os.makedirs(d, exist_ok=True)
        write_safetensors(os.path.join(d, "adapter_model.safetensors"), tensors)
        with open(os.path.join(d, "adapter_config.json"), "w") as f:
            json.dump(peft_config(a), f, indent=2)
        with open(os.path.join(OUT, name + ".json"), "w") as f:
            json.dump({"input_ids": ids.tolist(), "scale": scale, "logits": r9(logits.flatten().tolist()),
                       "max_abs_change": float((logits - base_logits).abs().max())}, f)
        print(name, "written; max |logit change| =", float((logits - base_logits).abs().max()))


if __name__ == "__main__":
    main()
