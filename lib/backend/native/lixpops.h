/*
 * LIxP's contextualiser (lib/objectives/lixp-context.ts), the paper's path,
 * forward and backward, included by addon.c (uses row_sum and
 * lab_softmax_rows of rowops.h, row_major_sgemm of matmul.h).
 *
 * Why: op by op it is an l2 normalisation (square, sum, add, rsqrt, mul), a
 * product, a scale, a mask add, a softmax and a product forward, and about
 * three times as many kernels backward, each a kernel call and a tape entry,
 * on [B, B] and [B, D] tensors small enough that the calls cost more than the
 * arithmetic. Here each way is one call; the four products go to the sgemm.
 *
 * Memory rows: the batch x [B, D] and then S stale rows (no gradient), M = B + S.
 *   k_r = x_r / sqrt(Σ x_r² + 1e-12)            (queries: the first B rows)
 *   A = softmax_j(scale · k_i·k_j + mask_ij)    (mask: −1e9 where hidden)
 *   out = A · memory
 * Backward, from d_out [B, D] and dA [B, M]:
 *   G = dA + d_out memoryᵀ,  dL = A ⊙ (G − Σ_j G ⊙ A),
 *   dk = scale (dL k + dLᵀ k_q) (rows < B),  d scale = Σ_i k_i · (dL k)_i,
 *   dx = Aᵀ d_out + rn (dk − k (k·dk)) with rn = 1/sqrt(Σ x² + 1e-12).
 * Float32 throughout, sums in another order than TF.js's, so results agree
 * with the op-by-op version to the last bits, not bit for bit.
 */
#include <stdint.h>
#include <string.h>

/* Logit added where attention is forbidden (lixp-context.ts MASKED). */
#define LIXP_MASKED -1e9f

typedef struct {
  int64_t B, S, D;
  int mask_self, separate;
  int64_t block; /* 0: the whole batch */
  float scale, fill; /* stale rows at index >= fill are still empty */
} Lixp;

/*
 * Adds the mask to row i of the logits [M]: −1e9 on its own entry (mask_self),
 * its own half (separate), outside its block, and on the empty stale rows.
 * Bounds per row, no division per entry.
 */
static void lixp_mask_row(const Lixp *a, int64_t i, float *row) {
  int64_t B = a->B, half = (B + 1) / 2, block = a->block > 0 ? a->block : B;
  int64_t lo = i / block * block, hi = lo + block;
  int64_t h_lo = i < half ? 0 : half, h_hi = i < half ? half : B; /* own half */
  for (int64_t j = 0; j < B; j++) {
    int hidden = j < lo || j >= hi || (a->separate && j >= h_lo && j < h_hi) || (a->mask_self && j == i);
    if (hidden) row[j] = row[j] + LIXP_MASKED;
  }
  for (int64_t j = 0; j < a->S; j++) {
    if ((float)j >= a->fill) row[B + j] = row[B + j] + LIXP_MASKED;
  }
}

/* k = rows of mem [M, D] to unit length (l2normalize's float steps), rn = 1/norm; sq: D floats. */
static void lixp_normalise(const float *mem, float *k, float *rn, int64_t M, int64_t D, float *sq) {
  for (int64_t r = 0; r < M; r++) {
    const float *xr = mem + r * D;
    for (int64_t j = 0; j < D; j++) sq[j] = xr[j] * xr[j];
    float n = 1.0f / sqrtf(row_sum(sq, D) + 1e-12f);
    rn[r] = n;
    for (int64_t j = 0; j < D; j++) k[r * D + j] = xr[j] * n;
  }
}

/*
 * Forward. x [B, D], stale [S, D] (NULL when S = 0); writes out [B, D], attn [B, M],
 * k [M, D], rn [M]. scratch: M·D + D floats (the memory rows, contiguous).
 */
static void lab_lixp_context(const float *x, const float *stale, float *out, float *attn, float *k, float *rn,
                             const Lixp *a, float *scratch) {
  int64_t B = a->B, M = a->B + a->S, D = a->D;
  float *mem = scratch, *sq = scratch + M * D;
  memcpy(mem, x, (size_t)(B * D) * sizeof(float));
  if (a->S > 0) memcpy(mem + B * D, stale, (size_t)(a->S * D) * sizeof(float));
  lixp_normalise(mem, k, rn, M, D, sq);
  row_major_sgemm(0, 1, B, M, D, k, D, k, D, 0.0f, attn); /* k_q kᵀ */
  for (int64_t i = 0; i < B; i++) {
    float *ar = attn + i * M;
    for (int64_t j = 0; j < M; j++) ar[j] = ar[j] * a->scale;
    lixp_mask_row(a, i, ar);
  }
  lab_softmax_rows(attn, attn, B, M);
  row_major_sgemm(0, 0, B, D, M, attn, M, mem, D, 0.0f, out);
}

/* Floats of scratch the forward and the backward need. */
static int64_t lixp_scratch(const Lixp *a) {
  int64_t M = a->B + a->S;
  return M * a->D + a->D + a->B * M + 2 * M * a->D;
}

/*
 * Backward. d_out [B, D], d_attn [B, M], x, stale, attn, k, rn from the forward;
 * writes dx [B, D] and d_scale [1] (the stale rows get no gradient).
 */
static void lab_lixp_context_grad(const float *d_out, const float *d_attn, const float *x, const float *stale,
                                  const float *attn, const float *k, const float *rn, float *dx, float *d_scale,
                                  const Lixp *a, float *scratch) {
  int64_t B = a->B, M = a->B + a->S, D = a->D;
  float *mem = scratch, *g = scratch + M * D + D, *gk = g + B * M, *dk = gk + M * D;
  memcpy(mem, x, (size_t)(B * D) * sizeof(float));
  if (a->S > 0) memcpy(mem + B * D, stale, (size_t)(a->S * D) * sizeof(float));
  /* G = dA + d_out memᵀ, then dL = A ⊙ (G − Σ_j G A) in place */
  memcpy(g, d_attn, (size_t)(B * M) * sizeof(float));
  row_major_sgemm(0, 1, B, M, D, d_out, D, mem, D, 1.0f, g);
  for (int64_t i = 0; i < B; i++) {
    float *gr = g + i * M;
    const float *ar = attn + i * M;
    float dot = row_dot(gr, ar, M);
    for (int64_t j = 0; j < M; j++) gr[j] = ar[j] * (gr[j] - dot);
  }
  /* gk = dL k [B, D] (query side), dk = dLᵀ k_q [M, D] (key side) */
  row_major_sgemm(0, 0, B, D, M, g, M, k, D, 0.0f, gk);
  row_major_sgemm(1, 0, M, D, B, g, M, k, D, 0.0f, dk);
  float ds = 0.0f;
  for (int64_t i = 0; i < B; i++) ds += row_dot(k + i * D, gk + i * D, D);
  *d_scale = ds;
  /* dx = Aᵀ d_out, plus the normalisation's backward of scale (gk + dk) on the batch rows */
  row_major_sgemm(1, 0, B, D, B, attn, M, d_out, D, 0.0f, dx);
  for (int64_t r = 0; r < B; r++) {
    const float *kr = k + r * D;
    float *dkr = dk + r * D, *gr = gk + r * D;
    for (int64_t j = 0; j < D; j++) dkr[j] = (gr[j] + dkr[j]) * a->scale;
    float proj = row_dot(kr, dkr, D);
    for (int64_t j = 0; j < D; j++) dx[r * D + j] += rn[r] * (dkr[j] - kr[j] * proj);
  }
}
