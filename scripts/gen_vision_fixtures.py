"""Golden values for tslm's image ops (src/tensor/conv.ts) from PyTorch.

Run: /usr/bin/python3 scripts/gen_vision_fixtures.py   (Debian: apt-get install python3-torch)

For each case: the inputs, the output of torch.nn.functional's op, and the gradients of
sum(output * r) for a random r with respect to every input, on awkward shapes (odd sizes,
non-square kernels, strides, padding, dilation, groups, output padding), written to
test/fixtures/vision/ops.json. Float64 arithmetic, rounded to 9 significant digits.
"""
import json
import os

import torch
import torch.nn.functional as F

from fixture_json import enc as T, r9

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "vision", "ops.json")


def case(name, op, opts, inputs, fn):
    ts = {k: v.clone().double().requires_grad_(True) for k, v in inputs.items()}
    out = fn(**ts)
    r = torch.randn(out.shape, dtype=torch.float64)
    (out * r).sum().backward()
    return {"name": name, "op": op, "opts": opts, "inputs": {k: T(v) for k, v in ts.items()}, "r": T(r), "out": T(out),
            "grads": {k: T(v.grad) for k, v in ts.items()}}


def rn(*shape):
    # Values rounded to 9 digits first, so tslm reads exactly the inputs PyTorch used.
    return torch.tensor([r9(v) for v in torch.randn(*shape, dtype=torch.float64).reshape(-1).tolist()], dtype=torch.float64).reshape(shape)


def vq_case(name, decay, beta=0.25, eps=1e-5):
    """Vector quantisation as the VQ-VAE paper defines it (nearest code by squared distance,
    straight-through gradient, commitment loss, and either the codebook loss or the appendix's
    EMA update with Laplace-smoothed counts), on a (2, 4, 3, 3) grid and 6 codes."""
    z0, e0 = rn(2, 4, 3, 3), rn(6, 4) * 0.8
    z = z0.clone().requires_grad_(True)
    e = e0.clone().requires_grad_(decay is None)
    K, D = e.shape
    flat = z.permute(0, 2, 3, 1).reshape(-1, D)
    dist = ((flat[:, None, :] - e[None, :, :]) ** 2).sum(-1)
    codes = dist.argmin(1)
    q = e[codes]
    loss = beta * ((flat - q.detach()) ** 2).mean()
    if decay is None:
        loss = loss + ((flat.detach() - q) ** 2).mean()
    zq = (flat + (q - flat).detach()).reshape(2, 3, 3, D).permute(0, 3, 1, 2)
    r = rn(*zq.shape)
    ((zq * r).sum() + loss).backward()
    out = {"name": name, "decay": decay, "beta": beta, "eps": eps, "z": T(z0), "codebook": T(e0), "r": T(r),
           "codes": codes.reshape(2, 3, 3).reshape(-1).tolist(), "zq": T(zq), "loss": r9(loss.item()), "grad_z": T(z.grad)}
    if decay is None:
        out["grad_codebook"] = T(e.grad)
    else:
        with torch.no_grad():
            f = flat.detach()
            n = torch.bincount(codes, minlength=K).double()
            s = torch.zeros(K, D, dtype=torch.float64).index_add_(0, codes, f)
            count = decay * torch.ones(K, dtype=torch.float64) + (1 - decay) * n
            total = count.sum()
            summ = decay * e0 + (1 - decay) * s
            smoothed = (count + eps) / (total + K * eps) * total
            out["ema_count"] = T(count)
            out["ema_sum"] = T(summ)
            out["codebook_after"] = T(summ / smoothed[:, None])
    return out


