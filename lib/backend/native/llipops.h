/*
 * Llip's pairwise token mixing (lib/objectives/llip-mix.ts, eqs. 1–2) and the
 * row entropy of its weights, for the TF.js wasm backend; included by addon.c
 * after attention.h (uses att_gemm8/16, att_softmax_grad_rows, lab_softmax_rows, row_sum).
 *
 * Why: Φ is [M, Bt, B, T] (8·256·256·32 floats at the bench's K = 32), and as
 * TF.js ops the mixing is a chain of full passes over it or over the
 * [B, Bt, E] mixed vectors: two head transposes, the batched products, a
 * softmax with its hand-written gradient (multiply, row sums, spread, sub), the
 * Φ transpose for the mixing product and its gradient, the merging transpose.
 * Here one call each way works image by image and head by head on blocks that
 * stay in cache, reading keys and values [T, B, E] and queries [Bt, E] as the
 * per-token projections leave them, and writing the merged heads [B, Bt, E]:
 *   s_jk = ⟨Q_j^m / τ, K_i^{mk}⟩,  Φ_j = softmax_k(s_j),  o_ij^m = Σ_k Φ_jk V_i^{mk}
 *   dV = Φᵀ do,  dΦ = do Vᵀ,  ds = Φ ⊙ (dΦ − Σ_k dΦ Φ),  dK = dsᵀ (Q/τ),  dQ = (Σ_i ds K) / τ
 * Float32, sums in another order than the op-by-op version: equal to the last bits.
 */
#include <stdint.h>
#include <string.h>

#pragma GCC push_options
#pragma GCC optimize("fp-contract=fast")

/* Shape of one call: keys, values [T, B, E], queries [Bt, E], M heads of dh = E / M. */
typedef struct {
  int64_t T, B, Bt, M, dh;
  float tau;
} LlipMix;

/* Columns the per-head blocks are padded to: 8 when dh fits, else a multiple of 16. */
static int64_t llip_dp(const LlipMix *a) { return a->dh <= 8 ? 8 : att_pad(a->dh); }

/* dst[r, 0:dp] = src[r·lds + 0:dh] · mul for r < rows (zero-padded), or / div when div != 0. */
static void llip_gather(const float *src, int64_t lds, int64_t rows, int64_t dh, int64_t dp, float div,
                        float *dst) {
  for (int64_t r = 0; r < rows; r++) {
    const float *s = src + r * lds;
    float *d = dst + r * dp;
    if (div != 0.0f) {
      for (int64_t c = 0; c < dh; c++) d[c] = s[c] / div;
    } else {
      memcpy(d, s, (size_t)dh * sizeof(float));
    }
    for (int64_t c = dh; c < dp; c++) d[c] = 0.0f;
  }
}

/* C = A B with C's columns (a multiple of the width) through the 8- or 16-wide micro-kernel. */
static void llip_gemm(int64_t rows, int64_t ncols, int64_t K, const float *a, int64_t ars, int64_t aks,
                      const float *bm, int64_t ldb, float *c, int64_t ldc) {
  if (ncols == 8) {
    att_gemm8(rows, ncols, K, a, ars, aks, bm, ldb, c, ldc);
  } else {
    att_gemm(rows, ncols, K, a, ars, aks, bm, ldb, c, ldc);
  }
}

/* Floats of scratch lab_llip_mix / lab_llip_mix_grad share: Q/τ and Σ_i ds K per head. */
static int64_t llip_shared(const LlipMix *a) { return att_pad(2 * a->M * a->Bt * llip_dp(a)); }

/* Floats of scratch each thread needs beside (whole cache lines: no sharing). */
static int64_t llip_per_thread(const LlipMix *a) {
  int64_t dp = llip_dp(a), tp = att_pad(a->T);
  return att_pad(4 * a->T * dp + 2 * a->dh * tp + 3 * a->Bt * tp + 3 * a->Bt * dp);
}

/* Floats of scratch a call needs with `threads` threads. */
static int64_t llip_scratch(const LlipMix *a, int threads) { return llip_shared(a) + threads * llip_per_thread(a); }

/*
 * mixed [B, Bt, E] (heads merged) and phi [M, Bt, B, T] from keys, values
 * [T, B, E] and queries q [Bt, E] (before 1/τ).
 */
