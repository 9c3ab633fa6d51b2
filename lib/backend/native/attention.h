/*
 * Fused multi-head self-attention for the TF.js wasm backend, forward and
 * backward, included by addon.c (uses lab_softmax_rows of rowops.h).
 *
 * Why: on the lab's models the attention is thousands of tiny products per
 * block (B·H matrices of T×T×dh, T and dh 16..64), and as TF.js ops it is a
 * SplitV, a scale, three head transposes, two batched matmuls (one library
 * call per head and image), a mask add, a softmax and the merging transpose
 * forward, about twice that backward, each a kernel call and a tape entry.
 * Here each way is one call that reads q, k, v straight from the qkv
 * projection [B·T, 3D] (columns q | k | v, head h at h·dh inside each) and
 * writes the merged heads [B·T, D], so no transpose is ever materialised.
 * Same maths as lib/model/ops.ts `multiHeadAttention`:
 *   s = (q·scale) kᵀ + mask,  p = softmax(s),  o = p v
 *   dv = pᵀ do,  dp = do vᵀ,  ds = p ⊙ (dp − Σ_j dp p),  dq = scale · ds k,  dk = dsᵀ (q·scale)
 * Every product is one register-tiled micro-kernel (4 rows × 16 columns,
 * fused multiply-adds allowed here) over per-head copies padded to 16 columns.
 * Float32 throughout; sums run in another order than the matmul library's, so
 * results agree with the op-by-op version to the last bits, not bit for bit.
 */
#include <stdint.h>
#include <string.h>

#pragma GCC push_options
#pragma GCC optimize("fp-contract=fast")

#define ATT_W 16 /* columns per micro-kernel: one AVX-512 vector (att_gemm8: 8) */

/* Shape of one call: qkv [B·T, 3D], D = H·dh. */
typedef struct {
  int64_t B, T, H, dh;
  float scale;
} Attn;

static inline int64_t att_pad(int64_t n) { return (n + ATT_W - 1) / ATT_W * ATT_W; }

/* Floats of scratch lab_attention / lab_attention_grad need per thread (whole cache lines: no sharing). */
static int64_t attn_scratch(const Attn *a) {
  int64_t tp = att_pad(a->T), dp = att_pad(a->dh);
  return att_pad(7 * a->T * dp + 2 * a->dh * tp + 2 * a->T * tp + ATT_W);
}

/* W floats as one vector (GCC vector extension: AVX-512 / AVX here, split into smaller ones elsewhere). */
typedef float att_vec16 __attribute__((vector_size(16 * sizeof(float))));
typedef float att_uvec16 __attribute__((vector_size(16 * sizeof(float)), aligned(sizeof(float))));
typedef float att_vec8 __attribute__((vector_size(8 * sizeof(float))));
typedef float att_uvec8 __attribute__((vector_size(8 * sizeof(float)), aligned(sizeof(float))));

/*
 * C[r, 0:ncols] = Σ_k A[r, k] Bm[k, 0:ncols] for r < rows, ncols a multiple of
 * the width W; A[r, k] = a[r·ars + k·aks] (any strides: A or Aᵀ), Bm rows ldb
 * apart, C rows ldc apart. Four rows at a time: four independent accumulators.
 */
#define ATT_GEMM(name, W, vec, uvec)                                                                      \
  static void name(int64_t rows, int64_t ncols, int64_t K, const float *restrict a, int64_t ars,          \
                   int64_t aks, const float *restrict bm, int64_t ldb, float *restrict c, int64_t ldc) { \
    int64_t r0 = 0;                                                                                       \
    for (; r0 + 4 <= rows; r0 += 4) {                                                                     \
      const float *ar = a + r0 * ars;                                                                     \
      for (int64_t n0 = 0; n0 < ncols; n0 += W) {                                                         \
        vec c0 = {0}, c1 = {0}, c2 = {0}, c3 = {0};                                                       \
        for (int64_t k = 0; k < K; k++) {                                                                 \
          vec bk = *(const uvec *)(bm + k * ldb + n0);                                                    \
          const float *ak = ar + k * aks;                                                                 \
          c0 += ak[0] * bk;                                                                               \
          c1 += ak[ars] * bk;                                                                             \
          c2 += ak[2 * ars] * bk;                                                                         \
          c3 += ak[3 * ars] * bk;                                                                         \
        }                                                                                                 \
        float *cr = c + r0 * ldc + n0;                                                                    \
        *(uvec *)cr = c0;                                                                                 \
        *(uvec *)(cr + ldc) = c1;                                                                         \
        *(uvec *)(cr + 2 * ldc) = c2;                                                                     \
        *(uvec *)(cr + 3 * ldc) = c3;                                                                     \
      }                                                                                                   \
    }                                                                                                     \
    for (; r0 < rows; r0++) {                                                                             \
      const float *ar = a + r0 * ars;                                                                     \
      for (int64_t n0 = 0; n0 < ncols; n0 += W) {                                                         \
        vec c0 = {0};                                                                                     \
        for (int64_t k = 0; k < K; k++) c0 += ar[k * aks] * *(const uvec *)(bm + k * ldb + n0);          \
        *(uvec *)(c + r0 * ldc + n0) = c0;                                                                \
      }                                                                                                   \
    }                                                                                                     \
  }

