/*
 * The Node-API layer of the lab's native addon (build/native/addon.node),
 * the one file the build compiles: it reads each call's arguments, checks
 * every operand lies inside the wasm heap, runs the kernel and exports the
 * functions lib/backend/native.ts loads. The kernels live beside it, each in
 * a header: matmul.h (sgemm through oneDNN or OpenBLAS, the thread count,
 * the signal guards), rowops.h (sums, sigmoid, softmax, same-shape add),
 * copyops.h (strided copies, embedding lookup), fusedops.h (AdamW, quick
 * GELU, layer norm), attention.h (multi-head self-attention, attention
 * pooling), llipops.h
 * (Llip's pairwise mixing, row entropy), lixpops.h (LIxP's contextualiser),
 * denseops.h (a dense layer x·w + b, both ways), lossops.h (SigLIP's pair
 * loss and row L2 normalisation, both ways), probeops.h (the linear probe's
 * fits, every step in one call), blockops.h (a whole pre-LN transformer
 * block, both ways, from the kernels above).
 *
 * Why on the heap: we keep the wasm backend for everything else and compute
 * directly on its memory, so no tensor is ever copied. The JS side passes the
 * heap as a Float32Array (HEAPF32, read after the output was allocated,
 * because heap growth replaces the buffer) and every operand as a float
 * offset into it. Nothing here allocates on the wasm heap; every access is
 * bounds-checked against the view's length before a kernel runs.
 */
#include <cblas.h> /* openblas_set_num_threads, openblas_get_config */
#include <node_api.h>
#ifdef LAB_DNNL
#include <dnnl.h> /* dnnl_version */
#include <omp.h>
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "matmul.h"
#include "copyops.h"
#include "rowops.h"
#include "fusedops.h" /* uses lab_expf of rowops.h */
#include "attention.h" /* uses lab_softmax_rows of rowops.h */
#include "llipops.h"   /* uses attention.h and rowops.h */
#include "lixpops.h"   /* uses rowops.h, fusedops.h and matmul.h */
#include "denseops.h"  /* uses matmul.h and rowops.h */
#include "lossops.h"   /* uses rowops.h */
#include "probeops.h"  /* uses denseops.h and rowops.h */
#include "blockops.h"  /* uses rowops.h, fusedops.h, attention.h and denseops.h */

#define LAB_BLAS_VERSION "lab-blas 16"

#define CHECK(env, call)                                                     \
  do {                                                                       \
    if ((call) != napi_ok) {                                                 \
      napi_throw_error((env), NULL, "lab-blas: Node-API call failed: " #call); \
      return NULL;                                                           \
    }                                                                        \
  } while (0)

/* A float view of the heap: base pointer and length in floats. */
typedef struct {
  float *data;
  int64_t len;
} Heap;

static int get_heap(napi_env env, napi_value v, Heap *heap) {
  napi_typedarray_type type;
  size_t len;
  void *data;
  if (napi_get_typedarray_info(env, v, &type, &len, &data, NULL, NULL) != napi_ok ||
      type != napi_float32_array) {
    napi_throw_type_error(env, NULL, "lab-blas: heap must be a Float32Array");
    return 0;
  }
  heap->data = (float *)data;
  heap->len = (int64_t)len;
  return 1;
}

static int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != want) {
    napi_throw_type_error(env, NULL, "lab-blas: wrong number of arguments");
    return 0;
  }
  return 1;
}

/* Reads argv[from..from+n) as integers; doubles carry every int < 2^53. */
static int get_ints(napi_env env, napi_value *argv, size_t n, int64_t *out) {
  for (size_t i = 0; i < n; i++) {
    if (napi_get_value_int64(env, argv[i], &out[i]) != napi_ok) {
      napi_throw_type_error(env, NULL, "lab-blas: expected a number");
      return 0;
    }
  }
  return 1;
}

/* True when [off, off + span) lies inside the heap (span 0 means unused). */
static int in_heap(const Heap *h, int64_t off, int64_t span) {
  return span == 0 || (off >= 0 && span > 0 && off + span <= h->len);
}

/* Floats touched by a strided batch of matrices of `size` floats each. */
static int64_t batch_span(int64_t batch, int64_t stride, int64_t size) {
  return size == 0 ? 0 : (batch - 1) * stride + size;
}

enum { ARG_HEAP, ARG_TA, ARG_TB, ARG_BATCH, ARG_M, ARG_N, ARG_K, ARG_A, ARG_SA, ARG_B,
       ARG_SB, ARG_C, ARG_BIAS, ARG_BIAS_SB, ARG_BIAS_SM, ARG_BIAS_SN, ARG_ACT, GEMM_ARGS };

static int gemm_in_bounds(const Heap *h, const Gemm *g) {
  int64_t bias_span = g->bias < 0 ? 0
                      : (g->batch - 1) * g->bias_sb + (g->m - 1) * g->bias_sm +
                            (g->n - 1) * g->bias_sn + 1;
  return in_heap(h, g->a, batch_span(g->batch, g->sa, g->m * g->k)) &&
         in_heap(h, g->b, batch_span(g->batch, g->sb, g->k * g->n)) &&
         in_heap(h, g->c, g->batch * g->m * g->n) && (g->bias < 0 || in_heap(h, g->bias, bias_span));
}

/*
 * sgemm(heap, transA, transB, batch, M, N, K, aOff, aStride, bOff, bStride,
 *       cOff, biasOff, biasBatchStride, biasRowStride, biasColStride, act)
 * C[i] = act(op(A[i]) op(B[i]) + bias[i]); a stride of 0 broadcasts an
 * operand over the batch, biasOff < 0 means no bias, act 0 linear, 1 relu
 * (run_gemm in matmul.h).
 */
static napi_value Sgemm(napi_env env, napi_callback_info info) {
  napi_value argv[GEMM_ARGS];
  Heap heap;
  int64_t v[GEMM_ARGS - 1];
  if (!get_args(env, info, GEMM_ARGS, argv) || !get_heap(env, argv[ARG_HEAP], &heap) ||
      !get_ints(env, argv + 1, GEMM_ARGS - 1, v)) {
    return NULL;
  }
  Gemm g = {v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8],
            v[9], v[10], v[11], v[12], v[13], v[14], v[15]};
  if (g.batch < 1 || g.m < 0 || g.n < 0 || g.k < 0 || g.m > INT32_MAX || g.n > INT32_MAX ||
      g.k > INT32_MAX || g.batch * g.m > INT32_MAX || g.sa < 0 || g.sb < 0 || g.act < 0 ||
      g.act > 1) {
    napi_throw_range_error(env, NULL, "lab-blas: bad sgemm sizes");
    return NULL;
  }
  if (g.m == 0 || g.n == 0) return NULL;
  if (!gemm_in_bounds(&heap, &g)) {
    napi_throw_range_error(env, NULL, "lab-blas: sgemm operand outside the heap");
    return NULL;
  }
  SignalGuard guard = hold_signals();
  run_gemm(heap.data, &g);
  release_signals(&guard);
  return NULL;
}

/* Throws naming `what` unless every [offs[i], offs[i] + spans[i]) lies in the heap. */
static int check_spans(napi_env env, const Heap *h, const int64_t *offs, const int64_t *spans, int n, const char *what) {
  for (int i = 0; i < n; i++) {
    if (spans[i] < 0 || !in_heap(h, offs[i], spans[i])) {
      char msg[96];
      snprintf(msg, sizeof msg, "lab-blas: %s operand outside the heap", what);
      napi_throw_range_error(env, NULL, msg);
      return 0;
    }
  }
  return 1;
}

/* Reads (heap, ...n_ints integers) into heap and v. */
static int get_heap_ints(napi_env env, napi_callback_info info, size_t n_ints, Heap *heap, int64_t *v) {
  napi_value argv[16];
  return get_args(env, info, n_ints + 1, argv) && get_heap(env, argv[0], heap) && get_ints(env, argv + 1, n_ints, v);
}

