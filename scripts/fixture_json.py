"""Numbers and tensors for the JSON fixtures of the align scripts (ref_grpo.py, ref_dpo.py,
ref_ppo.py): 9 significant digits, non-finite values refused."""
import math

import torch


def r9(x):
    x = float(x)
    if not math.isfinite(x):
        raise ValueError("non-finite value in fixture")
    return float(f"{x:.9g}")


def enc(t):
    t = t.detach().to(torch.float64)
    return {"shape": list(t.shape), "data": [r9(v) for v in t.reshape(-1).tolist()]}
