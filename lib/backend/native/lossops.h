/*
 * The SigLIP pair loss and row L2 normalisation, forward and backward, one
 * call each way; included by addon.c after rowops.h (lab_expf, row_sum, LANES).
 *
 * Why: as TF.js ops the loss on the [B, B] cosine matrix is ~10 elementwise
 * kernels forward (Mul, Add, Abs, Neg, Exp, Log1p, Minimum, Sub, Sum, Div)
 * and as many again backward, each a pass over B² floats with the engine's
 * fixed cost, and l2normalize's autodiff gradient ~15 small kernels per call.
 *
 * Pair loss (lib/objectives/siglip.ts sigmoidPairLoss): with t = exp(logScale),
 *   x_ij = z_ij (t·cos_ij + b), z = +1 on the diagonal, −1 elsewhere,
 *   L = −(1/B) Σ_ij log σ(x_ij),  −log σ(x) = log1p(exp(−|x|)) − min(x, 0),
 *   ∂L/∂cos_ij = t·g_ij, ∂L/∂b = Σ g_ij, ∂L/∂logScale = t·Σ g_ij cos_ij,
 *   g_ij = −(1/B) z_ij σ(−x_ij),
 * elementwise in float32, sums in double: within ~1e-7 relative of a float64
 * evaluation of the same float32 logits (test/loss-fused.test.ts). Not the op
 * path's bits, and closer than it: stock wasm Log1p is log(1 + u) in float32
 * (0 below u ~ 6e-8) and its Sum adds the B² terms in float32, where the
 * negatives' ~1e-5 terms round against the diagonal's ~10s (the op path's
 * loss is off by up to ~4e-4 relative at SigLIP's init, B = 256). The
 * gradients match the op path to float rounding (it has no log1p).
 *
 * L2 normalisation (lib/model/ops.ts l2normalize), per row of x [N, D]:
 *   r = 1 / sqrt(Σ x² + 1e-12), y = x·r; backward dx = r·(dy − y·⟨dy, y⟩)
 *   (∂y_i/∂x_k = r(δ_ik − y_i y_k)). The forward is the op path's float32
 * arithmetic in its order (Square, the native trailing-axis Sum's lanes, Add,
 * Rsqrt, Mul), so the same bits; the backward is not autodiff's.
 * Offsets are in floats into the heap, bounds-checked by the caller.
 */
#include <math.h>
#include <stdint.h>

#pragma GCC push_options
#pragma GCC optimize("no-trapping-math")

/*
 * log1p(u) for u in [0, 1] without a libm call (so loops vectorise): w = 1 + u
 * split as 2^e·m, m in [√½, √2), Cephes logf's polynomial (LAB_LOG_POLY) on f = m − 1 (exact),
 * plus c / w for the rounding error c of 1 + u (keeps tiny u exact). Error
 * ~1 ulp of the result.
 */
static inline float lab_log1p_unit(float u) {
  float w = 1.0f + u;
  float c = u - (w - 1.0f); /* w − 1 is exact (Sterbenz) */
  int hi = w > 1.41421356f;
  float e = hi ? 1.0f : 0.0f;
  float f = (hi ? 0.5f * w : w) - 1.0f; /* exact */
  float z = f * f;
  float y = LAB_LOG_POLY(f) * f * z; /* rowops.h */
  y = y + -2.12194440e-4f * e;
  y = y + -0.5f * z;
  float r = f + y;
  r = r + 0.693359375f * e;
  return r + c / w;
}

/* −log σ(x) = log1p(exp(−|x|)) − min(x, 0), >= 0 and finite for finite x. */
static inline float pair_nll(float x) {
  float ax = fabsf(x);
  return lab_log1p_unit(lab_expf(-ax)) - (x < 0.0f ? x : 0.0f);
}

/* σ(−x) from e = exp(−|x|) without overflow: e / (1 + e) for x >= 0, 1 / (1 + e) below. */
static inline float sigmoid_neg(float x) {
  float e = lab_expf(-fabsf(x));
  return (x >= 0.0f ? e : 1.0f) / (1.0f + e);
}

/* t = exp(logScale) as a float (one scalar: libm's double exp, rounded). */
static inline float pair_scale(float log_scale) { return (float)exp((double)log_scale); }

/* Σ_j −log σ(−(t·c_j + b)) over a span of n negatives (z = −1), in LANES double accumulators. */
static double pair_nll_neg(const float *c, int64_t n, float t, float b) {
  double acc[LANES] = {0};
  int64_t j = 0;
  for (; j + LANES <= n; j += LANES) {
    for (int l = 0; l < LANES; l++) acc[l] += (double)pair_nll(-(t * c[j + l] + b));
  }
  double s = 0.0;
  for (; j < n; j++) s += (double)pair_nll(-(t * c[j] + b));
  for (int l = 0; l < LANES; l++) s += acc[l];
  return s;
}

/*
 * loss[0] = −(1/B) Σ_ij log σ(z_ij (t·cos_ij + b)) of cos [B, B]: each row as
 * its negatives left and right of the diagonal, then its positive. (Adding
 * the diagonal as a negative and swapping it after would cancel away the
 * ~e^-50 terms of a saturated row next to a ~50.)
 */
