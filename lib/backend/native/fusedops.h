/*
 * The lab's fused kernels for the TF.js wasm backend (AdamW; quick GELU and
 * layer norm, forward and backward), included by addon.c.
 *
 * Why: AdamW as TF.js ops is ~20 kernel calls per parameter (plus the norms),
 * ~1100 calls in a lab-preset step, each paying the engine's fixed cost. This
 * is the same float32 arithmetic in the same order (lib/optim.ts), one call
 * per parameter. Built with -ffp-contract=off so no FMA changes the bits.
 */
#include <math.h>
#include <stdint.h>

typedef struct {
  float lr, beta1, one_minus_beta1, beta2, one_minus_beta2, eps, wd, bc1, bc2;
} AdamW;

/*
 * p' = p - lr·(m̂ / (sqrt(v̂) + eps) + wd·p), m' = β1 m + (1-β1) g, v' = β2 v + (1-β2) g²,
 * with g = grad·scale, m̂ = m'/bc1, v̂ = v'/bc2. stats[0] = Σ step², stats[1] = Σ p'².
 */
static void lab_adamw(const float *p, const float *grad, const float *m, const float *v, float scale,
                      float *p_out, float *m_out, float *v_out, float *stats, int64_t n, const AdamW *a) {
  double step_sq = 0.0, param_sq = 0.0;
  for (int64_t i = 0; i < n; i++) {
    float g = grad[i] * scale;
    float mi = m[i] * a->beta1 + g * a->one_minus_beta1;
    float vi = v[i] * a->beta2 + (g * g) * a->one_minus_beta2;
    float u = (mi / a->bc1) / (sqrtf(vi / a->bc2) + a->eps);
    if (a->wd != 0.0f) u = u + p[i] * a->wd;
    float step = u * a->lr;
    float pi = p[i] - step;
    m_out[i] = mi;
    v_out[i] = vi;
    p_out[i] = pi;
    step_sq += (double)step * step;
    param_sq += (double)pi * pi;
  }
  stats[0] = (float)step_sq;
  stats[1] = (float)param_sq;
}

/* Σ x² as the stock wasm Square then Sum give it: float32 squares, summed in order. */
static float lab_sumsq_seq(const float *x, int64_t n) {
  float s = 0.0f;
  for (int64_t i = 0; i < n; i++) {
    float q = x[i] * x[i];
    s += q;
  }
  return s;
}

/* One parameter of a multi-tensor AdamW call: float offsets into the heap, its size and decay. */
typedef struct {
  int64_t n, p, g, m, v, p_out, m_out, v_out;
  float wd;
} AdamWSlot;

/*
 * Every parameter's AdamW update in one call, with the global-norm clip, in
 * the float32 steps lib/train/optim.ts takes op by op, so the bits equal the
 * per-parameter path's: ‖g‖ = sqrt(Σ_i Σ g_i²) (sums in order, as stock
 * Square/Sum/AddN), scale = min(1, clip / (‖g‖ + 1e-6)) (1 when clip <= 0),
 * lab_adamw per parameter, then the stats rows [Σ step², Σ p'²] of the updated
 * parameters and [0, Σ p²] of the `rest` ones summed in double (as the native
 * leading-axis Sum). norms = [‖g‖, sqrt(Σ p'²), sqrt(Σ step²)]. Parameters are
 * split over threads; each one's sums are its own and are added up in order
 * afterwards, so the bits do not depend on the thread count. `tmp` holds
 * 3·count + n_rest floats of scratch.
 */
