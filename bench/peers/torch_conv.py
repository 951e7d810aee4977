"""PyTorch peer of bench/vision.ts: conv2d / conv_transpose2d forward, and forward + backward
(gradients of input, weight and bias), best of repeated runs after a warm-up, float32, on the
shapes given as JSON in argv[1]. Prints one JSON line: {"rows": [{"fwd_ms", "fwdbwd_ms"}...]}."""
import json
import sys
import time

import torch
import torch.nn.functional as F


def best(fn, min_seconds):
    fn()
    t_best, reps, start = float("inf"), 0, time.perf_counter()
    while reps < 3 or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        t_best = min(t_best, time.perf_counter() - t0)
        reps += 1
    return t_best * 1000


def main():
    cfg = json.loads(sys.argv[1])
    torch.set_num_threads(cfg["threads"])
    torch.manual_seed(0)
    rows = []
    for s in cfg["shapes"]:
        x = torch.randn(s["batch"], s["cin"], s["h"], s["w"], requires_grad=True)
        if s["op"] == "conv2d":
            w = torch.randn(s["cout"], s["cin"], s["k"], s["k"], requires_grad=True)
            f = lambda: F.conv2d(x, w, b, stride=s["stride"], padding=s["padding"])
        else:
            w = torch.randn(s["cin"], s["cout"], s["k"], s["k"], requires_grad=True)
            f = lambda: F.conv_transpose2d(x, w, b, stride=s["stride"], padding=s["padding"])
        b = torch.randn(s["cout"], requires_grad=True)
        with torch.no_grad():
            fwd = best(f, cfg["min_seconds"])

        def step():
            x.grad = w.grad = b.grad = None
            f().sum().backward()
        rows.append({"fwd_ms": fwd, "fwdbwd_ms": best(step, cfg["min_seconds"])})
    print(json.dumps({"rows": rows, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
