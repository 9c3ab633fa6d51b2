/*
 * Elementwise and row kernels for the TF.js wasm backend, included by addon.c
 * (the build compiles that one file). After the matmuls went to OpenBLAS, the
 * stock wasm Sigmoid (scalar expf), Softmax and last-axis Sum were the largest
 * kernels of a training step (bench/README.md has the profile).
 *
 * Loops are written so gcc -O3 vectorises them: exp is a Cephes-style
 * polynomial with the exponent built from bits (no libm call, relative error
 * < 2e-7 on [-87, 88]), and row sums keep 8 independent float lanes.
 * Every kernel gets float offsets into the heap, bounds-checked by the caller.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

/* Lets gcc turn the clamps and compares into vector min/max/blend (IEEE results unchanged). */
#pragma GCC push_options
#pragma GCC optimize("no-trapping-math")

#define EXP_LO -87.3f
#define EXP_HI 88.3f
#define LANES 8
#define COL_BLOCK 64 /* most columns one thread's block of column sums holds */

/* Columns per block when column sums split over `par` threads: cols / par in whole cache lines, at most COL_BLOCK. */
static inline int64_t col_block_width(int64_t cols, int par) {
  int64_t cw = ((cols + par - 1) / par + 15) / 16 * 16;
  return cw < COL_BLOCK ? cw : COL_BLOCK;
}

/*
 * exp(x): 2^n · e^r with |r| <= ln2 / 2 for x in [EXP_LO, EXP_HI], +inf above
 * and exactly 0 below, as expf. The ends matter: a masked attention logit
 * (−1e9) must get a zero weight and σ(−1e9) must be 0, not the 1e-38 and 4e-39
 * a clamped exp gives, whose products downstream are denormals (each ~100x
 * slower to compute on x86).
 */
static inline float lab_expf(float x) {
  float ends = x < EXP_LO ? 0.0f : (x > EXP_HI ? INFINITY : 1.0f);
  x = x < EXP_LO ? EXP_LO : (x > EXP_HI ? EXP_HI : x);
  float n = floorf(x * 1.44269504088896341f + 0.5f);
  float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t bits = ((int32_t)n + 127) << 23;
  float scale;
  memcpy(&scale, &bits, sizeof scale);
  return p * scale * ends;
}

/* out[i] = 1 / (1 + exp(-x[i])); out may alias x. */
static void lab_sigmoid(const float *x, float *out, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = 1.0f / (1.0f + lab_expf(-x[i]));
}

/* out[i] = a[i] + b[i] (the stock Add of two same-shape tensors, split over threads: same bits). */
static void lab_add(const float *a, const float *b, float *out, int64_t n) {
  int par = lab_par(3 * n);
#pragma omp parallel for schedule(static) num_threads(par) if (par > 1)
  for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

/* Sum of one row with LANES independent accumulators (vectorises without -ffast-math). */
static float row_sum(const float *x, int64_t n) {
  float acc[LANES] = {0};
  int64_t j = 0;
  for (; j + LANES <= n; j += LANES) {
    for (int l = 0; l < LANES; l++) acc[l] += x[j + l];
  }
  float s = 0.0f;
  for (; j < n; j++) s += x[j];
  for (int l = 0; l < LANES; l++) s += acc[l];
  return s;
}

static float row_max(const float *x, int64_t n) {
  float acc[LANES];
  for (int l = 0; l < LANES; l++) acc[l] = -INFINITY;
  int64_t j = 0;
  for (; j + LANES <= n; j += LANES) {
    for (int l = 0; l < LANES; l++) acc[l] = x[j + l] > acc[l] ? x[j + l] : acc[l];
  }
  float m = -INFINITY;
  for (; j < n; j++) m = x[j] > m ? x[j] : m;
  for (int l = 0; l < LANES; l++) m = acc[l] > m ? acc[l] : m;
  return m;
}

/* Softmax of each row of a [rows, cols] matrix; out may alias x. */
static void lab_softmax_rows(const float *x, float *out, int64_t rows, int64_t cols) {
  for (int64_t i = 0; i < rows; i++) {
    const float *xr = x + i * cols;
    float *yr = out + i * cols;
    float m = row_max(xr, cols);
    if (m == -INFINITY) m = 0.0f; /* an all -inf row: uniform instead of NaN */
    /* exp and its sum in one pass, LANES float accumulators */
    float acc[LANES] = {0};
    int64_t j = 0;
    for (; j + LANES <= cols; j += LANES) {
      for (int l = 0; l < LANES; l++) {
        float e = lab_expf(xr[j + l] - m);
        yr[j + l] = e;
        acc[l] += e;
      }
    }
    float sum = 0.0f;
    for (; j < cols; j++) {
      yr[j] = lab_expf(xr[j] - m);
      sum += yr[j];
    }
    for (int l = 0; l < LANES; l++) sum += acc[l];
    float inv = 1.0f / sum;
    for (int64_t j = 0; j < cols; j++) yr[j] *= inv;
  }
}

/*
 * out[j] = sum_i x[i, j] of a [rows, cols] matrix (a reduction over leading
 * axes: bias gradients; stock wasm transposes the whole tensor first).
 * Accumulates in `acc`, cols doubles of zeroed scratch, one row at a time so
 * the inner loop streams memory and vectorises.
 */
static void lab_sum_rows(const float *x, float *out, int64_t rows, int64_t cols, double *acc) {
  int par = lab_par(rows * cols);
  if (par == 1) {
    const float *src = x;
    for (int64_t i = 0; i < rows; i++, src += cols) {
      for (int64_t j = 0; j < cols; j++) acc[j] += src[j];
    }
    for (int64_t j = 0; j < cols; j++) out[j] = (float)acc[j];
    return;
  }
  /* Blocks of columns split over threads, each column still summed in row order (same bits). */
  int64_t cw = col_block_width(cols, par);
#pragma omp parallel for schedule(static) num_threads(par)
  for (int64_t j0 = 0; j0 < cols; j0 += cw) {
    int64_t w = cols - j0 < cw ? cols - j0 : cw;
    double s[COL_BLOCK] = {0}; /* this thread's own: no cache line shared with another */
    for (int64_t i = 0; i < rows; i++) {
      const float *src = x + i * cols + j0;
      for (int64_t j = 0; j < w; j++) s[j] += src[j];
    }
    for (int64_t j = 0; j < w; j++) out[j0 + j] = (float)s[j];
  }
}

/* out[i] = sum_j x[i, j] of a [rows, cols] matrix (a reduction over trailing axes). */
static void lab_sum_cols(const float *x, float *out, int64_t rows, int64_t cols) {
  for (int64_t i = 0; i < rows; i++) out[i] = row_sum(x + i * cols, cols);
}


/*
 * Cephes logf's polynomial P(f), with log(1 + f) ≈ f − f²/2 + f³·P(f) for f in
 * [√½ − 1, √2 − 1) (Horner, highest degree first). A macro, not a function: it
 * expands in the caller's file and so compiles under that file's float options
 * (llipops.h contracts to FMAs, lossops.h does not); a shared inline function
 * changed those bits and made a Llip step ~35% slower (measured, then reverted).
 */
#define LAB_LOG_POLY(f)                                                                            \
  ((((((((7.0376836292e-2f * (f) - 1.1514610310e-1f) * (f) + 1.1676998740e-1f) * (f) -             \
        1.2420140846e-1f) * (f) + 1.4249322787e-1f) * (f) - 1.6668057665e-1f) * (f) +              \
     2.0000714765e-1f) * (f) - 2.4999993993e-1f) * (f) + 3.3333331174e-1f)

#pragma GCC pop_options