static void lab_llip_mix(const float *keys, const float *values, const float *q, float *mixed, float *phi,
                         const LlipMix *a, float *scratch) {
  int64_t T = a->T, B = a->B, Bt = a->Bt, M = a->M, dh = a->dh, E = M * dh, dp = llip_dp(a), tp = att_pad(T);
  float *qh = scratch; /* [M][Bt, dp]: Q/τ per head */
  for (int64_t m = 0; m < M; m++) llip_gather(q + m * dh, E, Bt, dh, dp, a->tau, qh + m * Bt * dp);
  float *own = scratch + llip_shared(a); /* then llip_per_thread floats per thread */
  int64_t per = llip_per_thread(a);
  int par = lab_par(M * Bt * B * T);
#pragma omp parallel for schedule(static) num_threads(par) if (par > 1)
  for (int64_t im = 0; im < B * M; im++) { /* (image, head) pairs split over threads */
    int64_t i = im / M, m = im % M;
    float *kt = own + lab_thread_id() * per;                                      /* [dh, tp] */
    float *v = kt + dh * tp;                                                      /* [T, dp] */
    float *s = v + T * dp;                                                        /* [Bt, tp] */
    float *p = s + Bt * tp;                                                       /* [Bt, T] */
    float *o = p + Bt * tp;                                                       /* [Bt, dp] */
    const float *ki = keys + i * E + m * dh, *vi = values + i * E + m * dh;
    for (int64_t c = 0; c < dh; c++) {
      float *dst = kt + c * tp;
      for (int64_t k = 0; k < T; k++) dst[k] = ki[k * B * E + c];
      for (int64_t k = T; k < tp; k++) dst[k] = 0.0f;
    }
    llip_gather(vi, B * E, T, dh, dp, 0.0f, v);
    att_gemm(Bt, tp, dh, qh + m * Bt * dp, dp, 1, kt, tp, s, tp); /* s = (Q/τ) Kᵀ [Bt, tp] */
    for (int64_t j = 0; j < Bt; j++) memcpy(p + j * T, s + j * tp, (size_t)T * sizeof(float));
    lab_softmax_rows(p, p, Bt, T);
    float *phim = phi + m * Bt * B * T + i * T;
    for (int64_t j = 0; j < Bt; j++) memcpy(phim + j * B * T, p + j * T, (size_t)T * sizeof(float));
    llip_gemm(Bt, dp, T, p, T, 1, v, dp, o, dp); /* o = Φ V [Bt, dp] */
    float *mi = mixed + i * Bt * E + m * dh;
    for (int64_t j = 0; j < Bt; j++) memcpy(mi + j * E, o + j * dp, (size_t)dh * sizeof(float));
  }
}

/*
 * dkeys, dvalues [T, B, E] and dq [Bt, E] from dy [B, Bt, E] (the merged
 * heads' gradient) and the forward's keys, values, q and phi.
 */