/* How many floats a row kernel writes: one per element, per row or per column. */
typedef enum { OUT_ALL, OUT_ROWS, OUT_COLS } OutSpan;

/*
 * Reads (heap, x, rows, cols, out) into v = {x, rows, cols, out} and checks that
 * x spans rows·cols floats and out the span `kind` says; throws naming `what`.
 */
static int get_rows_args(napi_env env, napi_callback_info info, Heap *heap, int64_t *v, OutSpan kind,
                         const char *what) {
  if (!get_heap_ints(env, info, 4, heap, v)) return 0;
  int64_t out_len = kind == OUT_ALL ? v[1] * v[2] : kind == OUT_ROWS ? v[1] : v[2];
  int64_t offs[2] = {v[0], v[3]}, spans[2] = {v[1] < 0 || v[2] < 0 ? -1 : v[1] * v[2], out_len};
  return check_spans(env, heap, offs, spans, 2, what);
}

/* `bytes` of heap memory (zeroed when asked), or NULL after throwing "out of memory" to JS. */
static void *alloc_or_throw(napi_env env, size_t bytes, int zeroed) {
  void *p = zeroed ? calloc(bytes, 1) : malloc(bytes);
  if (p == NULL) napi_throw_error(env, NULL, "lab-blas: out of memory");
  return p;
}

/* sumRows(heap, xOff, rows, cols, outOff): out[j] = sum_i x[i, j] (out spans cols floats; rowops.h). */
static napi_value SumRows(napi_env env, napi_callback_info info) {
  Heap h;
  int64_t v[4];
  if (!get_rows_args(env, info, &h, v, OUT_COLS, "sumRows")) return NULL;
  if (v[2] == 0) return NULL;
  double *acc = alloc_or_throw(env, (size_t)v[2] * sizeof(double), 1);
  if (acc == NULL) return NULL;
  SignalGuard guard = hold_signals_par();
  lab_sum_rows(h.data + v[0], h.data + v[3], v[1], v[2], acc);
  release_signals(&guard);
  free(acc);
  return NULL;
}

/* addSame(heap, a, b, n, out): out = a + b elementwise (rowops.h). */
static napi_value AddSame(napi_env env, napi_callback_info info) {
  Heap h;
  int64_t v[4];
  if (!get_heap_ints(env, info, 4, &h, v)) return NULL;
  int64_t n = v[2], offs[3] = {v[0], v[1], v[3]}, spans[3] = {n, n, n};
  if (n < 0 || !check_spans(env, &h, offs, spans, 3, "addSame")) return NULL;
  SignalGuard guard = hold_signals_par();
  lab_add(h.data + v[0], h.data + v[1], h.data + v[3], n);
  release_signals(&guard);
  return NULL;
}

/* sigmoid(heap, xOff, 1, n, outOff): out = 1 / (1 + exp(-x)). */
static napi_value Sigmoid(napi_env env, napi_callback_info info) {
  Heap h;
  int64_t v[4];
  if (get_rows_args(env, info, &h, v, OUT_ALL, "sigmoid")) lab_sigmoid(h.data + v[0], h.data + v[3], v[1] * v[2]);
  return NULL;
}

/* softmaxRows(heap, xOff, rows, cols, outOff): softmax over each row. */
static napi_value SoftmaxRows(napi_env env, napi_callback_info info) {
  Heap h;
  int64_t v[4];
  if (get_rows_args(env, info, &h, v, OUT_ALL, "softmaxRows")) lab_softmax_rows(h.data + v[0], h.data + v[3], v[1], v[2]);
  return NULL;
}

/* sumCols(heap, xOff, rows, cols, outOff): out[i] = sum_j x[i, j] (out spans rows floats). */
static napi_value SumCols(napi_env env, napi_callback_info info) {
  Heap h;
  int64_t v[4];
  if (!get_rows_args(env, info, &h, v, OUT_ROWS, "sumCols")) return NULL;
  lab_sum_cols(h.data + v[0], h.data + v[3], v[1], v[2]);
  return NULL;
}

/* Floats from a strided view's first element to its last, inclusive (0 when empty). */
static int64_t strided_span(const int64_t *shape, const int64_t *strides, int rank) {
  int64_t span = 1;
  for (int d = 0; d < rank; d++) {
    if (shape[d] == 0) return 0;
    span += (shape[d] - 1) * strides[d];
  }
  return span;
}

/*
 * copyStrided(heap, rank, srcOff, dstOff, ...shape, ...srcStrides, ...dstStrides):
 * dst[Σ i_d·dstStride_d] = src[Σ i_d·srcStride_d] for every i < shape (copyops.h).
 * Strides must be >= 0; both views must lie inside the heap.
 */
static napi_value CopyStrided(napi_env env, napi_callback_info info) {
  napi_value argv[4 + 3 * COPY_MAX_RANK];
  size_t argc = sizeof argv / sizeof argv[0];
  Heap heap;
  int64_t head[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4 ||
      !get_heap(env, argv[0], &heap) || !get_ints(env, argv + 1, 3, head)) {
    if (argc < 4) napi_throw_type_error(env, NULL, "lab-blas: copyStrided needs (heap, rank, src, dst, ...)");
    return NULL;
  }
  int64_t rank = head[0], src = head[1], dst = head[2];
  if (rank < 1 || rank > COPY_MAX_RANK || argc != (size_t)(4 + 3 * rank)) {
    napi_throw_range_error(env, NULL, "lab-blas: copyStrided rank must be 1..8 with 3·rank sizes");
    return NULL;
  }
  CopyPlan p = {.rank = (int)rank};
  if (!get_ints(env, argv + 4, (size_t)rank, p.shape) || !get_ints(env, argv + 4 + rank, (size_t)rank, p.ss) ||
      !get_ints(env, argv + 4 + 2 * rank, (size_t)rank, p.ds)) {
    return NULL;
  }
  for (int d = 0; d < rank; d++) {
    if (p.shape[d] < 0 || p.ss[d] < 0 || p.ds[d] < 0) {
      napi_throw_range_error(env, NULL, "lab-blas: copyStrided sizes and strides must be >= 0");
      return NULL;
    }
  }
  int64_t src_span = strided_span(p.shape, p.ss, p.rank), dst_span = strided_span(p.shape, p.ds, p.rank);
  if (dst_span == 0) return NULL;
  if (!in_heap(&heap, src, src_span) || !in_heap(&heap, dst, dst_span)) {
    napi_throw_range_error(env, NULL, "lab-blas: copyStrided operand outside the heap");
    return NULL;
  }
  copy_simplify(&p);
  copy_strided(heap.data + src, heap.data + dst, &p);
  return NULL;
}

/* Reads argv[0..n) as doubles. */
static int get_doubles(napi_env env, napi_value *argv, size_t n, double *out) {
  for (size_t i = 0; i < n; i++) {
    if (napi_get_value_double(env, argv[i], &out[i]) != napi_ok) {
      napi_throw_type_error(env, NULL, "lab-blas: expected a number");
      return 0;
    }
  }
  return 1;
}

enum { ADAMW_OFFSETS = 10, ADAMW_HYPER = 7 };

/*
 * adamw(heap, n, p, grad, m, v, scale, pOut, mOut, vOut, statsOut,
 *       lr, beta1, beta2, eps, weightDecay, bc1, bc2): one AdamW update
 * (fusedops.h); offsets in floats, `scale` and `statsOut` (2 floats) too.
 */