static void lab_adamw_multi(float *d, const AdamWSlot *s, int64_t count, const AdamWSlot *rest, int64_t n_rest,
                            float clip, AdamW a, float *norms, float *tmp) {
  float *gsq = tmp, *stats = tmp + count, *rsq = tmp + 3 * count; /* [count], [count][2], [n_rest] */
  int64_t work = 0;
  for (int64_t i = 0; i < count; i++) work += 7 * s[i].n;
  int par = lab_par(work);
  float scale = 1.0f, gnorm = 0.0f;
#pragma omp parallel num_threads(par) if (par > 1)
  {
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < count; i++) gsq[i] = lab_sumsq_seq(d + s[i].g, s[i].n);
#pragma omp single
    {
      float total = 0.0f;
      for (int64_t i = 0; i < count; i++) total += gsq[i];
      gnorm = sqrtf(total);
      if (clip > 0.0f) {
        float q = clip / (gnorm + 1e-6f);
        scale = q < 1.0f ? q : 1.0f;
      }
    } /* implied barrier: every thread sees the scale */
#pragma omp for schedule(dynamic, 1) nowait
    for (int64_t i = 0; i < count; i++) {
      AdamW ai = a;
      ai.wd = s[i].wd;
      lab_adamw(d + s[i].p, d + s[i].g, d + s[i].m, d + s[i].v, scale, d + s[i].p_out, d + s[i].m_out,
                d + s[i].v_out, stats + 2 * i, s[i].n, &ai);
    }
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < n_rest; i++) rsq[i] = lab_sumsq_seq(d + rest[i].p, rest[i].n);
  }
  double step_sq = 0.0, param_sq = 0.0;
  for (int64_t i = 0; i < count; i++) {
    step_sq += stats[2 * i];
    param_sq += stats[2 * i + 1];
  }
  for (int64_t i = 0; i < n_rest; i++) param_sq += rsq[i];
  norms[0] = gnorm;
  norms[1] = sqrtf((float)param_sq);
  norms[2] = sqrtf((float)step_sq);
}

/*
 * Quick GELU and layer norm, forward and backward, each one pass instead of
 * 3-12 TF.js kernels (lib/ops.ts has the maths and the composite versions).
 * Quick GELU repeats the composite's float32 steps exactly (same bits with the
 * native Sigmoid); layer norm sums rows in float lanes and columns (dγ, dβ) in double.
 */
#define QUICK_GELU_A 1.702f

/* As in rowops.h: lets gcc vectorise lab_expf's clamps (IEEE results unchanged). */
#pragma GCC push_options
#pragma GCC optimize("no-trapping-math")

/* y = x · σ(a x) */
static void lab_quick_gelu(const float *x, float *y, int64_t n) {
  int par = lab_par(2 * n);
#pragma omp parallel for schedule(static) num_threads(par) if (par > 1)
  for (int64_t i = 0; i < n; i++) {
    float s = 1.0f / (1.0f + lab_expf(-(x[i] * QUICK_GELU_A)));
    y[i] = x[i] * s;
  }
}

/* dx = dy · (σ(a x) + (a x) σ(a x) (1 − σ(a x))) */
static void lab_quick_gelu_grad(const float *dy, const float *x, float *dx, int64_t n) {
  int par = lab_par(3 * n);
#pragma omp parallel for schedule(static) num_threads(par) if (par > 1)
  for (int64_t i = 0; i < n; i++) {
    float ax = x[i] * QUICK_GELU_A;
    float s = 1.0f / (1.0f + lab_expf(-ax));
    float ds = (ax * s) * (1.0f - s);
    dx[i] = dy[i] * (s + ds);
  }
}

/* Σ_j x_j y_j with LANES independent float accumulators (vectorises, as row_sum in rowops.h). */
static float row_dot(const float *x, const float *y, int64_t n) {
  float acc[LANES] = {0};
  int64_t j = 0;
  for (; j + LANES <= n; j += LANES) {
    for (int l = 0; l < LANES; l++) acc[l] += x[j + l] * y[j + l];
  }
  float s = 0.0f;
  for (; j < n; j++) s += x[j] * y[j];
  for (int l = 0; l < LANES; l++) s += acc[l];
  return s;
}

/*
 * Per row of x [rows, cols]: x̂ = (x − μ) / sqrt(σ² + eps), y = x̂ γ + β; also
 * writes x̂ and 1/sqrt(σ² + eps). Two-pass variance (centred first), row sums
 * in float lanes.
 */