static void lab_llip_mix_grad(const float *dy, const float *keys, const float *values, const float *q,
                              const float *phi, float *dkeys, float *dvalues, float *dq, const LlipMix *a,
                              float *scratch) {
  int64_t T = a->T, B = a->B, Bt = a->Bt, M = a->M, dh = a->dh, E = M * dh, dp = llip_dp(a), tp = att_pad(T);
  float *qh = scratch;           /* [M][Bt, dp] */
  float *dqa = qh + M * Bt * dp; /* [M][Bt, dp]: Σ_i ds K */
  for (int64_t m = 0; m < M; m++) llip_gather(q + m * dh, E, Bt, dh, dp, a->tau, qh + m * Bt * dp);
  memset(dqa, 0, (size_t)(M * Bt * dp) * sizeof(float));
  float *own = scratch + llip_shared(a); /* then llip_per_thread floats per thread */
  int64_t per = llip_per_thread(a);
  int par = lab_par(2 * M * Bt * B * T);
  /* Heads split over threads; each head sums Σ_i ds K over images in order (same bits for any count). */
#pragma omp parallel for schedule(static) num_threads(par) if (par > 1)
  for (int64_t m = 0; m < M; m++) {
    float *k = own + lab_thread_id() * per;                                      /* [T, dp] */
    float *vt = k + T * dp;                                                      /* [dh, tp] */
    float *dk = vt + dh * tp;                                                    /* [T, dp] */
    float *dv = dk + T * dp;                                                     /* [T, dp] */
    float *p = dv + T * dp;                                                      /* [Bt, T] (tp room) */
    float *ds = p + Bt * tp;                                                     /* [Bt, tp] */
    float *g = ds + Bt * tp;                                                     /* [Bt, dp] */
    float *t = g + Bt * dp;                                                      /* [Bt, dp] */
    for (int64_t i = 0; i < B; i++) {
      const float *ki = keys + i * E + m * dh, *vi = values + i * E + m * dh;
      llip_gather(ki, B * E, T, dh, dp, 0.0f, k);
      for (int64_t c = 0; c < dh; c++) {
        float *dst = vt + c * tp;
        for (int64_t r = 0; r < T; r++) dst[r] = vi[r * B * E + c];
        for (int64_t r = T; r < tp; r++) dst[r] = 0.0f;
      }
      const float *phim = phi + m * Bt * B * T + i * T;
      for (int64_t j = 0; j < Bt; j++) memcpy(p + j * T, phim + j * B * T, (size_t)T * sizeof(float));
      llip_gather(dy + i * Bt * E + m * dh, E, Bt, dh, dp, 0.0f, g);
      att_gemm(Bt, tp, dh, g, dp, 1, vt, tp, ds, tp); /* dΦ = do Vᵀ [Bt, tp] */
      att_softmax_grad_rows(p, T, ds, tp, Bt, T);
      llip_gemm(T, dp, Bt, p, 1, T, g, dp, dv, dp);                 /* dV = Φᵀ do */
      llip_gemm(T, dp, Bt, ds, 1, tp, qh + m * Bt * dp, dp, dk, dp); /* dK = dsᵀ (Q/τ) */
      llip_gemm(Bt, dp, T, ds, tp, 1, k, dp, t, dp);                 /* ds K, summed over images */
      float *acc = dqa + m * Bt * dp;
      for (int64_t x = 0; x < Bt * dp; x++) acc[x] += t[x];
      float *dki = dkeys + i * E + m * dh, *dvi = dvalues + i * E + m * dh;
      for (int64_t r = 0; r < T; r++) {
        memcpy(dki + r * B * E, dk + r * dp, (size_t)dh * sizeof(float));
        memcpy(dvi + r * B * E, dv + r * dp, (size_t)dh * sizeof(float));
      }
    }
  }
  for (int64_t m = 0; m < M; m++) {
    const float *acc = dqa + m * Bt * dp;
    for (int64_t j = 0; j < Bt; j++) {
      for (int64_t c = 0; c < dh; c++) dq[j * E + m * dh + c] = acc[j * dp + c] / a->tau;
    }
  }
}

/*
 * log(x) for x > 0 finite (Cephes logf: x = 2^e · f, f in [√½, √2), the degree-8
 * polynomial LAB_LOG_POLY of rowops.h, expanded here under this file's
 * fp-contract=fast; relative error < 2e-7), branch-free so loops over it vectorise.
 */
static inline float lab_logf(float x) {
  int32_t bits;
  memcpy(&bits, &x, sizeof bits);
  float e = (float)(((bits >> 23) & 0xff) - 126);
  bits = (bits & 0x807fffff) | 0x3f000000; /* f in [0.5, 1) */
  float f;
  memcpy(&f, &bits, sizeof f);
  int small = f < 0.707106781186547524f;
  e = small ? e - 1.0f : e;
  f = small ? f + f - 1.0f : f - 1.0f;
  float z = f * f;
  float y = LAB_LOG_POLY(f) * f * z; /* rowops.h */
  y += e * -2.12194440e-4f;
  y += -0.5f * z;
  return f + y + e * 0.693359375f;
}

/* out[r] = −Σ_k x[r, k] log(x[r, k] + 1e-30) for x [rows, cols] of probabilities (0 log 0 = 0). */
static void lab_row_entropy(const float *x, float *out, int64_t rows, int64_t cols) {
  int par = lab_par(rows * cols);
#pragma omp parallel for schedule(static) num_threads(par) if (par > 1)
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * cols;
    float acc[LANES] = {0};
    int64_t k = 0;
    for (; k + LANES <= cols; k += LANES) {
      for (int l = 0; l < LANES; l++) acc[l] += xr[k + l] * lab_logf(xr[k + l] + 1e-30f);
    }
    float s = 0.0f;
    for (; k < cols; k++) s += xr[k] * lab_logf(xr[k] + 1e-30f);
    for (int l = 0; l < LANES; l++) s += acc[l];
    out[r] = -s;
  }
}

#pragma GCC pop_options