static napi_value AdamWUpdate(napi_env env, napi_callback_info info) {
  napi_value argv[1 + ADAMW_OFFSETS + ADAMW_HYPER];
  Heap heap;
  int64_t o[ADAMW_OFFSETS];
  double h[ADAMW_HYPER];
  if (!get_args(env, info, sizeof argv / sizeof argv[0], argv) || !get_heap(env, argv[0], &heap) ||
      !get_ints(env, argv + 1, ADAMW_OFFSETS, o) || !get_doubles(env, argv + 1 + ADAMW_OFFSETS, ADAMW_HYPER, h)) {
    return NULL;
  }
  int64_t n = o[0];
  /* p, grad, m, v, scale, p', m', v', stats */
  int64_t spans[ADAMW_OFFSETS - 1] = {n, n, n, n, 1, n, n, n, 2};
  if (!check_spans(env, &heap, o + 1, spans, ADAMW_OFFSETS - 1, "adamw")) return NULL;
  float *d = heap.data;
  AdamW a = {(float)h[0], (float)h[1], (float)(1.0 - h[1]), (float)h[2], (float)(1.0 - h[2]),
             (float)h[3], (float)h[4], (float)h[5], (float)h[6]};
  lab_adamw(d + o[1], d + o[2], d + o[3], d + o[4], d[o[5]], d + o[6], d + o[7], d + o[8], d + o[9], n, &a);
  return NULL;
}

/* A Float64Array argument: its data and length. */
static int get_f64(napi_env env, napi_value v, const double **data, size_t *len) {
  napi_typedarray_type type;
  void *p;
  if (napi_get_typedarray_info(env, v, &type, len, &p, NULL, NULL) != napi_ok || type != napi_float64_array) {
    napi_throw_type_error(env, NULL, "lab-blas: expected a Float64Array");
    return 0;
  }
  *data = (const double *)p;
  return 1;
}

enum { MULTI_COLS = 9, MULTI_HYPER = 7 };

/*
 * adamwMulti(heap, table, count, rest, normsOut, lr, beta1, beta2, eps, bc1, bc2, clip):
 * every parameter's AdamW update and the global-norm clip in one call
 * (lab_adamw_multi in fusedops.h). table: Float64Array of count + rest rows
 * [n, p, grad, m, v, pOut, mOut, vOut, weightDecay]; the `rest` rows (parameters
 * without a gradient, only counted in the norm) use n and p alone.
 */
static napi_value AdamWMulti(napi_env env, napi_callback_info info) {
  napi_value argv[5 + MULTI_HYPER];
  Heap heap;
  const double *tab;
  size_t tab_len;
  int64_t v[3];
  double h[MULTI_HYPER];
  if (!get_args(env, info, sizeof argv / sizeof argv[0], argv) || !get_heap(env, argv[0], &heap) ||
      !get_f64(env, argv[1], &tab, &tab_len) || !get_ints(env, argv + 2, 3, v) ||
      !get_doubles(env, argv + 5, MULTI_HYPER, h)) {
    return NULL;
  }
  int64_t count = v[0], rest = v[1];
  if (count < 0 || rest < 0 || (size_t)((count + rest) * MULTI_COLS) != tab_len) {
    napi_throw_range_error(env, NULL, "lab-blas: adamwMulti table is not (count + rest) rows of 9");
    return NULL;
  }
  AdamWSlot *slots = alloc_or_throw(env, (size_t)(count + rest + 1) * sizeof(AdamWSlot), 0);
  if (slots == NULL) return NULL;
  int64_t norms_span = 3;
  int ok = check_spans(env, &heap, &v[2], &norms_span, 1, "adamwMulti");
  for (int64_t i = 0; ok && i < count + rest; i++) {
    const double *r = tab + i * MULTI_COLS;
    for (int j = 0; j < 8; j++) {
      if (!(r[j] >= 0 && r[j] < 9007199254740992.0 && r[j] == (double)(int64_t)r[j])) {
        napi_throw_range_error(env, NULL, "lab-blas: adamwMulti sizes and offsets must be integers >= 0");
        ok = 0;
        break;
      }
    }
    if (!ok) break;
    AdamWSlot *s = &slots[i];
    *s = (AdamWSlot){(int64_t)r[0], (int64_t)r[1], (int64_t)r[2], (int64_t)r[3], (int64_t)r[4],
                     (int64_t)r[5], (int64_t)r[6], (int64_t)r[7], (float)r[8]};
    int64_t offs[7] = {s->p, s->g, s->m, s->v, s->p_out, s->m_out, s->v_out};
    int64_t spans[7] = {s->n, s->n, s->n, s->n, s->n, s->n, s->n};
    ok = check_spans(env, &heap, offs, spans, i < count ? 7 : 1, "adamwMulti"); /* rest rows: p alone */
  }
  float *tmp = ok ? alloc_or_throw(env, (size_t)(3 * count + rest + 1) * sizeof(float), 0) : NULL;
  if (tmp != NULL) {
    AdamW a = {(float)h[0], (float)h[1], (float)(1.0 - h[1]), (float)h[2], (float)(1.0 - h[2]),
               (float)h[3], 0.0f, (float)h[4], (float)h[5]};
    SignalGuard guard = hold_signals_par();
    lab_adamw_multi(heap.data, slots, count, slots + count, rest, (float)h[6], a, heap.data + v[2], tmp);
    release_signals(&guard);
  }
  free(tmp);
  free(slots);
  return NULL;
}

/* quickGelu(heap, x, y, n) */
static napi_value QuickGelu(napi_env env, napi_callback_info info) {
  Heap h;
  int64_t v[3];
  if (!get_heap_ints(env, info, 3, &h, v)) return NULL;
  int64_t offs[2] = {v[0], v[1]}, spans[2] = {v[2], v[2]};
  if (!check_spans(env, &h, offs, spans, 2, "quickGelu")) return NULL;
  SignalGuard guard = hold_signals_par();
  lab_quick_gelu(h.data + v[0], h.data + v[1], v[2]);
  release_signals(&guard);
  return NULL;
}

/* quickGeluGrad(heap, dy, x, dx, n) */
static napi_value QuickGeluGrad(napi_env env, napi_callback_info info) {
  Heap h;
  int64_t v[4];
  if (!get_heap_ints(env, info, 4, &h, v)) return NULL;
  int64_t offs[3] = {v[0], v[1], v[2]}, spans[3] = {v[3], v[3], v[3]};
  if (!check_spans(env, &h, offs, spans, 3, "quickGeluGrad")) return NULL;
  SignalGuard guard = hold_signals_par();
  lab_quick_gelu_grad(h.data + v[0], h.data + v[1], h.data + v[2], v[3]);
  release_signals(&guard);
  return NULL;
}

/* layerNorm(heap, x, gamma, beta, y, xhat, rstd, rows, cols, eps) */
static napi_value LayerNorm(napi_env env, napi_callback_info info) {
  napi_value argv[10];
  Heap h;
  int64_t v[8];
  double eps;
  if (!get_args(env, info, 10, argv) || !get_heap(env, argv[0], &h) || !get_ints(env, argv + 1, 8, v) ||
      !get_doubles(env, argv + 9, 1, &eps)) {
    return NULL;
  }
  int64_t rows = v[6], cols = v[7], n = rows * cols;
  int64_t offs[6] = {v[0], v[1], v[2], v[3], v[4], v[5]}, spans[6] = {n, cols, cols, n, n, rows};
  if (rows < 0 || cols < 0 || !check_spans(env, &h, offs, spans, 6, "layerNorm")) return NULL;
  float *d = h.data;
  SignalGuard guard = hold_signals_par();
  lab_layer_norm(d + v[0], d + v[1], d + v[2], d + v[3], d + v[4], d + v[5], rows, cols, (float)eps);
  release_signals(&guard);
  return NULL;
}