ATT_GEMM(att_gemm, 16, att_vec16, att_uvec16)
ATT_GEMM(att_gemm8, 8, att_vec8, att_uvec8)

/*
 * Softmax's backward in place, row by row: ds_i = p_i ⊙ (dp_i − Σ_j dp_ij p_ij),
 * with dp coming in ds (rows ldd apart) and p rows ldp apart (also Llip's mixing).
 */
static void att_softmax_grad_rows(const float *p, int64_t ldp, float *ds, int64_t ldd, int64_t rows,
                                  int64_t cols) {
  for (int64_t i = 0; i < rows; i++) {
    const float *pi = p + i * ldp;
    float *di = ds + i * ldd;
    float dot = 0.0f;
    for (int64_t j = 0; j < cols; j++) dot += di[j] * pi[j];
    for (int64_t j = 0; j < cols; j++) di[j] = pi[j] * (di[j] - dot);
  }
}

/* Copies head h of part `part` (0 q, 1 k, 2 v) of image b into dst [T, dp] (zero-padded), times `mul`. */
static void att_gather(const float *qkv, const Attn *a, int64_t b, int64_t h, int part, float mul, float *dst,
                       int64_t dp) {
  int64_t D = a->H * a->dh, ld = 3 * D;
  const float *src = qkv + b * a->T * ld + part * D + h * a->dh;
  for (int64_t i = 0; i < a->T; i++) {
    const float *s = src + i * ld;
    float *d = dst + i * dp;
    for (int64_t c = 0; c < a->dh; c++) d[c] = s[c] * mul;
    for (int64_t c = a->dh; c < dp; c++) d[c] = 0.0f;
  }
}

/* x [rows, cols of ldx] → xt [cols, tp] (columns ≥ rows zeroed). */
static void att_transpose(const float *x, int64_t ldx, float *xt, int64_t rows, int64_t cols, int64_t tp) {
  for (int64_t c = 0; c < cols; c++) {
    float *dst = xt + c * tp;
    for (int64_t i = 0; i < rows; i++) dst[i] = x[i * ldx + c];
    for (int64_t i = rows; i < tp; i++) dst[i] = 0.0f;
  }
}

/* Writes the first dh columns of x [T, dp] into column block `col` of y (rows ldy apart), times `mul`. */
static void att_scatter(const float *x, int64_t dp, int64_t T, int64_t dh, float mul, float *y, int64_t ldy) {
  for (int64_t i = 0; i < T; i++) {
    const float *s = x + i * dp;
    float *d = y + i * ldy;
    for (int64_t c = 0; c < dh; c++) d[c] = s[c] * mul;
  }
}

/*
 * out [B·T, D] (heads merged) and probs [B·H, T, T] from qkv [B·T, 3D] and an
 * optional additive mask [T, T] (NULL: none). `scratch` holds attn_scratch
 * floats per thread (lab_threads); (image, head) pairs are split over threads.
 */
