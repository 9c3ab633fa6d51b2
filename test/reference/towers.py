"""The lab's two towers and losses in PyTorch, written from the math, never from
the TS code: conv2d patch embedding, F.embedding lookup, F.layer_norm, softmax
attention, quick GELU, MAP pooling, end-of-text pooling, SigLIP and CLIP losses,
and the LIxP and Llip losses (lib/objectives/lixp.ts, lib/objectives/llip-mix.ts), the
covariance spectrum and effective rank (lib/eval/spectrum.ts).

Shared by test/reference/make_golden.py (float64 golden values) and
bench/torch_bench.py (the PyTorch side of `npm run bench`, float32); the dtype
follows the inputs. Parameter names and layouts match lib/model/*.
"""
import math

import torch
import torch.nn.functional as F

END_ID = 1  # the tokenizer's end-of-text id


def ln(p, name, x):
    return F.layer_norm(x, (x.shape[-1],), p[name + ".g"], p[name + ".b"], eps=1e-5)


def lin(p, name, x):
    y = x @ p[name + ".w"]
    return y + p[name + ".b"] if name + ".b" in p else y


def mha(p, name, x, heads, causal):
    B, T, D = x.shape
    q, k, v = lin(p, name + ".qkv", x).split(D, dim=-1)
    q, k, v = (z.view(B, T, heads, D // heads).transpose(1, 2) for z in (q, k, v))
    s = q @ k.transpose(-1, -2) / math.sqrt(D // heads)
    if causal:
        s = s.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf"))
    o = (s.softmax(-1) @ v).transpose(1, 2).reshape(B, T, D)
    return lin(p, name + ".proj", o)


def block(p, name, x, heads, causal):
    x = x + mha(p, name + ".attn", ln(p, name + ".ln1", x), heads, causal)
    h = lin(p, name + ".fc1", ln(p, name + ".ln2", x))
    return x + lin(p, name + ".fc2", h * torch.sigmoid(1.702 * h))


def map_pool(p, toks, heads):
    B, T, D = toks.shape
    q = lin(p, "img.map.q", p["img.map.probe"]).view(1, heads, 1, D // heads)
    k, v = lin(p, "img.map.kv", toks).split(D, -1)
    k, v = (z.view(B, T, heads, D // heads).transpose(1, 2) for z in (k, v))
    a = ((q * k).sum(-1) / math.sqrt(D // heads)).softmax(-1)  # [B, H, T]
    return lin(p, "img.map.proj", (a.unsqueeze(-1) * v).sum(2).reshape(B, D))


def image_tokens(p, im, images):  # images [B, S, S, 3] in [0, 1]
    """All tokens after the last block and the final layer norm [B, T, D], T = extra + K + patches in
    that order (cls and registers, then the K mixture tokens a Llip model carries, then the patches),
    and the number of tokens before the patches."""
    P, D = im["patch"], im["width"]
    x = images.permute(0, 3, 1, 2) * 2 - 1
    w = p["img.patch.w"].T.reshape(D, P, P, 3).permute(0, 3, 1, 2)
    h = F.conv2d(x, w, p["img.patch.b"], stride=P).flatten(2).transpose(1, 2) + p["img.pos"]
    extra = (1 if im["pool"] == "cls" else 0) + im["registers"]
    mixture = im.get("mixtureTokens", 0)
    learned = ([p["img.extra"]] if extra else []) + ([p["img.mixture"]] if mixture else [])
    if learned:
        h = torch.cat([t.expand(h.shape[0], -1, -1) for t in learned] + [h], 1)
    for i in range(im["depth"]):
        h = block(p, f"img.blocks.{i}", h, im["heads"], False)
    return ln(p, "img.lnf", h), extra + mixture


def image_tower(p, im, images, raw=False):  # images [B, S, S, 3] in [0, 1]
    """Pooled image embeddings [B, E], unit rows (raw: before the normalisation, as LIxP reads them)."""
    h, first = image_tokens(p, im, images)
    if im["pool"] == "cls":
        pooled = h[:, 0]
    elif im["pool"] == "mean":
        pooled = h[:, first:].mean(1)
    else:
        pooled = map_pool(p, h[:, first:], im["heads"])
    z = pooled @ p["img.head.w"]
    return z if raw else F.normalize(z, dim=-1, eps=1e-12)


def mixture_tokens(p, im, images):
    """The K mixture tokens after the final layer norm [B, K, D] (what Llip mixes)."""
    h, first = image_tokens(p, im, images)
    K = im["mixtureTokens"]
    return h[:, first - K:first]


def text_features(p, tx, tokens):  # tokens [B, L] int64
    """The pre-projection text feature g [B, Dt]: the final state at each caption's first END token
    (the last position when there is none), after the final layer norm."""
    h = F.embedding(tokens, p["txt.tok"]) + p["txt.pos"]
    for i in range(tx["depth"]):
        h = block(p, f"txt.blocks.{i}", h, tx["heads"], True)
    h = ln(p, "txt.lnf", h)
    is_end = tokens == END_ID
    L = tokens.shape[1]
    pos = torch.where(is_end.any(1), is_end.int().argmax(1), torch.full((tokens.shape[0],), L - 1))
    return h[torch.arange(tokens.shape[0]), pos]


def text_tower(p, tx, tokens, raw=False):  # tokens [B, L] int64
    """Text embeddings g·W_T [B, E], unit rows (raw: before the normalisation)."""
    z = text_features(p, tx, tokens) @ p["txt.head.w"]
    return z if raw else F.normalize(z, dim=-1, eps=1e-12)


def siglip(img, txt, log_scale, bias):
    logits = torch.exp(log_scale) * img @ txt.T + bias
    labels = 2 * torch.eye(img.shape[0]) - 1
    return -F.logsigmoid(labels * logits).sum() / img.shape[0]


def clip(img, txt, log_scale):
    logits = torch.exp(log_scale) * img @ txt.T
    target = torch.arange(img.shape[0])
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def lixp(img, txt, p, alpha):
    """LIxP: alpha·SigLIP(x, t; tau1, b1) + (1 − alpha)·SigLIP(norm(ctx), t; tau2, b2), with
    ctx = softmax(mask(x xᵀ) / (tauCtx √d)) img, the diagonal masked by -inf."""
    B, D = img.shape
    x = F.normalize(img, dim=1)
    att = (x @ x.T) / (p["logTauCtx"].exp() * math.sqrt(D))
    att = att.masked_fill(torch.eye(B, dtype=torch.bool), float("-inf"))
    ctx = F.normalize(torch.softmax(att, dim=1) @ img, dim=1)
    return alpha * siglip(x, txt, p["logTau1"], p["bias1"]) + (1 - alpha) * siglip(ctx, txt, p["logTau2"], p["bias2"])


def llip(mix, cap, w, log_scale, bias, heads, tau):
    """Llip's first form in the lab: one key/value projection shared by all tokens, the caption both
    query source and target (llip_mix below is the paper's; this equals it with W^k = W for every k and
    W_T = I, and stays for the first golden case).
    z_ij = Concat_m(Σ_k softmax_k(q_j·k_ik / tau) v_ik) W_O; SigLIP on cos(z_ij, t_j).
    mix [B, K, D] mixture tokens, cap [Bt, D] raw caption features, w: wq wk wv wo.
    Batched matmuls over heads (einsum's CPU path is ~20x slower at batch 256)."""
    B, K, D = mix.shape
    Bt = cap.shape[0]
    dh = D // heads
    q = (cap @ w["wq"]).view(Bt, heads, dh).transpose(0, 1)                  # [M, Bt, dh]
    k = (mix @ w["wk"]).view(B * K, heads, dh).transpose(0, 1)               # [M, B·K, dh]
    v = (mix @ w["wv"]).view(B, K, heads, dh).permute(2, 0, 1, 3)            # [M, B, K, dh]
    phi = torch.softmax((q @ k.transpose(1, 2)).view(heads, Bt, B, K) / tau, dim=-1)  # [M, Bt, B, K]
    z = phi.transpose(1, 2) @ v                                              # [M, B, Bt, dh]
    z = z.permute(1, 2, 0, 3).reshape(B, Bt, D) @ w["wo"]
    cos = (F.normalize(z, dim=-1) * F.normalize(cap, dim=-1)[None]).sum(-1)  # [B, Bt]
    labels = 2 * torch.eye(B) - 1
    return -F.logsigmoid(labels * (cos * log_scale.exp() + bias)).sum() / B, z


def llip_mix(h, g, w, heads, tau, mixing="text"):
    """Llip as the paper and the official code (facebookresearch/Llip, CMP / xAttnPred) define it:
    per-token key and value projections k_proj, v_proj [T, W, E] applied as h.transpose(0, 1) @ k_proj,
    the query g @ q_proj from the pre-projection text feature (or one learned query, mixing "learned"),
    optional nn.LayerNorm(E) on K, Q, V (w["kn"], w["qn"], w["vn"] = (gain, bias)), softmax over the T
    tokens of (K·Q) / tau with no 1/sqrt(d), heads concatenated and mapped by W_O. "average" and "first"
    replace the weights by 1/T and a one-hot on token 0.
    h [B, T, W] tokens, g [Bt, Dt] text features. Returns z [B, Bt, E] (Bt = 1 without text) and
    phi [B, Bt, M, T]."""
    B, T, _ = h.shape
    E = w["wv"].shape[2]
    dh = E // heads

    def norm(x, key):
        return F.layer_norm(x, (E,), w[key][0], w[key][1], eps=1e-5) if key in w else x

    V = norm(h.transpose(0, 1) @ w["wv"], "vn")                               # [T, B, E]
    V = V.view(T, B, heads, dh).permute(1, 2, 0, 3)                           # [B, M, T, dh]
    if mixing in ("text", "learned"):
        K = norm(h.transpose(0, 1) @ w["wk"], "kn").view(T, B, heads, dh).permute(1, 2, 0, 3)
        Q = norm(g @ w["wq"] if mixing == "text" else w["query"], "qn")       # [Bt, E]
        Q = Q.view(-1, heads, dh)                                             # [Bt, M, dh]
        logits = torch.einsum("bmtd,jmd->bjmt", K, Q) / tau                   # [B, Bt, M, T]
        phi = torch.softmax(logits, dim=-1)
    elif mixing == "average":
        phi = torch.full((B, 1, heads, T), 1.0 / T)
    else:
        phi = F.one_hot(torch.zeros(B, 1, heads, dtype=torch.long), T).to(h.dtype)
    z = torch.einsum("bjmt,bmtd->bjmd", phi, V).reshape(B, phi.shape[1], E) @ w["wo"]
    return z, phi


def llip_loss(h, g, zt, w, log_scale, bias, heads, tau, mixing="text"):
    """Eq. 3: SigLIP over exp(log_scale)·cos(z_ij, z'_j) + bias, z'_j = zt[j] = g_j W_T."""
    z, phi = llip_mix(h, g, w, heads, tau, mixing)
    cos = (F.normalize(z, dim=-1) * F.normalize(zt, dim=-1)[None]).sum(-1)  # [B, Bt]
    labels = 2 * torch.eye(h.shape[0]) - 1
    return -F.logsigmoid(labels * (cos * log_scale.exp() + bias)).sum() / h.shape[0], z


def covariance_spectrum(x):
    """Jing et al. 2022 / the Llip paper's Figure 5: rows L2-normalised, centred, C = XcᵀXc / (N − 1),
    C's singular values (torch.linalg.svdvals) in descending order."""
    xn = F.normalize(x, dim=1)
    xc = xn - xn.mean(0, keepdim=True)
    return torch.linalg.svdvals(xc.T @ xc / (x.shape[0] - 1))


def effective_rank(s):
    """exp of the entropy of p = s / Σs (Roy & Vetterli 2007), with 0·log 0 = 0."""
    p = s / s.sum()
    p = p[p > 0]
    return math.exp(-(p * p.log()).sum().item())