/* layerNormGrad(heap, dy, xhat, rstd, gamma, dx, dgamma, dbeta, rows, cols) */
static napi_value LayerNormGrad(napi_env env, napi_callback_info info) {
  Heap h;
  int64_t v[9];
  if (!get_heap_ints(env, info, 9, &h, v)) return NULL;
  int64_t rows = v[7], cols = v[8], n = rows * cols;
  int64_t offs[7] = {v[0], v[1], v[2], v[3], v[4], v[5], v[6]}, spans[7] = {n, n, rows, cols, n, cols, cols};
  if (rows < 0 || cols < 0 || !check_spans(env, &h, offs, spans, 7, "layerNormGrad")) return NULL;
  double *acc = alloc_or_throw(env, (size_t)(2 * cols + 1) * sizeof(double), 0);
  if (acc == NULL) return NULL;
  float *d = h.data;
  SignalGuard guard = hold_signals_par();
  lab_layer_norm_grad(d + v[0], d + v[1], d + v[2], d + v[3], d + v[4], d + v[5], d + v[6], rows, cols, acc);
  release_signals(&guard);
  free(acc);
  return NULL;
}

/* Reads the shape of an attention call (B, T, H, dh) and checks the sizes; throws naming `what`. */
static int get_attn(napi_env env, const int64_t *v, double scale, Attn *a, const char *what) {
  *a = (Attn){v[0], v[1], v[2], v[3], (float)scale};
  if (a->B < 0 || a->T < 0 || a->H < 1 || a->dh < 0 || a->T > INT32_MAX || a->dh > INT32_MAX ||
      a->B * a->T > INT32_MAX / 3 || a->H * a->dh > INT32_MAX / 3) {
    char msg[96];
    snprintf(msg, sizeof msg, "lab-blas: bad %s sizes", what);
    napi_throw_range_error(env, NULL, msg);
    return 0;
  }
  return 1;
}

/*
 * Reads an attention-family call, (heap, `n_offs` offsets, B, T, H, dh, scale):
 * the heap, the offsets into v[0..n_offs), the sizes (checked) into a; throws naming `what`.
 */
static int get_attn_call(napi_env env, napi_callback_info info, size_t n_offs, Heap *h, int64_t *v, Attn *a,
                         const char *what) {
  napi_value argv[16];
  double scale;
  size_t n = n_offs + 4; /* offsets, then B, T, H, dh */
  return get_args(env, info, n + 2, argv) && get_heap(env, argv[0], h) && get_ints(env, argv + 1, n, v) &&
         get_doubles(env, argv + 1 + n, 1, &scale) && get_attn(env, v + n_offs, scale, a, what);
}

/* attention(heap, qkv, mask (< 0: none), out, probs, B, T, H, dh, scale) (attention.h) */
static napi_value Attention(napi_env env, napi_callback_info info) {
  Heap h;
  int64_t v[8];
  Attn a;
  if (!get_attn_call(env, info, 4, &h, v, &a, "attention")) return NULL;
  int64_t D = a.H * a.dh, rows = a.B * a.T;
  int64_t offs[4] = {v[0], v[1] < 0 ? 0 : v[1], v[2], v[3]};
  int64_t spans[4] = {rows * 3 * D, v[1] < 0 ? 0 : a.T * a.T, rows * D, a.B * a.H * a.T * a.T};
  if (!check_spans(env, &h, offs, spans, 4, "attention")) return NULL;
  if (rows == 0 || D == 0) return NULL;
  float *scratch = alloc_or_throw(env, (size_t)(lab_threads * attn_scratch(&a)) * sizeof(float), 0);
  if (scratch == NULL) return NULL;
  float *d = h.data;
  SignalGuard guard = hold_signals_par();
  lab_attention(d + v[0], v[1] < 0 ? NULL : d + v[1], d + v[2], d + v[3], &a, scratch);
  release_signals(&guard);
  free(scratch);
  return NULL;
}

/* attentionGrad(heap, dy, qkv, probs, dqkv, B, T, H, dh, scale) (attention.h) */
static napi_value AttentionGrad(napi_env env, napi_callback_info info) {
  Heap h;
  int64_t v[8];
  Attn a;
  if (!get_attn_call(env, info, 4, &h, v, &a, "attentionGrad")) return NULL;
  int64_t D = a.H * a.dh, rows = a.B * a.T;
  int64_t spans[4] = {rows * D, rows * 3 * D, a.B * a.H * a.T * a.T, rows * 3 * D};
  if (!check_spans(env, &h, v, spans, 4, "attentionGrad")) return NULL;
  if (rows == 0 || D == 0) return NULL;
  float *scratch = alloc_or_throw(env, (size_t)(lab_threads * attn_scratch(&a)) * sizeof(float), 0);
  if (scratch == NULL) return NULL;
  float *d = h.data;
  SignalGuard guard = hold_signals_par();
  lab_attention_grad(d + v[0], d + v[1], d + v[2], d + v[3], &a, scratch);
  release_signals(&guard);
  free(scratch);
  return NULL;
}

static int size_in(napi_env env, int64_t v, int64_t lo, int64_t hi, const char *what);

/* embed(heap, ids, table, out, n, V, D) and embedGrad(heap, ids, dy, dtable, n, V, D) (copyops.h); ids are int32 */
static napi_value embed_call(napi_env env, napi_callback_info info, int grad) {
  Heap h;
  int64_t v[6];
  const char *what = grad ? "embedGrad" : "embed";
  if (!get_heap_ints(env, info, 6, &h, v) || !size_in(env, v[3], 0, INT32_MAX, what) ||
      !size_in(env, v[4], 0, INT32_MAX, what) || !size_in(env, v[5], 0, INT32_MAX, what))
    return NULL;
  int64_t n = v[3], V = v[4], D = v[5];
  int64_t offs[3] = {v[0], v[1], v[2]};
  int64_t spans[3] = {n, grad ? n * D : V * D, grad ? V * D : n * D};
  if (!check_spans(env, &h, offs, spans, 3, what)) return NULL;
  const int32_t *ids = (const int32_t *)(h.data + v[0]); /* int32 and float32 share the heap's 4-byte slots */
  SignalGuard guard = hold_signals_par();
  if (grad) {
    lab_embed_grad(ids, h.data + v[1], h.data + v[2], n, V, D);
  } else {
    lab_embed(ids, h.data + v[1], h.data + v[2], n, V, D);
  }
  release_signals(&guard);
  return NULL;
}

static napi_value Embed(napi_env env, napi_callback_info info) { return embed_call(env, info, 0); }
static napi_value EmbedGrad(napi_env env, napi_callback_info info) { return embed_call(env, info, 1); }

/* attentionPool(heap, kv, q, out, att, B, T, H, dh, scale) (attention.h) */
static napi_value AttentionPool(napi_env env, napi_callback_info info) {
  Heap h;
  int64_t v[8];
  Attn a;
  if (!get_attn_call(env, info, 4, &h, v, &a, "attentionPool")) return NULL;
  int64_t D = a.H * a.dh;
  int64_t spans[4] = {a.B * a.T * 2 * D, D, a.B * D, a.B * a.H * a.T};
  if (!check_spans(env, &h, v, spans, 4, "attentionPool")) return NULL;
  if (a.B == 0 || D == 0) return NULL;
  float *d = h.data;
  SignalGuard guard = hold_signals_par();
  lab_attention_pool(d + v[0], d + v[1], d + v[2], d + v[3], a.B, a.T, a.H, a.dh, a.scale);
  release_signals(&guard);
  return NULL;
}