static void lab_attention(const float *qkv, const float *mask, float *out, float *probs, const Attn *a,
                          float *scratch) {
  int64_t T = a->T, dh = a->dh, D = a->H * dh, tp = att_pad(T), dp = att_pad(dh), per = attn_scratch(a);
  int par = lab_par(a->B * T * 3 * D);
#pragma omp parallel for schedule(static) num_threads(par) if (par > 1)
  for (int64_t bh = 0; bh < a->B * a->H; bh++) {
    int64_t b = bh / a->H, h = bh % a->H;
    float *q = scratch + lab_thread_id() * per, *k = q + T * dp, *v = k + T * dp, *o = v + T * dp;
    float *kt = o + T * dp, *s = kt + dh * tp;
    att_gather(qkv, a, b, h, 0, a->scale, q, dp);
    att_gather(qkv, a, b, h, 1, 1.0f, k, dp);
    att_gather(qkv, a, b, h, 2, 1.0f, v, dp);
    att_transpose(k, dp, kt, T, dh, tp);
    att_gemm(T, tp, dh, q, dp, 1, kt, tp, s, tp); /* s = (q·scale) kᵀ, [T, tp] */
    float *p = probs + (b * a->H + h) * T * T;
    for (int64_t i = 0; i < T; i++) {
      const float *si = s + i * tp;
      float *pi = p + i * T;
      if (mask != NULL) {
        const float *mi = mask + i * T;
        for (int64_t j = 0; j < T; j++) pi[j] = si[j] + mi[j];
      } else {
        memcpy(pi, si, (size_t)T * sizeof(float));
      }
    }
    lab_softmax_rows(p, p, T, T);
    att_gemm(T, dp, T, p, T, 1, v, dp, o, dp); /* o = p v */
    att_scatter(o, dp, T, dh, 1.0f, out + b * T * D + h * dh, D);
  }
}

/* dqkv [B·T, 3D] from dy [B·T, D] (the merged heads' gradient), qkv and probs of the forward; scratch as above. */
static void lab_attention_grad(const float *dy, const float *qkv, const float *probs, float *dqkv, const Attn *a,
                               float *scratch) {
  int64_t T = a->T, dh = a->dh, D = a->H * dh, tp = att_pad(T), dp = att_pad(dh), per = attn_scratch(a);
  int par = lab_par(a->B * T * 4 * D);
#pragma omp parallel for schedule(static) num_threads(par) if (par > 1)
  for (int64_t bh = 0; bh < a->B * a->H; bh++) {
    int64_t b = bh / a->H, h = bh % a->H;
    float *q = scratch + lab_thread_id() * per, *k = q + T * dp, *v = k + T * dp, *g = v + T * dp;
    float *dq = g + T * dp, *dk = dq + T * dp, *dv = dk + T * dp, *vt = dv + T * dp, *ds = vt + dh * tp;
    att_gather(qkv, a, b, h, 0, a->scale, q, dp);
    att_gather(qkv, a, b, h, 1, 1.0f, k, dp);
    att_gather(qkv, a, b, h, 2, 1.0f, v, dp);
    att_transpose(v, dp, vt, T, dh, tp);
    for (int64_t i = 0; i < T; i++) {
      const float *src = dy + (b * T + i) * D + h * dh;
      float *gi = g + i * dp;
      memcpy(gi, src, (size_t)dh * sizeof(float));
      for (int64_t c = dh; c < dp; c++) gi[c] = 0.0f;
    }
    const float *p = probs + (b * a->H + h) * T * T;
    att_gemm(T, tp, dh, g, dp, 1, vt, tp, ds, tp); /* dp = do vᵀ, [T, tp] */
    att_softmax_grad_rows(p, T, ds, tp, T, T);
    att_gemm(T, dp, T, ds, tp, 1, k, dp, dq, dp); /* dq = ds k (times scale below) */
    att_gemm(T, dp, T, ds, 1, tp, q, dp, dk, dp); /* dk = dsᵀ (q·scale) */
    att_gemm(T, dp, T, p, 1, T, g, dp, dv, dp);   /* dv = pᵀ do */
    float *base = dqkv + b * T * 3 * D + h * dh;
    att_scatter(dq, dp, T, dh, a->scale, base, 3 * D);
    att_scatter(dk, dp, T, dh, 1.0f, base + D, 3 * D);
    att_scatter(dv, dp, T, dh, 1.0f, base + 2 * D, 3 * D);
  }
}

