"""Golden values for classifier-free guidance in generate() (GenerateOptions.guidance), from the
PyTorch reference model (scripts/ref_llama.py) on the committed llama_gqa_untied weights.

Run: /usr/bin/python3 scripts/gen_guidance_fixtures.py

The rule is Hugging Face's UnbatchedClassifierFreeGuidanceLogitsProcessor (guidance_scale with
negative_prompt_ids): each step, with c = log_softmax(logits after the prompt and the tokens so
far) and u = log_softmax(logits after the negative prompt and the same tokens), the scores are
scale * (c - u) + u. Every step recomputes both full forward passes (no KV cache). Writes
test/fixtures/llama/guidance.json: per case the prompt, the negative prompt, the scale, the 10
greedy tokens and the log-probability of each under the guided scores renormalised.
"""
import json
import os

import torch

from ref_llama import forward, read_safetensors

HERE = os.path.dirname(os.path.abspath(__file__))
FX = os.path.join(HERE, "..", "test", "fixtures", "llama")


def main():
    with open(os.path.join(FX, "llama_gqa_untied.json")) as f:
        cfg = json.load(f)["config"]
    W = read_safetensors(os.path.join(FX, "llama_gqa_untied.safetensors"))
    cases = []
    for prompt, negative, scale in [([1, 17, 40, 9, 33], [1], 3.0), ([1, 17, 40, 9, 33], [1, 60, 5], 1.5), ([1, 8], [1], 0.5)]:
        c_seq, u_seq = torch.tensor([prompt]), torch.tensor([negative])
        ids, lps = [], []
        with torch.no_grad():
            for _ in range(10):
                c = torch.log_softmax(forward(cfg, W, c_seq)[0, -1].double(), -1)
                u = torch.log_softmax(forward(cfg, W, u_seq)[0, -1].double(), -1)
                g = scale * (c - u) + u
                nxt = int(g.argmax())
                ids.append(nxt)
                lps.append(float(f"{(g - torch.logsumexp(g, -1))[nxt].item():.9g}"))
                t = torch.tensor([[nxt]])
                c_seq, u_seq = torch.cat([c_seq, t], 1), torch.cat([u_seq, t], 1)
        cases.append({"prompt": prompt, "negative": negative, "scale": scale, "ids": ids, "logprobs": lps})
    with open(os.path.join(FX, "guidance.json"), "w") as f:
        json.dump({"model": "llama_gqa_untied", "cases": cases}, f)
    print("guidance.json written")


if __name__ == "__main__":
    main()