/* attentionPoolGrad(heap, dout, kv, q, att, dkv, dq, B, T, H, dh, scale) (attention.h) */
static napi_value AttentionPoolGrad(napi_env env, napi_callback_info info) {
  Heap h;
  int64_t v[10];
  Attn a;
  if (!get_attn_call(env, info, 6, &h, v, &a, "attentionPoolGrad")) return NULL;
  int64_t D = a.H * a.dh, kvn = a.B * a.T * 2 * D;
  int64_t spans[6] = {a.B * D, kvn, D, a.B * a.H * a.T, kvn, D};
  if (!check_spans(env, &h, v, spans, 6, "attentionPoolGrad")) return NULL;
  float *d = h.data;
  if (a.B == 0 || D == 0) {
    memset(d + v[4], 0, (size_t)kvn * sizeof(float));
    memset(d + v[5], 0, (size_t)D * sizeof(float));
    return NULL;
  }
  float *scratch = alloc_or_throw(env, (size_t)attn_pool_scratch(a.B, a.T, D) * sizeof(float), 0);
  if (scratch == NULL) return NULL;
  SignalGuard guard = hold_signals_par();
  lab_attention_pool_grad(d + v[0], d + v[1], d + v[2], d + v[3], d + v[4], d + v[5], a.B, a.T, a.H, a.dh, a.scale,
                          scratch);
  release_signals(&guard);
  free(scratch);
  return NULL;
}

/* Reads the sizes of a Llip mixing call (T, B, Bt, M, dh) and τ; throws naming `what`. */
static int get_llip(napi_env env, const int64_t *v, double tau, LlipMix *a, const char *what) {
  *a = (LlipMix){v[0], v[1], v[2], v[3], v[4], (float)tau};
  if (a->T < 0 || a->B < 0 || a->Bt < 0 || a->M < 1 || a->dh < 0 || a->T > INT32_MAX || a->B > INT32_MAX ||
      a->Bt > INT32_MAX || a->M * a->dh > INT32_MAX || !(tau > 0)) {
    char msg[96];
    snprintf(msg, sizeof msg, "lab-blas: bad %s sizes", what);
    napi_throw_range_error(env, NULL, msg);
    return 0;
  }
  return 1;
}

/* llipMix(heap, keys, values, q, mixed, phi, T, B, Bt, M, dh, tau) (llipops.h) */
static napi_value LlipMixFwd(napi_env env, napi_callback_info info) {
  napi_value argv[12];
  Heap h;
  int64_t v[10];
  double tau;
  LlipMix a;
  if (!get_args(env, info, 12, argv) || !get_heap(env, argv[0], &h) || !get_ints(env, argv + 1, 10, v) ||
      !get_doubles(env, argv + 11, 1, &tau) || !get_llip(env, v + 5, tau, &a, "llipMix")) {
    return NULL;
  }
  int64_t E = a.M * a.dh;
  int64_t spans[5] = {a.T * a.B * E, a.T * a.B * E, a.Bt * E, a.B * a.Bt * E, a.M * a.Bt * a.B * a.T};
  if (!check_spans(env, &h, v, spans, 5, "llipMix")) return NULL;
  if (a.T == 0 || a.B == 0 || a.Bt == 0 || E == 0) return NULL;
  float *scratch = alloc_or_throw(env, (size_t)llip_scratch(&a, lab_threads) * sizeof(float), 0);
  if (scratch == NULL) return NULL;
  float *d = h.data;
  SignalGuard guard = hold_signals_par();
  lab_llip_mix(d + v[0], d + v[1], d + v[2], d + v[3], d + v[4], &a, scratch);
  release_signals(&guard);
  free(scratch);
  return NULL;
}

/* llipMixGrad(heap, dy, keys, values, q, phi, dkeys, dvalues, dq, T, B, Bt, M, dh, tau) (llipops.h) */
static napi_value LlipMixGrad(napi_env env, napi_callback_info info) {
  napi_value argv[15];
  Heap h;
  int64_t v[13];
  double tau;
  LlipMix a;
  if (!get_args(env, info, 15, argv) || !get_heap(env, argv[0], &h) || !get_ints(env, argv + 1, 13, v) ||
      !get_doubles(env, argv + 14, 1, &tau) || !get_llip(env, v + 8, tau, &a, "llipMixGrad")) {
    return NULL;
  }
  int64_t E = a.M * a.dh, tbe = a.T * a.B * E;
  int64_t spans[8] = {a.B * a.Bt * E, tbe, tbe, a.Bt * E, a.M * a.Bt * a.B * a.T, tbe, tbe, a.Bt * E};
  if (!check_spans(env, &h, v, spans, 8, "llipMixGrad")) return NULL;
  float *d = h.data;
  if (a.T == 0 || a.B == 0 || a.Bt == 0 || E == 0) {
    memset(d + v[5], 0, (size_t)tbe * sizeof(float));
    memset(d + v[6], 0, (size_t)tbe * sizeof(float));
    memset(d + v[7], 0, (size_t)(a.Bt * E) * sizeof(float));
    return NULL;
  }
  float *scratch = alloc_or_throw(env, (size_t)llip_scratch(&a, lab_threads) * sizeof(float), 0);
  if (scratch == NULL) return NULL;
  SignalGuard guard = hold_signals_par();
  lab_llip_mix_grad(d + v[0], d + v[1], d + v[2], d + v[3], d + v[4], d + v[5], d + v[6], d + v[7], &a, scratch);
  release_signals(&guard);
  free(scratch);
  return NULL;
}

/* rowEntropy(heap, xOff, rows, cols, outOff): out[i] = −Σ_j x[i, j] log(x[i, j] + 1e-30). */
static napi_value RowEntropy(napi_env env, napi_callback_info info) {
  Heap h;
  int64_t v[4];
  if (!get_rows_args(env, info, &h, v, OUT_ROWS, "rowEntropy")) return NULL;
  SignalGuard guard = hold_signals_par();
  lab_row_entropy(h.data + v[0], h.data + v[3], v[1], v[2]);
  release_signals(&guard);
  return NULL;
}

/* Reads LIxP sizes B, S, D and the flags maskSelf, separate, block; throws naming `what`. */
static int get_lixp(napi_env env, const int64_t *v, Lixp *a, const char *what) {
  *a = (Lixp){v[0], v[1], v[2], v[3] != 0, v[4] != 0, v[5], 0.0f, 0.0f};
  if (a->B < 1 || a->S < 0 || a->D < 1 || a->block < 0 || a->B > INT32_MAX / 2 || a->S > INT32_MAX / 2 ||
      a->D > INT32_MAX || (a->B + a->S) * a->D > INT32_MAX) {
    char msg[96];
    snprintf(msg, sizeof msg, "lab-blas: bad %s sizes", what);
    napi_throw_range_error(env, NULL, msg);
    return 0;
  }
  return 1;
}

/* Runs f(scratch) with lixp_scratch(a) floats of scratch and the signal guard of the matmuls. */
#define WITH_LIXP_SCRATCH(env, a, call)                             \
  do {                                                              \
    float *scratch = alloc_or_throw((env), (size_t)lixp_scratch(a) * sizeof(float), 0); \
    if (scratch == NULL) return NULL;                               \
    SignalGuard guard = hold_signals();                             \
    call;                                                           \
    release_signals(&guard);                                        \
    free(scratch);                                                  \
  } while (0)

/*
 * lixpContext(heap, x, stale (< 0: none), scale, fill (< 0: none), out, attn, k, rn,
 *             B, S, D, maskSelf, separate, block) (lixpops.h); scale and fill are one float each.
 */
static napi_value LixpContext(napi_env env, napi_callback_info info) {
  Heap h;
  int64_t v[14];
  Lixp a;
  if (!get_heap_ints(env, info, 14, &h, v) || !get_lixp(env, v + 8, &a, "lixpContext")) return NULL;
  int64_t M = a.B + a.S, stale = a.S > 0 ? v[1] : 0, fill = a.S > 0 ? v[3] : 0;
  int64_t offs[8] = {v[0], stale, v[2], fill, v[4], v[5], v[6], v[7]};
  int64_t spans[8] = {a.B * a.D, a.S * a.D, 1, a.S > 0 ? 1 : 0, a.B * a.D, a.B * M, M * a.D, M};
  if (!check_spans(env, &h, offs, spans, 8, "lixpContext")) return NULL;
  float *d = h.data;
  a.scale = d[v[2]];
  a.fill = a.S > 0 ? d[fill] : 0.0f;
  WITH_LIXP_SCRATCH(env, &a,
                    lab_lixp_context(d + v[0], a.S > 0 ? d + stale : NULL, d + v[4], d + v[5], d + v[6], d + v[7],
                                     &a, scratch));
  return NULL;
}

