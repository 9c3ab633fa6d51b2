/*
 * Matmul kernels for the TF.js wasm backend (BatchMatMul, _FusedMatMul),
 * included by addon.c (the build compiles that one file).
 *
 * Why: stock wasm matmul runs at a few GFLOP/s and its transposed path (every
 * weight gradient goes through A^T B) is ~70x slower than OpenBLAS. Here: the
 * choice of sgemm library (oneDNN when built in, else OpenBLAS), a batch of
 * row-major sgemms with an optional broadcast bias and relu, and the signal
 * guard oneDNN's JIT kernel needs. Offsets are in floats into the heap;
 * the caller checks every operand lies inside it.
 */
#include <cblas.h>
#ifdef LAB_DNNL
#include <dnnl.h>
#include <pthread.h>
#include <signal.h>
#endif
#include <stdint.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/*
 * Threads for the lab's own kernels as well as the matmuls (setThreads). The
 * kernels split their work with OpenMP when the addon is built with it (with
 * oneDNN), always so that each output element is computed by one thread in the
 * same order as with one: the bits never depend on the thread count.
 */
static int lab_threads = 1;

/* Floats a kernel must touch before a second thread pays for its wake-up (~10 µs). */
#define LAB_PAR_MIN 65536

/* Threads to split a kernel touching `work` floats over. */
static inline int lab_par(int64_t work) { return work >= LAB_PAR_MIN ? lab_threads : 1; }

/* This thread's index inside a parallel region (0 outside one). */
static inline int lab_thread_id(void) {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

/*
 * Which sgemm runs the matmuls. oneDNN (built in when dnnl.h was found) picks
 * AVX-512 kernels itself; Debian's OpenBLAS runs AVX2 ones here (the
 * environment pins OPENBLAS_CORETYPE=Haswell), about half as fast on this CPU.
 */
enum { GEMM_OPENBLAS, GEMM_DNNL };
#ifdef LAB_DNNL
static int gemm_impl = GEMM_DNNL;
#else
static int gemm_impl = GEMM_OPENBLAS;
#endif

/*
 * C[i] = act(op(A[i]) op(B[i]) + bias[i]) for i < batch, offsets and strides
 * in floats; a stride of 0 broadcasts an operand over the batch, bias < 0
 * means no bias, act 0 linear, 1 relu.
 */
typedef struct {
  int64_t ta, tb, batch, m, n, k, a, sa, b, sb, c, bias, bias_sb, bias_sm, bias_sn, act;
} Gemm;

/* Seeds C with the broadcast bias so sgemm can accumulate onto it (beta = 1). */
static void fill_bias(float *c, const float *bias, int64_t rows, const Gemm *g) {
  for (int64_t r = 0; r < rows; r++) {
    float *row = c + r * g->n;
    const float *br = bias + r * g->bias_sm;
    if (g->bias_sn == 1) {
      memcpy(row, br, (size_t)g->n * sizeof(float));
    } else {
      for (int64_t j = 0; j < g->n; j++) row[j] = br[j * g->bias_sn];
    }
  }
}

static void relu(float *c, int64_t n) {
  for (int64_t i = 0; i < n; i++) c[i] = c[i] > 0.0f ? c[i] : 0.0f;
}

/* C[m, n] = op(A) op(B) + beta·C, all row-major, through the chosen library. */
static void row_major_sgemm(int ta, int tb, int64_t m, int64_t n, int64_t k, const float *a, int64_t lda,
                            const float *b, int64_t ldb, float beta, float *c) {
#ifdef LAB_DNNL
  if (gemm_impl == GEMM_DNNL &&
      dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, 1.0f, a, lda, b, ldb, beta, c, n) == dnnl_success) {
    return;
  }
#endif
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, (int)m, (int)n, (int)k,
              1.0f, a, (int)lda, b, (int)ldb, beta, c, (int)n);
}

/*
 * oneDNN before 3.11.2 corrupts the heap when a signal arrives while its
 * AVX-512 sgemm JIT kernel runs (it points the stack register into the heap;
 * oneDNN issue #4845). Node takes signals all the time (SIGCHLD when a child
 * process exits, SIGINT from a notebook's interrupt), and the bench crashed
 * with "corrupted size vs. prev_size" right after its PyTorch child exited.
 * So signals are held back on this thread for the duration of the matmuls
 * (two syscalls per kernel call) and delivered right after. OpenMP workers,
 * created inside the first parallel region (a matmul's or one of the lab's
 * kernels', which hold signals too when they may split: hold_signals_par),
 * inherit the blocked mask.
 */
typedef struct {
  int active;
#ifdef LAB_DNNL
  sigset_t saved;
#endif
} SignalGuard;

/* Blocks every signal on this thread when `when` holds (LAB_DNNL builds: the only ones with OpenMP). */
static SignalGuard block_signals_if(int when) {
  SignalGuard guard = {0};
#ifdef LAB_DNNL
  if (when) {
    sigset_t all;
    sigfillset(&all);
    guard.active = pthread_sigmask(SIG_BLOCK, &all, &guard.saved) == 0;
  }
#else
  (void)when;
#endif
  return guard;
}

/* Around the matmuls (and kernels that call them): OpenMP workers are born inside a region, so block there too. */
static SignalGuard hold_signals(void) { return block_signals_if(gemm_impl == GEMM_DNNL || lab_threads > 1); }

/*
 * The same for the lab's own kernels, which never run oneDNN's JIT code: only
 * when they may split their work, so that the OpenMP workers they wake (or
 * create) are never ones a signal can land on. One thread: no syscalls.
 */
static SignalGuard hold_signals_par(void) { return block_signals_if(lab_threads > 1); }

static void release_signals(SignalGuard *guard) {
#ifdef LAB_DNNL
  if (guard->active) pthread_sigmask(SIG_SETMASK, &guard->saved, NULL);
#else
  (void)guard;
#endif
}

/* Runs g on the heap; the caller has checked its sizes and that every operand lies inside. */
static void run_gemm(float *heap, const Gemm *g) {
  int64_t m = g->m, batch = g->batch;
  /* A shared B with a plain A is one tall matmul: [batch*M, K] x [K, N]. */
  int shared_bias = g->bias < 0 || (g->bias_sb == 0 && g->bias_sm == 0);
  if (batch > 1 && g->sb == 0 && !g->ta && shared_bias && g->sa == m * g->k) {
    m *= batch;
    batch = 1;
  }
  int64_t lda = g->ta ? m : g->k, ldb = g->tb ? g->k : g->n;
  for (int64_t i = 0; i < batch; i++) {
    float *c = heap + g->c + i * m * g->n;
    float beta = 0.0f;
    if (g->bias >= 0) {
      fill_bias(c, heap + g->bias + i * g->bias_sb, m, g);
      beta = 1.0f;
    }
    if (g->k == 0) {
      if (beta == 0.0f) memset(c, 0, (size_t)(m * g->n) * sizeof(float));
      continue;
    }
    row_major_sgemm(g->ta, g->tb, m, g->n, g->k, heap + g->a + i * g->sa, lda > 0 ? lda : 1,
                    heap + g->b + i * g->sb, ldb > 0 ? ldb : 1, beta, c);
  }
  if (g->act == 1) relu(heap + g->c, g->batch * g->m * g->n);
}
