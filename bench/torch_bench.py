#!/usr/bin/python3
"""PyTorch side of `npm run bench`: the lab's two towers, its objective (SigLIP,
CLIP, LIxP or Llip) and AdamW, trained from the weights and batches the TS side
wrote.

A line-oriented server so the TS side can alternate lab and PyTorch steps in one
run: each stdin line is a JSON command, each reply one JSON line on stdout. One
process runs at one thread count (`--threads N`, also set by the TS side in
OPENBLAS_NUM_THREADS / OMP_NUM_THREADS / MKL_NUM_THREADS before it starts, since
OpenBLAS sizes its own pool from the environment at load time) and one BLAS
environment; bench/torch.ts starts one process per combination.

  {"cmd": "load", "key": K, "dir": D}  frees the previous model, loads this one, resets the peak RSS
  {"cmd": "steps", "key": K, "from": s, "to": e}  -> {"ms": [...], "cpuMs": [...], "loss": [...]}
  {"cmd": "losses", "batch": B, "dim": D, "mixtureTokens": K, "heads": M, "tau": t, "reps": r}
      -> median ms of forward + backward of each loss: {"siglip": ms, "clip": ..., "lixp": ..., "llip": ...}
  {"cmd": "memory"}  -> {"maxRssMiB": peak RSS since the last load, "lifetimeMaxRssMiB": ...}
  {"cmd": "quit"}

Independent of the TS code: the towers and losses come from test/reference/towers.py,
which make_golden.py uses too (here in float32): conv2d patch embedding,
F.embedding, F.layer_norm, softmax attention, quick GELU, MAP pooling, end-of-text
pooling, SigLIP, CLIP and LIxP. Llip's mixing is `llip_fast` below: the same
math as towers.llip_loss (checked against it when a Llip model loads) with
batched matmuls instead of einsum, whose CPU path is many times slower here, so
the yardstick is PyTorch at its fastest. Run with Debian's /usr/bin/python3
(python3-torch 1.13).
"""
import argparse
import gc
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
from towers import (clip, image_tower, lixp, llip_loss, mixture_tokens, siglip, text_features,  # noqa: E402
                    text_tower)

# LIxP as the slides define it (lib/objectives/lixp.ts LIXP_PAPER): what towers.lixp implements.
LIXP_PAPER = {"maskSelf": True, "qkNorm": True, "temperatures": "separate", "learnTauCtx": True,
              "stopGrad": "none", "memoryNorm": "none", "valueHead": "none", "residual": False,
              "memory": "images", "context": "batch"}
LIXP_SCALARS = ["logTau1", "bias1", "logTau2", "bias2", "logTauCtx"]


def llip_fast(h, g, zt, w, log_scale, bias, heads, tau):
    """Llip's loss (eqs. 1-3, towers.llip_mix with mixing "text" and no norms) by batched matmuls.
    h [B, T, W] mixture tokens, g [Bt, Dt] text features, zt [Bt, E] text targets g W_T."""
    B, T, _ = h.shape
    Bt, E = g.shape[0], w["wv"].shape[2]
    dh = E // heads
    ht = h.transpose(0, 1)                                                     # [T, B, W]
    k = (ht @ w["wk"]).view(T, B, heads, dh).permute(2, 1, 0, 3).reshape(heads, B * T, dh)
    v = (ht @ w["wv"]).view(T, B, heads, dh).permute(2, 1, 0, 3)              # [M, B, T, dh]
    q = ((g @ w["wq"]) / tau).view(Bt, heads, dh).transpose(0, 1)             # [M, Bt, dh]
    phi = torch.softmax((q @ k.transpose(1, 2)).view(heads, Bt, B, T), -1)    # [M, Bt, B, T]
    z = phi.transpose(1, 2) @ v                                                # [M, B, Bt, dh]
    z = z.permute(1, 2, 0, 3).reshape(B, Bt, E) @ w["wo"]                      # [B, Bt, E]
    cos = (F.normalize(z, dim=-1) * F.normalize(zt, dim=-1)[None]).sum(-1)    # [B, Bt]
    labels = 2 * torch.eye(B) - 1
    return -F.logsigmoid(labels * (cos * log_scale.exp() + bias)).sum() / B


def llip_weights(p):
    return {"wq": p["llip.q.w"], "wk": p["llip.k.w"], "wv": p["llip.v.w"], "wo": p["llip.o.w"]}


def check_llip_fast(h, g, zt, w, a, b, heads, tau):
    """llip_fast against the golden-value implementation (value and every gradient), float64."""
    xs = [x.detach().double().requires_grad_() for x in [h, g, zt, *w.values(), a, b]]
    ws = dict(zip(w, xs[3:7]))
    fast = llip_fast(*xs[:3], ws, xs[7], xs[8], heads, tau)
    ref = llip_loss(*xs[:3], ws, xs[7], xs[8], heads, tau)[0]
    for u, r in zip(torch.autograd.grad(fast, xs), torch.autograd.grad(ref, xs)):
        if not torch.allclose(u, r, rtol=1e-6, atol=1e-9):
            raise AssertionError("llip_fast's gradients differ from towers.llip_loss")
    if not torch.allclose(fast, ref, rtol=1e-9):
        raise AssertionError(f"llip_fast {fast.item()} != towers.llip_loss {ref.item()}")