/*
 * lixpContextGrad(heap, dOut, dAttn, x, stale (< 0: none), attn, k, rn, scale, dx, dScale,
 *                 B, S, D) (lixpops.h)
 */
static napi_value LixpContextGrad(napi_env env, napi_callback_info info) {
  Heap h;
  int64_t v[13], flags[6];
  Lixp a;
  if (!get_heap_ints(env, info, 13, &h, v)) return NULL;
  memcpy(flags, v + 10, 3 * sizeof(int64_t));
  flags[3] = flags[4] = flags[5] = 0;
  if (!get_lixp(env, flags, &a, "lixpContextGrad")) return NULL;
  int64_t M = a.B + a.S, stale = a.S > 0 ? v[3] : 0;
  int64_t offs[10] = {v[0], v[1], v[2], stale, v[4], v[5], v[6], v[7], v[8], v[9]};
  int64_t spans[10] = {a.B * a.D, a.B * M, a.B * a.D, a.S * a.D, a.B * M, M * a.D, M, 1, a.B * a.D, 1};
  if (!check_spans(env, &h, offs, spans, 10, "lixpContextGrad")) return NULL;
  float *d = h.data;
  a.scale = d[v[7]];
  WITH_LIXP_SCRATCH(env, &a,
                    lab_lixp_context_grad(d + v[0], d + v[1], d + v[2], a.S > 0 ? d + stale : NULL, d + v[4],
                                          d + v[5], d + v[6], d + v[8], d + v[9], &a, scratch));
  return NULL;
}

/* Reads dense sizes N, Din, Dout (v[0..2]); throws naming `what` unless each is in [0, INT32_MAX]. */
static int dense_sizes_ok(napi_env env, const int64_t *v, const char *what) {
  for (int i = 0; i < 3; i++) {
    if (v[i] < 0 || v[i] > INT32_MAX) {
      char msg[96];
      snprintf(msg, sizeof msg, "lab-blas: bad %s sizes", what);
      napi_throw_range_error(env, NULL, msg);
      return 0;
    }
  }
  return 1;
}

enum { BLOCK_SIZES = 7, BLOCK_FWD_OFFS = 17, BLOCK_BWD_OFFS = 22 };

/*
 * Reads a block call's sizes [B, T, H, dh, hidden, eps, scale] (a Float64Array)
 * into s; throws naming `what` unless the counts are whole numbers in range.
 */
static int get_block_sizes(napi_env env, napi_value v, BlockSizes *s, const char *what) {
  const double *z;
  size_t n;
  if (!get_f64(env, v, &z, &n)) return 0;
  int ok = n == BLOCK_SIZES;
  for (int i = 0; ok && i < 5; i++) ok = z[i] >= (i == 2 ? 1 : 0) && z[i] <= INT32_MAX && z[i] == (double)(int64_t)z[i];
  if (ok) {
    *s = (BlockSizes){(int64_t)z[0], (int64_t)z[1], (int64_t)z[2], (int64_t)z[3], (int64_t)z[4], (float)z[5], (float)z[6]};
    ok = s->B * s->T <= INT32_MAX / 4 && s->H * s->dh <= INT32_MAX / 4 && s->B * s->T * (s->hidden + 8 * s->H * s->dh) <= INT64_MAX / 8;
  }
  if (!ok) {
    char msg[96];
    snprintf(msg, sizeof msg, "lab-blas: bad %s sizes", what);
    napi_throw_range_error(env, NULL, msg);
  }
  return ok;
}

/* Reads `n` float offsets (a Float64Array; -1 allowed where `may_be_none` says) into out; throws naming `what`. */
static int get_block_offsets(napi_env env, napi_value v, size_t n, int64_t *out, uint32_t may_be_none, const char *what) {
  const double *z;
  size_t len;
  if (!get_f64(env, v, &z, &len)) return 0;
  int ok = len == n;
  for (size_t i = 0; ok && i < n; i++) {
    ok = z[i] == (double)(int64_t)z[i] && (z[i] >= 0 || ((may_be_none >> i) & 1 && z[i] == -1)) && z[i] < 9007199254740992.0;
    out[i] = ok ? (int64_t)z[i] : 0;
  }
  if (!ok) {
    char msg[96];
    snprintf(msg, sizeof msg, "lab-blas: %s offsets must be %zu whole numbers >= 0", what, n);
    napi_throw_range_error(env, NULL, msg);
  }
  return ok;
}

/* blockSaved(sizes): floats of the saved buffer; blockGradScratch(sizes): floats of the backward's scratch (blockops.h) */
static napi_value block_size_call(napi_env env, napi_callback_info info, int grad) {
  napi_value argv[1], out;
  BlockSizes s;
  if (!get_args(env, info, 1, argv) || !get_block_sizes(env, argv[0], &s, "block")) return NULL;
  double n = (double)(grad ? block_grad_scratch(&s) : block_saved(&s).total);
  CHECK(env, napi_create_double(env, n, &out));
  return out;
}
static napi_value BlockSavedSize(napi_env env, napi_callback_info info) { return block_size_call(env, info, 0); }
static napi_value BlockGradScratch(napi_env env, napi_callback_info info) { return block_size_call(env, info, 1); }

/* block(heap, offsets (BlockFwd's 17, mask -1: none), sizes): one pre-LN transformer block forward (blockops.h) */
static napi_value Block(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  Heap h;
  BlockSizes s;
  int64_t o[BLOCK_FWD_OFFS];
  if (!get_args(env, info, 3, argv) || !get_heap(env, argv[0], &h) ||
      !get_block_offsets(env, argv[1], BLOCK_FWD_OFFS, o, 1u << 1, "block") ||
      !get_block_sizes(env, argv[2], &s, "block"))
    return NULL;
  int64_t N = s.B * s.T, D = s.H * s.dh, Hd = s.hidden;
  int64_t spans[BLOCK_FWD_OFFS] = {N * D, o[1] < 0 ? 0 : s.T * s.T, D, D, D * 3 * D, 3 * D, D * D, D,
                                   D, D, D * Hd, Hd, Hd * D, D, N * D, block_saved(&s).total, N * D};
  int has_mask = o[1] >= 0;
  if (!has_mask) o[1] = 0; /* checked as an empty span */
  if (!check_spans(env, &h, o, spans, BLOCK_FWD_OFFS, "block")) return NULL;
  if (!has_mask) o[1] = -1;
  if (N == 0 || D == 0) return NULL;
  Attn a = {s.B, s.T, s.H, s.dh, s.scale};
  float *scratch = alloc_or_throw(env, (size_t)(lab_threads * attn_scratch(&a)) * sizeof(float), 0);
  if (scratch == NULL) return NULL;
  BlockFwd p = {o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7], o[8], o[9], o[10], o[11], o[12], o[13], o[14], o[15], o[16]};
  SignalGuard guard = hold_signals();
  lab_block(h.data, &p, &s, scratch);
  release_signals(&guard);
  free(scratch);
  return NULL;
}