static void lab_layer_norm(const float *x, const float *g, const float *b, float *y, float *xhat, float *rstd,
                           int64_t rows, int64_t cols, float eps) {
  int par = lab_par(3 * rows * cols);
#pragma omp parallel for schedule(static) num_threads(par) if (par > 1)
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * cols;
    float *hr = xhat + r * cols, *yr = y + r * cols;
    float mean = row_sum(xr, cols) / (float)cols;
    for (int64_t j = 0; j < cols; j++) hr[j] = xr[j] - mean;
    float var = row_dot(hr, hr, cols) / (float)cols;
    float rs = 1.0f / sqrtf(var + eps);
    rstd[r] = rs;
    for (int64_t j = 0; j < cols; j++) {
      hr[j] *= rs;
      yr[j] = hr[j] * g[j] + b[j];
    }
  }
}

/* The rows [r0, r1) of dx = rstd · (gy − mean(gy) − x̂ · mean(gy · x̂)), gy = dy · γ; with acc: also Σ dy · x̂, Σ dy. */
static void ln_grad_rows(const float *dy, const float *xhat, const float *rstd, const float *g, float *dx,
                         int64_t r0, int64_t r1, int64_t cols, double *ag, double *ab) {
  for (int64_t r = r0; r < r1; r++) {
    const float *dyr = dy + r * cols, *hr = xhat + r * cols;
    float *dxr = dx + r * cols;
    for (int64_t j = 0; j < cols; j++) {
      dxr[j] = dyr[j] * g[j]; /* gy, kept in dx until the row's means are known */
      if (ag != NULL) {
        ag[j] += (double)(dyr[j] * hr[j]);
        ab[j] += (double)dyr[j];
      }
    }
    float mean_g = row_sum(dxr, cols) / (float)cols;
    float mean_gx = row_dot(dxr, hr, cols) / (float)cols;
    for (int64_t j = 0; j < cols; j++) dxr[j] = rstd[r] * ((dxr[j] - mean_g) - hr[j] * mean_gx);
  }
}

/*
 * dx as above; dγ = Σ_rows dy · x̂, dβ = Σ_rows dy in double, each column in
 * row order. One thread: one pass, sums in `acc` (2·cols doubles). More: rows
 * split over threads for dx, then blocks of columns for the sums (same bits).
 */
static void lab_layer_norm_grad(const float *dy, const float *xhat, const float *rstd, const float *g, float *dx,
                                float *dg, float *db, int64_t rows, int64_t cols, double *acc) {
  int par = lab_par(3 * rows * cols);
  if (par == 1) {
    double *ag = acc, *ab = acc + cols;
    for (int64_t j = 0; j < 2 * cols; j++) acc[j] = 0.0;
    ln_grad_rows(dy, xhat, rstd, g, dx, 0, rows, cols, ag, ab);
    for (int64_t j = 0; j < cols; j++) {
      dg[j] = (float)ag[j];
      db[j] = (float)ab[j];
    }
    return;
  }
  int64_t cw = col_block_width(cols, par);
#pragma omp parallel num_threads(par)
  {
#pragma omp for schedule(static) nowait
    for (int64_t r = 0; r < rows; r++) ln_grad_rows(dy, xhat, rstd, g, dx, r, r + 1, cols, NULL, NULL);
#pragma omp for schedule(static)
    for (int64_t j0 = 0; j0 < cols; j0 += cw) {
      int64_t w = cols - j0 < cw ? cols - j0 : cw;
      double sg[COL_BLOCK] = {0}, sb[COL_BLOCK] = {0}; /* this thread's own: no cache line shared with another */
      for (int64_t r = 0; r < rows; r++) {
        const float *dyr = dy + r * cols + j0, *hr = xhat + r * cols + j0;
        for (int64_t j = 0; j < w; j++) {
          sg[j] += (double)(dyr[j] * hr[j]);
          sb[j] += (double)dyr[j];
        }
      }
      for (int64_t j = 0; j < w; j++) {
        dg[j0 + j] = (float)sg[j];
        db[j0 + j] = (float)sb[j];
      }
    }
  }
}

#pragma GCC pop_options
