/*
 * A dense layer y = x·w + b, forward and backward, one call each way;
 * included by addon.c after matmul.h and rowops.h.
 *
 * Why: as TF.js ops a dense layer is MatMul + Add forward and two MatMuls, a
 * Sum and broadcast/Reshape bookkeeping backward, each paying the engine's
 * fixed cost (a `lab` step has ~30 dense layers). The products go through
 * run_gemm, the routine behind the native BatchMatMul, with the transposes
 * TF.js's MatMul gradient asks for, and db through lab_sum_rows, the native
 * leading-axis Sum, so every output has the bits of the op-by-op path.
 * Offsets are in floats into the heap, bounds-checked by the caller.
 */
#include <stdint.h>

/* c[m, n] = op(a) op(b) through run_gemm, as the BatchMatMul kernel calls it (batch 1, no bias). */
static void dense_gemm(float *heap, int ta, int tb, int64_t m, int64_t n, int64_t k, int64_t a, int64_t b,
                       int64_t c) {
  if (m == 0 || n == 0) return;
  Gemm g = {ta, tb, 1, m, n, k, a, 0, b, 0, c, -1, 0, 0, 0, 0};
  run_gemm(heap, &g);
}

/* y[N, Dout] = x[N, Din] · w[Din, Dout], then + b[Dout] row by row (as the Add after the MatMul); b < 0: none. */
static void lab_dense(float *heap, int64_t x, int64_t w, int64_t b, int64_t y, int64_t n, int64_t din,
                      int64_t dout) {
  dense_gemm(heap, 0, 0, n, dout, din, x, w, y);
  if (b < 0) return;
  const float *bias = heap + b;
  int par = lab_par(2 * n * dout);
#pragma omp parallel for schedule(static) num_threads(par) if (par > 1)
  for (int64_t i = 0; i < n; i++) {
    float *row = heap + y + i * dout;
    for (int64_t j = 0; j < dout; j++) row[j] = row[j] + bias[j];
  }
}

/*
 * dx[N, Din] = dy · wᵀ, dw[Din, Dout] = xᵀ · dy (BatchMatMul_grad's two
 * products), db[Dout] = Σ_rows dy (b's Add gradient: Sum over axis 0) unless
 * db < 0; acc: Dout doubles of zeroed scratch for that sum.
 */
static void lab_dense_grad(float *heap, int64_t dy, int64_t x, int64_t w, int64_t dx, int64_t dw, int64_t db,
                           int64_t n, int64_t din, int64_t dout, double *acc) {
  dense_gemm(heap, 0, 1, n, din, dout, dy, w, dx);
  dense_gemm(heap, 1, 0, din, dout, n, x, dy, dw);
  if (db >= 0 && dout > 0) lab_sum_rows(heap + dy, heap + db, n, dout, acc);
}