/* blockGrad(heap, offsets (BlockBwd's 22), sizes): its backward pass (blockops.h) */
static napi_value BlockGrad(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  Heap h;
  BlockSizes s;
  int64_t o[BLOCK_BWD_OFFS];
  if (!get_args(env, info, 3, argv) || !get_heap(env, argv[0], &h) ||
      !get_block_offsets(env, argv[1], BLOCK_BWD_OFFS, o, 0, "blockGrad") ||
      !get_block_sizes(env, argv[2], &s, "blockGrad"))
    return NULL;
  int64_t N = s.B * s.T, D = s.H * s.dh, Hd = s.hidden;
  int64_t spans[BLOCK_BWD_OFFS] = {N * D, block_saved(&s).total, D, D * 3 * D, D * D, D, D * Hd, Hd * D,
                                   N * D, D, D, D * 3 * D, 3 * D, D * D, D, D, D, D * Hd, Hd, Hd * D, D,
                                   block_grad_scratch(&s)};
  if (!check_spans(env, &h, o, spans, BLOCK_BWD_OFFS, "blockGrad")) return NULL;
  if (N == 0 || D == 0) return NULL;
  Attn a = {s.B, s.T, s.H, s.dh, s.scale};
  int64_t acc_len = (Hd > 3 * D ? Hd : 3 * D) + 1;
  float *scratch = alloc_or_throw(env, (size_t)(lab_threads * attn_scratch(&a)) * sizeof(float), 0);
  double *acc = scratch == NULL ? NULL : alloc_or_throw(env, (size_t)acc_len * sizeof(double), 1);
  if (acc != NULL) {
    BlockBwd p = {o[0],  o[1],  o[2],  o[3],  o[4],  o[5],  o[6],  o[7],  o[8],  o[9],  o[10],
                  o[11], o[12], o[13], o[14], o[15], o[16], o[17], o[18], o[19], o[20], o[21]};
    SignalGuard guard = hold_signals();
    lab_block_grad(h.data, &p, &s, acc, acc_len, scratch);
    release_signals(&guard);
  }
  free(acc);
  free(scratch);
  return NULL;
}

/* dense(heap, x, w, b (< 0: none), y, N, Din, Dout): y = x·w + b (denseops.h) */
static napi_value Dense(napi_env env, napi_callback_info info) {
  Heap h;
  int64_t v[7];
  if (!get_heap_ints(env, info, 7, &h, v) || !dense_sizes_ok(env, v + 4, "dense")) return NULL;
  int64_t n = v[4], din = v[5], dout = v[6];
  int64_t offs[4] = {v[0], v[1], v[2] < 0 ? 0 : v[2], v[3]};
  int64_t spans[4] = {n * din, din * dout, v[2] < 0 ? 0 : dout, n * dout};
  if (!check_spans(env, &h, offs, spans, 4, "dense")) return NULL;
  SignalGuard guard = hold_signals();
  lab_dense(h.data, v[0], v[1], v[2], v[3], n, din, dout);
  release_signals(&guard);
  return NULL;
}

/* denseGrad(heap, dy, x, w, dx, dw, db (< 0: none), N, Din, Dout) (denseops.h) */
static napi_value DenseGrad(napi_env env, napi_callback_info info) {
  Heap h;
  int64_t v[9];
  if (!get_heap_ints(env, info, 9, &h, v) || !dense_sizes_ok(env, v + 6, "denseGrad")) return NULL;
  int64_t n = v[6], din = v[7], dout = v[8];
  int64_t offs[6] = {v[0], v[1], v[2], v[3], v[4], v[5] < 0 ? 0 : v[5]};
  int64_t spans[6] = {n * dout, n * din, din * dout, n * din, din * dout, v[5] < 0 ? 0 : dout};
  if (!check_spans(env, &h, offs, spans, 6, "denseGrad")) return NULL;
  double *acc = v[5] < 0 ? NULL : alloc_or_throw(env, (size_t)(dout + 1) * sizeof(double), 1);
  if (v[5] >= 0 && acc == NULL) return NULL;
  SignalGuard guard = hold_signals();
  lab_dense_grad(h.data, v[0], v[1], v[2], v[3], v[4], v[5], n, din, dout, acc);
  release_signals(&guard);
  free(acc);
  return NULL;
}

/*
 * probeFit(heap, x, y, wt, lam, w, buf, z, g, grad, hp, S, E, C, J, steps) (probeops.h):
 * the probe's J fits; heap[hp] = lr, heap[hp + 1] = momentum.
 */
static napi_value ProbeFit(napi_env env, napi_callback_info info) {
  Heap h;
  int64_t v[15];
  if (!get_heap_ints(env, info, 15, &h, v)) return NULL;
  int64_t S = v[10], E = v[11], C = v[12], J = v[13], steps = v[14];
  if (S < 1 || E < 1 || C < 1 || J < 1 || steps < 0 || S > INT32_MAX || E > INT32_MAX || J * C > INT32_MAX ||
      S * J * C > INT32_MAX || E * J * C > INT32_MAX) {
    napi_throw_range_error(env, NULL, "lab-blas: bad probeFit sizes");
    return NULL;
  }
  int64_t JC = J * C;
  int64_t spans[10] = {S * E, S * C, S * J, JC, E * JC, E * JC, S * JC, S * JC, E * JC, 2};
  if (!check_spans(env, &h, v, spans, 10, "probeFit")) return NULL;
  SignalGuard guard = hold_signals();
  lab_probe_fit(h.data, v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], S, E, C, J, steps, h.data[v[9]],
                h.data[v[9] + 1]);
  release_signals(&guard);
  return NULL;
}

/* Throws naming `what` unless lo <= v <= hi (a size). */
static int size_in(napi_env env, int64_t v, int64_t lo, int64_t hi, const char *what) {
  if (v >= lo && v <= hi) return 1;
  char msg[96];
  snprintf(msg, sizeof msg, "lab-blas: bad %s sizes", what);
  napi_throw_range_error(env, NULL, msg);
  return 0;
}

/* sigmoidPairLoss(heap, cos, logScale, bias, loss, B): loss = SigLIP's pair loss of cos [B, B] (lossops.h) */
static napi_value SigmoidPairLoss(napi_env env, napi_callback_info info) {
  Heap h;
  int64_t v[5];
  /* B >= 1, B² <= INT32_MAX */
  if (!get_heap_ints(env, info, 5, &h, v) || !size_in(env, v[4], 1, 46340, "sigmoidPairLoss")) return NULL;
  int64_t B = v[4];
  int64_t offs[4] = {v[0], v[1], v[2], v[3]}, spans[4] = {B * B, 1, 1, 1};
  if (!check_spans(env, &h, offs, spans, 4, "sigmoidPairLoss")) return NULL;
  float *d = h.data;
  lab_sigmoid_pair_loss(d + v[0], d[v[1]], d[v[2]], d + v[3], B);
  return NULL;
}

/*
 * sigmoidPairLossGrad(heap, dy, cos, logScale, bias, dcos, dlogScale, dbias, B)
 * (lossops.h); dy, logScale, bias, dlogScale and dbias are one float each.
 */
static napi_value SigmoidPairLossGrad(napi_env env, napi_callback_info info) {
  Heap h;
  int64_t v[8];
  if (!get_heap_ints(env, info, 8, &h, v) || !size_in(env, v[7], 1, 46340, "sigmoidPairLossGrad")) return NULL;
  int64_t B = v[7];
  int64_t offs[7] = {v[0], v[1], v[2], v[3], v[4], v[5], v[6]}, spans[7] = {1, B * B, 1, 1, B * B, 1, 1};
  if (!check_spans(env, &h, offs, spans, 7, "sigmoidPairLossGrad")) return NULL;
  float *d = h.data;
  lab_sigmoid_pair_loss_grad(d[v[0]], d + v[1], d[v[2]], d[v[3]], d + v[4], d + v[5], d + v[6], B);
  return NULL;
}

/* l2Normalize(heap, x, y, r, rows, cols): unit rows y of x [rows, cols], r [rows] the inverse norms (lossops.h) */
static napi_value L2Normalize(napi_env env, napi_callback_info info) {
  Heap h;
  int64_t v[5];
  const char *what = "l2Normalize";
  if (!get_heap_ints(env, info, 5, &h, v) || !size_in(env, v[3], 0, INT32_MAX, what) ||
      !size_in(env, v[4], 0, INT32_MAX, what) || !size_in(env, v[3] * v[4], 0, INT32_MAX, what))
    return NULL;
  int64_t rows = v[3], cols = v[4];
  int64_t offs[3] = {v[0], v[1], v[2]}, spans[3] = {rows * cols, rows * cols, rows};
  if (!check_spans(env, &h, offs, spans, 3, "l2Normalize")) return NULL;
  lab_l2_normalize(h.data + v[0], h.data + v[1], h.data + v[2], rows, cols);
  return NULL;
}

