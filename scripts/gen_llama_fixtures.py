"""Golden fixtures for tslm's LLaMA family, from an independent PyTorch implementation.

Run: /usr/bin/python3 scripts/gen_llama_fixtures.py   (Debian: apt-get install python3-torch)

The model lives in scripts/ref_llama.py (shared with scripts/check_interop.py and
bench/peers/torch_train.py): written from the LLaMA / LLaMA-2 papers and Hugging Face's published
semantics (RMSNorm pre-norm, rotate-half RoPE on q and k, grouped-query attention by repeating
KV heads, SwiGLU MLP, optional tied embeddings, optional q/k/v biases as Qwen2 has), not from
tslm's code. For each variant it writes, under test/fixtures/llama/:
  <name>.safetensors  weights with Hugging Face tensor names (F32), written with the standard
                      library following the safetensors spec
  <name>.json         {config, input_ids, logits (B,T,V flat), greedy: {prompt, ids}} where
                      `greedy` holds 12 tokens generated greedily by recomputing the full
                      forward pass each step (no KV cache), so a cache bug cannot hide;
                      the sliding-window variants add `long`: {input_ids, logits} of one
                      sequence of at least 3 windows (teacher-forced, full band-masked forward);
                      llama_long_prompt adds `long_prompt`: {input_ids (600), positions, logits at
                      those positions, greedy: 8 tokens after it by full recomputation}.
Deterministic: torch.manual_seed per variant.
"""
import json
import os

import torch

from ref_llama import forward, make_weights, next_token_loss, write_safetensors, z_loss

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "llama")


def r9(xs):
    return [float(f"{x:.9g}") for x in xs]


BASE = dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=4, max_position_embeddings=64, rms_norm_eps=1e-5,
            rope_theta=10000.0, hidden_act="silu", bos_token_id=1, eos_token_id=2)
VARIANTS = {
    "llama_gqa_untied": dict(BASE, model_type="llama", num_key_value_heads=2, tie_word_embeddings=False),
    "llama_mha_tied": dict(BASE, model_type="llama", num_key_value_heads=4, tie_word_embeddings=True,
                           rope_theta=500000.0, rope_scaling={"type": "linear", "factor": 2.0}),
    "qwen2_bias": dict(BASE, model_type="qwen2", num_key_value_heads=1, tie_word_embeddings=True, rms_norm_eps=1e-6,
                       rope_theta=1000000.0),
    # Sliding-window attention, with sequences longer than the window (9 inputs; 5 + 12 greedy).
    "mistral_window": dict(BASE, model_type="mistral", num_key_value_heads=2, tie_word_embeddings=False, sliding_window=4),
    "qwen2_window": dict(BASE, model_type="qwen2", num_key_value_heads=1, tie_word_embeddings=True, rms_norm_eps=1e-6,
                         rope_theta=1000000.0, use_sliding_window=True, sliding_window=3, max_window_layers=1),
    # Chameleon's stability options: QK-norm (always), norm reordering (swin_norm), z-loss.
    "chameleon_qknorm": dict(BASE, model_type="chameleon", num_key_value_heads=2, tie_word_embeddings=False, z_loss_coef=1e-3),
    "chameleon_swin": dict(BASE, model_type="chameleon", num_key_value_heads=4, tie_word_embeddings=False, swin_norm=True, z_loss_coef=1e-3),
    # A prompt longer than tslm's prefill chunk (256 positions): prefilled in three chunks.
    "llama_long_prompt": dict(BASE, model_type="llama", num_key_value_heads=2, tie_word_embeddings=False,
                              max_position_embeddings=640),
}
# Sequences of at least 3 windows for the rolling KV cache: Mistral's (every layer windowed, so no
# context limit) runs past max_position_embeddings (64) too; Qwen2's (layer 0 full) stays within it.
LONG = {"mistral_window": 70, "qwen2_window": 20}
# A prompt of 600 positions: the logits at PROMPT_POSITIONS (around the chunks' edges and the end;
# the full 600 × V would make a large file) and 8 greedy tokens after it, by full recomputation.
PROMPT = {"llama_long_prompt": 600}
PROMPT_POSITIONS = [0, 1, 127, 254, 255, 256, 257, 300, 420, 510, 511, 512, 513, 555, 598, 599]


def main():
    os.makedirs(OUT, exist_ok=True)
    for seed, (name, cfg) in enumerate(VARIANTS.items()):
        torch.manual_seed(1000 + seed)
        W = make_weights(cfg)
        ids = torch.randint(0, cfg["vocab_size"], (2, 9))
        with torch.no_grad():
            logits = forward(cfg, W, ids)
            prompt = ids[:1, :5]
            seq = prompt.clone()
            for _ in range(12):
                nxt = forward(cfg, W, seq)[:, -1].argmax(-1, keepdim=True)
                seq = torch.cat([seq, nxt], dim=1)
            extra = {}
            if cfg.get("z_loss_coef"):
                # The training loss: next-token cross-entropy + z_loss_coef * z-loss, on input_ids.
                z = z_loss(cfg, W, ids)
                extra = {"loss": float(f"{(next_token_loss(cfg, W, ids) + cfg['z_loss_coef'] * z).item():.9g}"), "z_loss": float(f"{z.item():.9g}")}
            if name in LONG:
                # Far beyond the window: teacher-forced logits of one sequence, full forward with the band mask.
                long_ids = torch.randint(0, cfg["vocab_size"], (1, LONG[name]))
                extra["long"] = {"input_ids": long_ids[0].tolist(), "logits": r9(forward(cfg, W, long_ids).flatten().tolist())}
            if name in PROMPT:
                p_ids = torch.randint(0, cfg["vocab_size"], (1, PROMPT[name]))
                p_logits = forward(cfg, W, p_ids)[0]
                seq = p_ids.clone()
                for _ in range(8):
                    nxt = forward(cfg, W, seq)[:, -1].argmax(-1, keepdim=True)
                    seq = torch.cat([seq, nxt], dim=1)
                extra["long_prompt"] = {"input_ids": p_ids[0].tolist(), "positions": PROMPT_POSITIONS,
                                        "logits": r9(p_logits[PROMPT_POSITIONS].flatten().tolist()),
                                        "greedy": seq[0, PROMPT[name]:].tolist()}
        write_safetensors(os.path.join(OUT, name + ".safetensors"), W)
        with open(os.path.join(OUT, name + ".json"), "w") as f:
            json.dump({"config": cfg, "input_ids": ids.tolist(), "logits_shape": list(logits.shape),
                       "logits": r9(logits.flatten().tolist()),
                       "greedy": {"prompt": prompt[0].tolist(), "ids": seq[0, 5:].tolist()}, **extra}, f)
        print(name, "written")


if __name__ == "__main__":
    main()
