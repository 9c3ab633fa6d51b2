/*
 * One strided copy for the TF.js wasm backend's data-movement kernels
 * (Transpose, Slice, SplitV, Concat, Tile), included by addon.c.
 *
 * Why: stock wasm slices a non-contiguous block row by row from JS and its
 * transpose walks the input in output order; splitting the fused q/k/v
 * projection of a lab-preset block ([4096, 192] into three) cost ~16 ms, more
 * than the block's matmuls. Every one of these kernels is the same operation:
 *
 *   dst[Σ i_d · dstStride_d] = src[Σ i_d · srcStride_d]   for every index i < shape
 *
 * with a slice being an offset plus the input's strides, a transpose permuted
 * strides, a concat an offset plus the output's strides, and a tile stride 0.
 * Offsets and strides are in floats; the caller checks both spans lie in the heap.
 */
#include <stdint.h>
#include <string.h>

#define COPY_MAX_RANK 8
#define COPY_TILE 16

typedef struct {
  int rank;
  int64_t shape[COPY_MAX_RANK];
  int64_t ss[COPY_MAX_RANK]; /* source strides */
  int64_t ds[COPY_MAX_RANK]; /* destination strides */
} CopyPlan;

/* Drops size-1 dims and merges neighbours that are contiguous in both source and destination. */
static void copy_simplify(CopyPlan *p) {
  int r = 0;
  for (int d = 0; d < p->rank; d++) {
    if (p->shape[d] == 1) continue;
    if (r > 0 && p->ss[r - 1] == p->ss[d] * p->shape[d] && p->ds[r - 1] == p->ds[d] * p->shape[d]) {
      p->shape[r - 1] *= p->shape[d];
      p->ss[r - 1] = p->ss[d];
      p->ds[r - 1] = p->ds[d];
      continue;
    }
    p->shape[r] = p->shape[d];
    p->ss[r] = p->ss[d];
    p->ds[r] = p->ds[d];
    r++;
  }
  if (r == 0) { /* a single element */
    p->shape[0] = 1;
    p->ss[0] = p->ds[0] = 1;
    r = 1;
  }
  p->rank = r;
}

/* The innermost run: a memcpy when both sides are contiguous. */
static inline void copy_run(const float *src, float *dst, int64_t n, int64_t ss, int64_t ds) {
  if (ss == 1 && ds == 1) {
    memcpy(dst, src, (size_t)n * sizeof(float));
  } else {
    for (int64_t i = 0; i < n; i++) dst[i * ds] = src[i * ss];
  }
}

/*
 * A 2-D transpose of dims (q, last): the destination is contiguous along the
 * last dim, the source along q. Copied in COPY_TILE² blocks so that both sides
 * stay in cache.
 */
static void copy_tile2d(const float *src, float *dst, int64_t nq, int64_t ssq, int64_t dsq, int64_t nl,
                        int64_t ssl) {
  for (int64_t q0 = 0; q0 < nq; q0 += COPY_TILE) {
    int64_t q1 = q0 + COPY_TILE < nq ? q0 + COPY_TILE : nq;
    for (int64_t l0 = 0; l0 < nl; l0 += COPY_TILE) {
      int64_t l1 = l0 + COPY_TILE < nl ? l0 + COPY_TILE : nl;
      for (int64_t q = q0; q < q1; q++) {
        const float *s = src + q * ssq;
        float *d = dst + q * dsq;
        for (int64_t l = l0; l < l1; l++) d[l] = s[l * ssl];
      }
    }
  }
}

/* Runs a simplified plan: an odometer over the outer dims, then a run or a tiled block. */
static void copy_strided(const float *src, float *dst, CopyPlan *p) {
  int last = p->rank - 1;
  /* A transpose: pick the dim along which the source is contiguous and tile it with the last. */
  int q = -1;
  if (p->ds[last] == 1 && p->ss[last] != 1) {
    for (int d = 0; d < last; d++) {
      if (p->ss[d] == 1 && p->shape[d] >= COPY_TILE && p->shape[last] >= COPY_TILE) q = d;
    }
  }
  int outer[COPY_MAX_RANK];
  int n_outer = 0;
  for (int d = 0; d < last; d++) {
    if (d != q) outer[n_outer++] = d;
  }
  int64_t idx[COPY_MAX_RANK] = {0};
  int64_t so = 0, dO = 0;
  for (;;) {
    if (q >= 0) {
      copy_tile2d(src + so, dst + dO, p->shape[q], p->ss[q], p->ds[q], p->shape[last], p->ss[last]);
    } else {
      copy_run(src + so, dst + dO, p->shape[last], p->ss[last], p->ds[last]);
    }
    int k = n_outer - 1;
    for (; k >= 0; k--) {
      int d = outer[k];
      if (++idx[d] < p->shape[d]) {
        so += p->ss[d];
        dO += p->ds[d];
        break;
      }
      so -= (p->shape[d] - 1) * p->ss[d];
      dO -= (p->shape[d] - 1) * p->ds[d];
      idx[d] = 0;
    }
    if (k < 0) return;
  }
}

/*
 * Embedding lookup, out[i, :] = table[ids[i], :] for i < n (an id outside [0, V)
 * gives a row of zeros, as its one-hot row would), rows split over threads;
 * and its gradient, dtable[v, :] = Σ_{i: ids[i] = v} dy[i, :], summed in the
 * order of i on one thread (the bits never depend on the thread count).
 */
static void lab_embed(const int32_t *ids, const float *table, float *out, int64_t n, int64_t V, int64_t D) {
  int par = lab_par(2 * n * D);
#pragma omp parallel for schedule(static) num_threads(par) if (par > 1)
  for (int64_t i = 0; i < n; i++) {
    int64_t id = ids[i];
    if (id >= 0 && id < V) {
      memcpy(out + i * D, table + id * D, (size_t)D * sizeof(float));
    } else {
      memset(out + i * D, 0, (size_t)D * sizeof(float));
    }
  }
}

static void lab_embed_grad(const int32_t *ids, const float *dy, float *dtable, int64_t n, int64_t V, int64_t D) {
  memset(dtable, 0, (size_t)(V * D) * sizeof(float));
  for (int64_t i = 0; i < n; i++) {
    int64_t id = ids[i];
    if (id < 0 || id >= V) continue;
    float *row = dtable + id * D;
    const float *g = dy + i * D;
    for (int64_t c = 0; c < D; c++) row[c] += g[c];
  }
}