/* l2NormalizeGrad(heap, dy, y, r, dx, rows, cols): dx = r·(dy − y·⟨dy, y⟩) per row (lossops.h) */
static napi_value L2NormalizeGrad(napi_env env, napi_callback_info info) {
  Heap h;
  int64_t v[6];
  const char *what = "l2NormalizeGrad";
  if (!get_heap_ints(env, info, 6, &h, v) || !size_in(env, v[4], 0, INT32_MAX, what) ||
      !size_in(env, v[5], 0, INT32_MAX, what) || !size_in(env, v[4] * v[5], 0, INT32_MAX, what))
    return NULL;
  int64_t rows = v[4], cols = v[5], n = rows * cols;
  int64_t offs[4] = {v[0], v[1], v[2], v[3]}, spans[4] = {n, n, rows, n};
  if (!check_spans(env, &h, offs, spans, 4, "l2NormalizeGrad")) return NULL;
  float *d = h.data;
  lab_l2_normalize_grad(d + v[0], d + v[1], d + v[2], d + v[3], rows, cols);
  return NULL;
}

static napi_value SetThreads(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int64_t n;
  if (!get_args(env, info, 1, argv) || !get_ints(env, argv, 1, &n)) return NULL;
  if (n < 1 || n > 1024) {
    napi_throw_range_error(env, NULL, "lab-blas: threads must be in [1, 1024]");
    return NULL;
  }
  openblas_set_num_threads((int)n);
#ifdef LAB_DNNL
  omp_set_num_threads((int)n);
#endif
#ifdef _OPENMP
  lab_threads = (int)n; /* the lab's own kernels split their work only when built with OpenMP */
#endif
  return NULL;
}

/* setGemm(name): "dnnl" or "openblas"; returns whether that library is available. */
static napi_value SetGemm(napi_env env, napi_callback_info info) {
  napi_value argv[1], out;
  char name[16] = {0};
  size_t len;
  if (!get_args(env, info, 1, argv)) return NULL;
  if (napi_get_value_string_utf8(env, argv[0], name, sizeof name, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "lab-blas: setGemm expects a string");
    return NULL;
  }
  int ok = 1;
  if (strcmp(name, "openblas") == 0) {
    gemm_impl = GEMM_OPENBLAS;
  } else if (strcmp(name, "dnnl") == 0) {
#ifdef LAB_DNNL
    gemm_impl = GEMM_DNNL;
#else
    ok = 0;
#endif
  } else {
    napi_throw_range_error(env, NULL, "lab-blas: setGemm expects 'dnnl' or 'openblas'");
    return NULL;
  }
  CHECK(env, napi_get_boolean(env, ok, &out));
  return out;
}

static napi_value GetThreads(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  CHECK(env, napi_create_int32(env, openblas_get_num_threads(), &out));
  return out;
}

static napi_value Version(napi_env env, napi_callback_info info) {
  (void)info;
  char buf[256];
  napi_value out;
#ifdef LAB_DNNL
  const dnnl_version_t *dv = dnnl_version();
  if (gemm_impl == GEMM_DNNL) {
    snprintf(buf, sizeof buf, "%s (oneDNN %d.%d.%d sgemm; OpenBLAS %s)", LAB_BLAS_VERSION, dv->major, dv->minor,
             dv->patch, openblas_get_config());
  } else
#endif
    snprintf(buf, sizeof buf, "%s (OpenBLAS %s)", LAB_BLAS_VERSION, openblas_get_config());
  CHECK(env, napi_create_string_utf8(env, buf, NAPI_AUTO_LENGTH, &out));
  return out;
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
      {"sgemm", NULL, Sgemm, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sumRows", NULL, SumRows, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sigmoid", NULL, Sigmoid, NULL, NULL, NULL, napi_enumerable, NULL},
      {"softmaxRows", NULL, SoftmaxRows, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sumCols", NULL, SumCols, NULL, NULL, NULL, napi_enumerable, NULL},
      {"copyStrided", NULL, CopyStrided, NULL, NULL, NULL, napi_enumerable, NULL},
      {"adamw", NULL, AdamWUpdate, NULL, NULL, NULL, napi_enumerable, NULL},
      {"adamwMulti", NULL, AdamWMulti, NULL, NULL, NULL, napi_enumerable, NULL},
      {"quickGelu", NULL, QuickGelu, NULL, NULL, NULL, napi_enumerable, NULL},
      {"quickGeluGrad", NULL, QuickGeluGrad, NULL, NULL, NULL, napi_enumerable, NULL},
      {"layerNorm", NULL, LayerNorm, NULL, NULL, NULL, napi_enumerable, NULL},
      {"layerNormGrad", NULL, LayerNormGrad, NULL, NULL, NULL, napi_enumerable, NULL},
      {"attention", NULL, Attention, NULL, NULL, NULL, napi_enumerable, NULL},
      {"attentionGrad", NULL, AttentionGrad, NULL, NULL, NULL, napi_enumerable, NULL},
      {"attentionPool", NULL, AttentionPool, NULL, NULL, NULL, napi_enumerable, NULL},
      {"attentionPoolGrad", NULL, AttentionPoolGrad, NULL, NULL, NULL, napi_enumerable, NULL},
      {"addSame", NULL, AddSame, NULL, NULL, NULL, napi_enumerable, NULL},
      {"embed", NULL, Embed, NULL, NULL, NULL, napi_enumerable, NULL},
      {"embedGrad", NULL, EmbedGrad, NULL, NULL, NULL, napi_enumerable, NULL},
      {"llipMix", NULL, LlipMixFwd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"llipMixGrad", NULL, LlipMixGrad, NULL, NULL, NULL, napi_enumerable, NULL},
      {"rowEntropy", NULL, RowEntropy, NULL, NULL, NULL, napi_enumerable, NULL},
      {"lixpContext", NULL, LixpContext, NULL, NULL, NULL, napi_enumerable, NULL},
      {"lixpContextGrad", NULL, LixpContextGrad, NULL, NULL, NULL, napi_enumerable, NULL},
      {"dense", NULL, Dense, NULL, NULL, NULL, napi_enumerable, NULL},
      {"denseGrad", NULL, DenseGrad, NULL, NULL, NULL, napi_enumerable, NULL},
      {"block", NULL, Block, NULL, NULL, NULL, napi_enumerable, NULL},
      {"blockGrad", NULL, BlockGrad, NULL, NULL, NULL, napi_enumerable, NULL},
      {"blockSaved", NULL, BlockSavedSize, NULL, NULL, NULL, napi_enumerable, NULL},
      {"blockGradScratch", NULL, BlockGradScratch, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sigmoidPairLoss", NULL, SigmoidPairLoss, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sigmoidPairLossGrad", NULL, SigmoidPairLossGrad, NULL, NULL, NULL, napi_enumerable, NULL},
      {"l2Normalize", NULL, L2Normalize, NULL, NULL, NULL, napi_enumerable, NULL},
      {"l2NormalizeGrad", NULL, L2NormalizeGrad, NULL, NULL, NULL, napi_enumerable, NULL},
      {"probeFit", NULL, ProbeFit, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setGemm", NULL, SetGemm, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setThreads", NULL, SetThreads, NULL, NULL, NULL, napi_enumerable, NULL},
      {"getThreads", NULL, GetThreads, NULL, NULL, NULL, napi_enumerable, NULL},
      {"version", NULL, Version, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  CHECK(env, napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}
