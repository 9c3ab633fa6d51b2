/*
 * The linear probe's fits (lib/eval/probe.ts `fitMany`), every step in one call;
 * included by addon.c after matmul.h, rowops.h and denseops.h.
 *
 * Why: a few-shot suite fits the probe for every task, shot count and episode
 * (525 fits in a notebook's suite), each 300 full-batch steps of about ten tiny
 * TF.js ops, so the suite spent 94% of its time in per-op overhead. This runs
 * the same step in C: the products through dense_gemm (run_gemm, as the native
 * BatchMatMul calls it), the softmax through lab_softmax_rows (the native
 * Softmax), and the elementwise updates as single float operations in the op
 * path's order, without contraction (the addon is built with -ffp-contract=off),
 * so the weights are the op path's bits.
 *
 * One step, J fits of C classes side by side (JC = J·C columns):
 *   p = softmax over each fit's C columns of x·w         x [S, E], w [E, JC]
 *   g = (p − y) ⊙ wt                                    y [S, C] per fit, wt [S, J] per fit
 *   grad = xᵀ·g + w ⊙ lam                               lam [JC]
 *   buf = buf·μ + grad,  w = w − buf·lr                 heavy ball from w = buf = 0
 * Offsets are in floats into `h`, bounds-checked by the caller; z, g and grad
 * are scratch ([S, JC], [S, JC], [E, JC]).
 */
#include <stdint.h>
#include <string.h>

static void lab_probe_fit(float *h, int64_t x, int64_t y, int64_t wt, int64_t lam, int64_t w, int64_t buf,
                          int64_t z, int64_t g, int64_t grad, int64_t S, int64_t E, int64_t C, int64_t J,
                          int64_t steps, float lr, float mu) {
  const int64_t JC = J * C;
  memset(h + w, 0, (size_t)(E * JC) * sizeof(float));
  memset(h + buf, 0, (size_t)(E * JC) * sizeof(float));
  for (int64_t t = 0; t < steps; t++) {
    dense_gemm(h, 0, 0, S, JC, E, x, w, z);
    lab_softmax_rows(h + z, h + z, S * J, C);
    for (int64_t i = 0; i < S; i++)
      for (int64_t j = 0; j < J; j++) {
        const float *p = h + z + i * JC + j * C, *yi = h + y + i * C;
        const float wij = h[wt + i * J + j];
        float *gi = h + g + i * JC + j * C;
        for (int64_t c = 0; c < C; c++) gi[c] = (p[c] - yi[c]) * wij;
      }
    dense_gemm(h, 1, 0, E, JC, S, x, g, grad);
    const float *l = h + lam;
    for (int64_t e = 0; e < E; e++) {
      float *we = h + w + e * JC, *be = h + buf + e * JC;
      const float *ge = h + grad + e * JC;
      for (int64_t q = 0; q < JC; q++) {
        const float d = ge[q] + we[q] * l[q];
        const float b = be[q] * mu + d;
        be[q] = b;
        we[q] = we[q] - b * lr;
      }
    }
  }
}
