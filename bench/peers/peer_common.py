"""What the PyTorch training peers share: the config argument, the token source and peak RSS."""
import json
import os
import resource

import numpy as np
import torch


def load_config(arg, parse_config):
    """A config.json path or inline JSON, through the reference model's parse_config."""
    if os.path.exists(arg):
        with open(arg) as f:
            return parse_config(json.load(f), arg)
    return parse_config(json.loads(arg), "--config")


def token_source(args, vocab, generator=None):
    """A function n_rows, n_cols -> (n_rows, n_cols) int64 ids: windows of args.tokens, or random ids."""
    if not args.tokens:
        return lambda r, c: torch.randint(0, vocab, (r, c), generator=generator)
    toks = np.fromfile(args.tokens, dtype="<u2" if args.tokens_dtype == "uint16" else "<i4").astype(np.int64)
    if toks.size == 0:
        raise SystemExit(f"{args.tokens}: no tokens")
    if toks.max() >= vocab or toks.min() < 0:
        raise SystemExit(f"{args.tokens}: token ids span [{toks.min()}, {toks.max()}], outside the vocab of {vocab}")
    toks = torch.from_numpy(toks)

    def draw(r, c):
        if toks.numel() < c:
            raise SystemExit(f"{args.tokens}: {toks.numel()} tokens, fewer than one window of {c}")
        starts = torch.randint(0, toks.numel() - c + 1, (r,), generator=generator)
        return torch.stack([toks[s:s + c] for s in starts.tolist()])
    return draw


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # Linux: KiB