def main():
    torch.manual_seed(19)
    cases = []
    conv = [
        ("conv 3x3 pad 1 bias", (2, 3, 7, 5), (4, 3, 3, 3), True, dict(stride=1, padding=1, dilation=1, groups=1)),
        ("conv 3x2 stride 2 pad (1,0) groups 2", (1, 4, 9, 8), (6, 2, 3, 2), True, dict(stride=2, padding=(1, 0), dilation=1, groups=2)),
        ("conv stride (2,1) pad 2 dilation 2", (2, 2, 10, 7), (3, 2, 3, 3), False, dict(stride=(2, 1), padding=2, dilation=2, groups=1)),
        ("conv 1x1 groups 3", (1, 6, 5, 5), (6, 2, 1, 1), True, dict(stride=1, padding=0, dilation=1, groups=3)),
        ("conv 5x5 stride 3 on 11x13", (1, 2, 11, 13), (5, 2, 5, 5), True, dict(stride=3, padding=1, dilation=1, groups=1)),
        ("conv depthwise 3x3 stride 2", (2, 4, 8, 8), (4, 1, 3, 3), False, dict(stride=2, padding=1, dilation=1, groups=4)),
    ]
    for name, xs, ws, bias, o in conv:
        inputs = {"x": rn(*xs), "w": rn(*ws)}
        if bias:
            inputs["b"] = rn(ws[0])
        cases.append(case(name, "conv2d", o, inputs, lambda x, w, b=None, o=o: F.conv2d(x, w, b, **o)))
    convt = [
        ("convT 3x3 stride 2 pad 1 out-pad 1 bias", (2, 4, 3, 4), (4, 3, 3, 3), True, dict(stride=2, padding=1, output_padding=1, groups=1, dilation=1)),
        ("convT 2x2 stride 2 groups 2", (1, 4, 3, 3), (4, 3, 2, 2), True, dict(stride=2, padding=0, output_padding=0, groups=2, dilation=1)),
        ("convT 3x3 dilation 2", (1, 2, 4, 5), (2, 3, 3, 3), False, dict(stride=1, padding=0, output_padding=0, groups=1, dilation=2)),
        ("convT 4x3 stride (2,3) pad (1,1)", (2, 3, 3, 2), (3, 2, 4, 3), True, dict(stride=(2, 3), padding=(1, 1), output_padding=(0, 2), groups=1, dilation=1)),
    ]
    for name, xs, ws, bias, o in convt:
        inputs = {"x": rn(*xs), "w": rn(*ws)}
        if bias:
            inputs["b"] = rn(ws[1] * o["groups"])
        cases.append(case(name, "convTranspose2d", o, inputs, lambda x, w, b=None, o=o: F.conv_transpose2d(x, w, b, **o)))
    for name, xs, groups, affine in [("groupNorm 3 groups affine", (2, 6, 5, 3), 3, True), ("groupNorm 1 group", (1, 4, 3, 3), 1, True),
                                     ("groupNorm per channel, no affine", (2, 6, 2, 4), 6, False)]:
        inputs = {"x": rn(*xs)}
        if affine:
            inputs["w"] = rn(xs[1])
            inputs["b"] = rn(xs[1])
        cases.append(case(name, "groupNorm", {"groups": groups, "eps": 1e-5}, inputs,
                          lambda x, w=None, b=None, g=groups: F.group_norm(x, g, w, b, eps=1e-5)))
    for s in (2, 3):
        cases.append(case(f"upsample nearest x{s}", "upsampleNearest2d", {"scale": s}, {"x": rn(1, 2, 3, 4)},
                          lambda x, s=s: F.interpolate(x, scale_factor=s, mode="nearest")))
    for k, xs in [(2, (2, 3, 7, 6)), (3, (1, 2, 9, 10))]:
        cases.append(case(f"avgPool {k}", "avgPool2d", {"k": k}, {"x": rn(*xs)}, lambda x, k=k: F.avg_pool2d(x, k)))
    vq = [vq_case("vq ema decay 0.9", 0.9), vq_case("vq learned codebook", None)]
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"torch": torch.__version__, "cases": cases, "vq": vq}, f, allow_nan=False, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {os.path.relpath(OUT)} ({os.path.getsize(OUT)} bytes, {len(cases)} cases)")


if __name__ == "__main__":
    main()