static void lab_sigmoid_pair_loss(const float *cos, float log_scale, float bias, float *loss, int64_t B) {
  const float t = pair_scale(log_scale);
  double total = 0.0;
  for (int64_t i = 0; i < B; i++) {
    const float *c = cos + i * B;
    total += pair_nll_neg(c, i, t, bias) + pair_nll_neg(c + i + 1, B - i - 1, t, bias) +
             (double)pair_nll(t * c[i] + bias);
  }
  loss[0] = (float)(total / (double)B);
}

/*
 * Over a span of n negatives: dc_j = t·g_j with g_j = −k σ(t·c_j + b) (z = −1),
 * sums[0] += Σ g, sums[1] += Σ g·c (LANES double accumulators each).
 */
static void pair_grad_neg(const float *c, float *dc, int64_t n, float t, float b, float k, double *sums) {
  double ag[LANES] = {0}, agc[LANES] = {0};
  int64_t j = 0;
  for (; j + LANES <= n; j += LANES) {
    for (int l = 0; l < LANES; l++) {
      float g = -k * sigmoid_neg(-(t * c[j + l] + b));
      dc[j + l] = g * t;
      ag[l] += (double)g;
      agc[l] += (double)g * (double)c[j + l];
    }
  }
  double sg = 0.0, sgc = 0.0;
  for (; j < n; j++) {
    float g = -k * sigmoid_neg(-(t * c[j] + b));
    dc[j] = g * t;
    sg += (double)g;
    sgc += (double)g * (double)c[j];
  }
  for (int l = 0; l < LANES; l++) {
    sg += ag[l];
    sgc += agc[l];
  }
  sums[0] += sg;
  sums[1] += sgc;
}

/*
 * Its gradient scaled by dy: dcos [B, B] = t·g, dlog_scale[0] = t·Σ g·cos,
 * dbias[0] = Σ g, g_ij = k z_ij σ(−x_ij) with k = −dy/B (the file header);
 * each row as for the loss: negatives, then the positive.
 */
static void lab_sigmoid_pair_loss_grad(float dy, const float *cos, float log_scale, float bias, float *dcos,
                                       float *dlog_scale, float *dbias, int64_t B) {
  const float t = pair_scale(log_scale);
  const float k = (float)(-(double)dy / (double)B);
  double sums[2] = {0.0, 0.0}; /* Σ g, Σ g·cos */
  for (int64_t i = 0; i < B; i++) {
    const float *c = cos + i * B;
    float *dc = dcos + i * B;
    pair_grad_neg(c, dc, i, t, bias, k, sums);
    pair_grad_neg(c + i + 1, dc + i + 1, B - i - 1, t, bias, k, sums);
    const float g = k * sigmoid_neg(t * c[i] + bias); /* z = +1 */
    dc[i] = g * t;
    sums[0] += (double)g;
    sums[1] += (double)g * (double)c[i];
  }
  dlog_scale[0] = (float)((double)t * sums[1]);
  dbias[0] = (float)sums[0];
}

/* Σ x² of one row as Square then the native Sum (row_sum of rowops.h) give it: the same lanes and order. */
static float row_sumsq(const float *x, int64_t n) {
  float acc[LANES] = {0};
  int64_t j = 0;
  for (; j + LANES <= n; j += LANES) {
    for (int l = 0; l < LANES; l++) {
      float q = x[j + l] * x[j + l];
      acc[l] += q;
    }
  }
  float s = 0.0f;
  for (; j < n; j++) {
    float q = x[j] * x[j];
    s += q;
  }
  for (int l = 0; l < LANES; l++) s += acc[l];
  return s;
}

/* y = x·r, r = 1 / sqrt(Σ x² + 1e-12) per row of x [rows, cols]; r [rows]. */
static void lab_l2_normalize(const float *x, float *y, float *r, int64_t rows, int64_t cols) {
  for (int64_t i = 0; i < rows; i++) {
    const float *xr = x + i * cols;
    float *yr = y + i * cols;
    float v = row_sumsq(xr, cols) + 1e-12f;
    float ri = 1.0f / sqrtf(v);
    r[i] = ri;
    for (int64_t j = 0; j < cols; j++) yr[j] = xr[j] * ri;
  }
}

/* dx = r·(dy − y·⟨dy, y⟩) per row (the dot in double). */
static void lab_l2_normalize_grad(const float *dy, const float *y, const float *r, float *dx, int64_t rows,
                                  int64_t cols) {
  for (int64_t i = 0; i < rows; i++) {
    const float *g = dy + i * cols, *yr = y + i * cols;
    float *d = dx + i * cols;
    double acc[LANES] = {0};
    int64_t j = 0;
    for (; j + LANES <= cols; j += LANES) {
      for (int l = 0; l < LANES; l++) acc[l] += (double)g[j + l] * (double)yr[j + l];
    }
    double s = 0.0;
    for (; j < cols; j++) s += (double)g[j] * (double)yr[j];
    for (int l = 0; l < LANES; l++) s += acc[l];
    const float dot = (float)s, ri = r[i];
    for (int64_t j2 = 0; j2 < cols; j2++) d[j2] = ri * (g[j2] - yr[j2] * dot);
  }
}

#pragma GCC pop_options
