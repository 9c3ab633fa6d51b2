#!/usr/bin/python3
"""PyTorch side of `npm run bench`: the lab's two towers, SigLIP loss and AdamW,
trained from the weights and batches the TS side wrote, at a given thread count.

A line-oriented server so the TS side can alternate lab and PyTorch steps in one
run: each stdin line is a JSON command, each reply one JSON line on stdout.

  {"cmd": "load", "key": K, "dir": D, "threads": [1, 2]}  one model copy per thread count
  {"cmd": "steps", "key": K, "threads": T, "from": s, "to": e}  -> {"ms": [...], "cpuMs": [...], "loss": [...]}
  {"cmd": "losses", "batch": B, "dim": D, "mixtureTokens": K, "heads": M, "tau": t, "reps": r, "threads": T}
      -> median ms of forward + backward of each loss: {"siglip": ms, "clip": ..., "lixp": ..., "llip": ...}
  {"cmd": "memory"}  -> {"maxRssMiB": ...}
  {"cmd": "quit"}

Independent of the TS code: the towers come from test/reference/towers.py, which
make_golden.py uses too (here in float32): conv2d patch embedding, F.embedding,
F.layer_norm, softmax attention, quick GELU, MAP pooling, end-of-text pooling.
Run with Debian's /usr/bin/python3 (python3-torch 1.13).
"""
import json
import math
import os
import resource
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "reference"))
from towers import clip, image_tower, lixp, llip_loss, siglip, text_tower  # noqa: E402


def lr_at(step, total, o):  # lib/optim.ts lrAt
    if step < o["warmupSteps"]:
        return o["lr"] * (step + 1) / o["warmupSteps"]
    span = max(1, total - o["warmupSteps"])
    progress = min(1.0, (step - o["warmupSteps"]) / span)
    cos = 0.5 * (1 + math.cos(math.pi * progress))
    return o["lr"] * (o["minLrRatio"] + (1 - o["minLrRatio"]) * cos)


class Run:
    """One model copy with its optimizer, trained on the shared batches."""

    def __init__(self, d, manifest):
        self.cfg, self.optim, self.total = manifest["model"], manifest["optim"], manifest["totalSteps"]
        flat = np.fromfile(os.path.join(d, "params.bin"), dtype=np.float32)
        self.p = {}
        for name, (off, shape) in manifest["params"].items():
            n = int(np.prod(shape)) if shape else 1
            self.p[name] = torch.tensor(flat[off:off + n].reshape(shape)).requires_grad_()
        decay = [self.p[n] for n in manifest["decay"]]
        rest = [v for n, v in self.p.items() if n not in manifest["decay"]]
        o = self.optim
        self.opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": o["weightDecay"]}, {"params": rest, "weight_decay": 0.0}],
            lr=o["lr"], betas=(o["beta1"], o["beta2"]), eps=o["eps"])
        B, nb, L = manifest["batch"], manifest["numBatches"], self.cfg["text"]["contextLength"]
        imgs = np.fromfile(os.path.join(d, "images.bin"), dtype=np.float32).reshape(nb, B, 32, 32, 3)
        toks = np.fromfile(os.path.join(d, "tokens.bin"), dtype=np.int32).reshape(nb, B, L)
        self.images = [torch.tensor(x) for x in imgs]
        self.tokens = [torch.tensor(x, dtype=torch.int64) for x in toks]

    def step(self, i):
        b = i % len(self.images)
        zi = image_tower(self.p, self.cfg["image"], self.images[b])
        zt = text_tower(self.p, self.cfg["text"], self.tokens[b])
        loss = siglip(zi, zt, self.p["logScale"], self.p["bias"])
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.optim["gradClip"] > 0:
            torch.nn.utils.clip_grad_norm_(list(self.p.values()), self.optim["gradClip"])
        for g in self.opt.param_groups:
            g["lr"] = lr_at(i, self.total, self.optim)
        self.opt.step()
        return loss.item()


RUNS = {}


def handle(msg):
    cmd = msg["cmd"]
    if cmd == "load":
        with open(os.path.join(msg["dir"], "manifest.json")) as f:
            manifest = json.load(f)
        for t in msg["threads"]:
            RUNS[(msg["key"], t)] = Run(msg["dir"], manifest)
        return {"ok": True, "torch": torch.__version__}
    if cmd == "steps":
        run = RUNS[(msg["key"], msg["threads"])]
        torch.set_num_threads(msg["threads"])
        ms, cpu, losses = [], [], []
        for i in range(msg["from"], msg["to"]):
            t0, c0 = time.perf_counter(), time.process_time()
            losses.append(run.step(i))
            ms.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
        return {"ms": ms, "cpuMs": cpu, "loss": losses}
    if cmd == "losses":
        torch.set_num_threads(msg["threads"])
        return time_losses(msg)
    if cmd == "memory":
        return {"maxRssMiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    raise ValueError(f"unknown command {cmd}")


def time_losses(m):
    """The four objectives of bench/losses.ts at the same sizes, gradients of every input."""
    B, D, K = m["batch"], m["dim"], m["mixtureTokens"]
    g = torch.Generator().manual_seed(0)

    def rnd(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g) * scale).requires_grad_()

    def unit():
        return F.normalize(torch.randn(B, D, generator=g), dim=1).requires_grad_()

    def scalar(v):
        return torch.tensor(v, requires_grad=True)

    lixp_p = {"logTau1": scalar(math.log(10)), "bias1": scalar(-10.0), "logTau2": scalar(math.log(10)),
              "bias2": scalar(-10.0), "logTauCtx": scalar(0.0)}
    w = {n: rnd(D, D, scale=D ** -0.5) for n in ["wq", "wo"]} | {n: rnd(K, D, D, scale=D ** -0.5) for n in ["wk", "wv"]}
    cases = {
        "siglip": lambda i, t, a, b: siglip(F.normalize(i, dim=1), t, a, b),
        "clip": lambda i, t, a: clip(F.normalize(i, dim=1), t, a),
        "lixp": lambda i, t, *p: lixp(i, t, dict(zip(lixp_p, p)), 0.9),
        "llip": lambda h, g, zt, wq, wk, wv, wo, a, b: llip_loss(h, g, zt, {"wq": wq, "wk": wk, "wv": wv, "wo": wo},
                                                                   a, b, m["heads"], m["tau"])[0],
    }
    inputs = {
        "siglip": [rnd(B, D), unit(), scalar(math.log(10)), scalar(-10.0)],
        "clip": [rnd(B, D), unit(), scalar(math.log(1 / 0.07))],
        "lixp": [rnd(B, D), unit(), *lixp_p.values()],
        "llip": [rnd(B, K, D), rnd(B, D), rnd(B, D), w["wq"], w["wk"], w["wv"], w["wo"], scalar(math.log(10)),
                 scalar(-10.0)],
    }
    out = {}
    for name, f in cases.items():
        xs = inputs[name]
        times = []
        for r in range(-2, m["reps"]):
            t0 = time.perf_counter()
            torch.autograd.grad(f(*xs), xs)
            if r >= 0:
                times.append((time.perf_counter() - t0) * 1000)
        out[name] = sorted(times)[len(times) // 2]
    return out


def main():
    for line in sys.stdin:
        msg = json.loads(line)
        if msg["cmd"] == "quit":
            break
        try:
            reply = handle(msg)
        except Exception as e:  # report, keep serving
            reply = {"error": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