def lr_at(step, total, o):  # lib/optim.ts lrAt
    if step < o["warmupSteps"]:
        return o["lr"] * (step + 1) / o["warmupSteps"]
    span = max(1, total - o["warmupSteps"])
    progress = min(1.0, (step - o["warmupSteps"]) / span)
    cos = 0.5 * (1 + math.cos(math.pi * progress))
    return o["lr"] * (o["minLrRatio"] + (1 - o["minLrRatio"]) * cos)


class Run:
    """One model copy with its objective and optimizer, trained on the shared batches."""

    def __init__(self, d, manifest):
        self.cfg, self.optim, self.total = manifest["model"], manifest["optim"], manifest["totalSteps"]
        self.objective = manifest["objective"]
        check_objective(self.objective)
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
        if self.objective["name"] == "llip":
            with torch.no_grad():
                n = min(B, 16)
                h = mixture_tokens(self.p, self.cfg["image"], self.images[0][:n])
                g = text_features(self.p, self.cfg["text"], self.tokens[0][:n])
            o = self.objective
            check_llip_fast(h, g, g @ self.p["txt.head.w"], llip_weights(self.p), self.p["logScale"],
                            self.p["bias"], o["heads"], o["tau"])

    def loss(self, images, tokens):
        """The objective's loss on one batch, as lib/objectives/<name>.ts defines it."""
        p, im, tx, o = self.p, self.cfg["image"], self.cfg["text"], self.objective
        name = o["name"]
        if name == "siglip":
            return siglip(image_tower(p, im, images), text_tower(p, tx, tokens), p["logScale"], p["bias"])
        if name == "clip":
            return clip(image_tower(p, im, images), text_tower(p, tx, tokens), p["logScale"])
        if name == "lixp":  # raw image embeddings, unit text embeddings
            scalars = {n: p[n] for n in LIXP_SCALARS}
            return lixp(image_tower(p, im, images, raw=True), text_tower(p, tx, tokens), scalars, o["alpha"])
        g = text_features(p, tx, tokens)  # llip
        return llip_fast(mixture_tokens(p, im, images), g, g @ p["txt.head.w"], llip_weights(p), p["logScale"],
                         p["bias"], o["heads"], o["tau"])

    def step(self, i):
        b = i % len(self.images)
        loss = self.loss(self.images[b], self.tokens[b])
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.optim["gradClip"] > 0:
            torch.nn.utils.clip_grad_norm_(list(self.p.values()), self.optim["gradClip"])
        for g in self.opt.param_groups:
            g["lr"] = lr_at(i, self.total, self.optim)
        self.opt.step()
        return loss.item()


def check_objective(o):
    """Only the configurations this file implements: the paper's LIxP, Llip with text mixing."""
    name = o["name"]
    if name == "lixp":
        off = {k: o.get(k) for k, v in LIXP_PAPER.items() if o.get(k) != v}
        off |= {k: o[k] for k in ("stale", "activeSubset") if o.get(k)}
        off |= {"stages": o["stages"]} if o.get("stages", 1) != 1 else {}
        if off:
            raise ValueError(f"lixp: only the paper's switches are implemented here, got {off}")
    elif name == "llip":
        if o["mixing"] != "text" or o["patchTokens"] or o["norm"]:
            raise ValueError("llip: only mixing=text without patch tokens or norms is implemented here")
    elif name not in ("siglip", "clip"):
        raise ValueError(f"unknown objective {name}")


RUNS = {}


def hwm_mib():
    """Peak resident memory since the last reset_hwm (VmHWM), or the process's lifetime peak."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_hwm():
    try:  # Linux >= 4.0: "5" resets the peak RSS of this process
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def handle(msg):
    cmd = msg["cmd"]
    if cmd == "load":
        with open(os.path.join(msg["dir"], "manifest.json")) as f:
            manifest = json.load(f)
        RUNS.clear()
        gc.collect()
        reset_hwm()
        RUNS[msg["key"]] = Run(msg["dir"], manifest)
        return {"ok": True, "torch": torch.__version__, "threads": torch.get_num_threads()}
    if cmd == "steps":
        run = RUNS[msg["key"]]
        ms, cpu, losses = [], [], []
        for i in range(msg["from"], msg["to"]):
            t0, c0 = time.perf_counter(), time.process_time()
            losses.append(run.step(i))
            ms.append((time.perf_counter() - t0) * 1000)
            cpu.append((time.process_time() - c0) * 1000)
        return {"ms": ms, "cpuMs": cpu, "loss": losses}
    if cmd == "losses":
        return time_losses(msg)
    if cmd == "memory":
        return {"maxRssMiB": hwm_mib(),
                "lifetimeMaxRssMiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
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
        "llip": lambda h, g, zt, wq, wk, wv, wo, a, b: llip_fast(h, g, zt, {"wq": wq, "wk": wk, "wv": wv, "wo": wo},
                                                                   a, b, m["heads"], m["tau"]),
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
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    torch.set_num_threads(ap.parse_args().threads)
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