/*
 * Multi-head attention pooling (big_vision's MAP head): one learned query q [D]
 * attends over each image's T tokens, kv [B·T, 2D] (columns k | v, head h at
 * h·dh inside each). Same maths as lib/model/ops.ts `attentionPool`'s op-by-op version:
 *   s_t = (Σ_c q_c k_tc) · scale,  a = softmax_t(s),  out_c = Σ_t a_t v_tc      (per image and head)
 *   dv_tc = a_t dout_c,  da_t = Σ_c dout_c v_tc,  ds_t = a_t (da_t − Σ_t' a_t' da_t'),
 *   dk_tc = ds_t · scale · q_c,  dq_c = Σ_images Σ_t ds_t · scale · k_tc
 * Images are split over threads. `att` [B, H, T] keeps a for the backward pass.
 */
static void lab_attention_pool(const float *kv, const float *q, float *out, float *att, int64_t B, int64_t T,
                               int64_t H, int64_t dh, float scale) {
  int64_t D = H * dh;
  int par = lab_par(B * T * 2 * D);
#pragma omp parallel for schedule(static) num_threads(par) if (par > 1)
  for (int64_t b = 0; b < B; b++) {
    for (int64_t h = 0; h < H; h++) {
      float *a = att + (b * H + h) * T;
      const float *qh = q + h * dh;
      for (int64_t t = 0; t < T; t++) {
        const float *k = kv + (b * T + t) * 2 * D + h * dh;
        float dot = 0.0f;
        for (int64_t c = 0; c < dh; c++) dot += k[c] * qh[c];
        a[t] = dot * scale;
      }
      lab_softmax_rows(a, a, 1, T);
      float *o = out + b * D + h * dh;
      for (int64_t c = 0; c < dh; c++) o[c] = 0.0f;
      for (int64_t t = 0; t < T; t++) {
        const float *v = kv + (b * T + t) * 2 * D + D + h * dh;
        for (int64_t c = 0; c < dh; c++) o[c] += a[t] * v[c];
      }
    }
  }
}

/* Floats of scratch lab_attention_pool_grad needs: each image's share of dq, and its da per token. */
static int64_t attn_pool_scratch(int64_t B, int64_t T, int64_t D) { return B * (D + T); }

/*
 * dkv [B·T, 2D] and dq [D] from dout [B, D], kv, q and the forward's att.
 * `scratch` holds attn_pool_scratch floats: each image's share of dq (summed
 * over images in order afterwards, so the bits do not depend on the thread
 * count), then its da_t for the head at hand.
 */
static void lab_attention_pool_grad(const float *dout, const float *kv, const float *q, const float *att,
                                    float *dkv, float *dq, int64_t B, int64_t T, int64_t H, int64_t dh, float scale,
                                    float *scratch) {
  int64_t D = H * dh;
  float *dqb = scratch, *das = scratch + B * D; /* [B, D], [B, T] */
  int par = lab_par(B * T * 4 * D);
#pragma omp parallel for schedule(static) num_threads(par) if (par > 1)
  for (int64_t b = 0; b < B; b++) {
    float *dqi = dqb + b * D, *da = das + b * T;
    for (int64_t c = 0; c < D; c++) dqi[c] = 0.0f;
    for (int64_t h = 0; h < H; h++) {
      const float *a = att + (b * H + h) * T, *g = dout + b * D + h * dh, *qh = q + h * dh;
      float ad = 0.0f; /* Σ_t a_t da_t */
      for (int64_t t = 0; t < T; t++) {
        const float *v = kv + (b * T + t) * 2 * D + D + h * dh;
        float dat = 0.0f;
        for (int64_t c = 0; c < dh; c++) dat += g[c] * v[c];
        da[t] = dat;
        ad += a[t] * dat;
      }
      for (int64_t t = 0; t < T; t++) {
        const float *k = kv + (b * T + t) * 2 * D + h * dh;
        float *dk = dkv + (b * T + t) * 2 * D + h * dh, *dv = dk + D;
        float ds = a[t] * (da[t] - ad) * scale;
        for (int64_t c = 0; c < dh; c++) {
          dk[c] = ds * qh[c];
          dv[c] = a[t] * g[c];
          dqi[h * dh + c] += ds * k[c];
        }
      }
    }
  }
  for (int64_t c = 0; c < D; c++) dq[c] = 0.0f;
  for (int64_t b = 0; b < B; b++) {
    for (int64_t c = 0; c < D; c++) dq[c] += dqb[b * D + c];
  }
}

#pragma GCC pop_options
