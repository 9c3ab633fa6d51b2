/*
 * Fused optimizer kernel for the TF.js wasm backend, included by blas.c.
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
