/*
 * A whole pre-LN transformer block, forward and backward, one call each way;
 * included by addon.c after rowops.h, fusedops.h, attention.h and denseops.h.
 *
 *   h = x + proj(attention(qkv(LN1(x))))            (lib/model/layers.ts `block`)
 *   out = h + fc2(quickGelu(fc1(LN2(h))))
 *
 * Why: as one kernel per op a block is ten kernel calls forward and about
 * twenty backward (grads, the residual gradients' sums, the clones TF.js makes
 * of every saved tensor), each paying the engine's fixed cost in JS on one
 * core, and OpenMP's workers fall asleep in the gaps between them. Here each
 * way is one call running the same kernels in the same order on the same
 * operands, so every output has the bits of the op-by-op path (tested).
 *
 * What the backward pass needs is written by the forward pass into one saved
 * buffer (layout: BlockSaved) instead of eleven tensors.
 */
#include <stdint.h>
#include <string.h>

/* Sizes of one block call: N = B·T rows, D = H·dh, hidden = the MLP's width. */
typedef struct {
  int64_t B, T, H, dh, hidden;
  float eps, scale;
} BlockSizes;

/* Float offsets inside the saved buffer, each part starting on a 64-byte boundary. */
typedef struct {
  int64_t xhat1, rstd1, y1, qkv, probs, o, xhat2, rstd2, y2, f, g, total;
} BlockSaved;

static BlockSaved block_saved(const BlockSizes *s) {
  int64_t N = s->B * s->T, D = s->H * s->dh, at = 0;
  BlockSaved b;
#define BLOCK_PART(field, n) (b.field = at, at += ((n) + 15) / 16 * 16)
  BLOCK_PART(xhat1, N * D);
  BLOCK_PART(rstd1, N);
  BLOCK_PART(y1, N * D);
  BLOCK_PART(qkv, N * 3 * D);
  BLOCK_PART(probs, s->B * s->H * s->T * s->T);
  BLOCK_PART(o, N * D);
  BLOCK_PART(xhat2, N * D);
  BLOCK_PART(rstd2, N);
  BLOCK_PART(y2, N * D);
  BLOCK_PART(f, N * s->hidden);
  BLOCK_PART(g, N * s->hidden);
#undef BLOCK_PART
  b.total = at;
  return b;
}

/* Floats of heap scratch the backward pass needs: dg (then df), dqkv, and two [N, D] buffers. */
static int64_t block_grad_scratch(const BlockSizes *s) {
  int64_t N = s->B * s->T, D = s->H * s->dh;
  return N * s->hidden + N * 3 * D + 2 * N * D;
}

/* The forward pass's operands (float offsets into the heap; mask < 0: none). */
typedef struct {
  int64_t x, mask, ln1g, ln1b, wqkv, bqkv, wproj, bproj, ln2g, ln2b, w1, b1, w2, b2;
  int64_t out, saved, tmp; /* tmp: [N, D] of scratch */
} BlockFwd;

/* The backward pass's operands; scratch holds block_grad_scratch floats. */
typedef struct {
  int64_t dout, saved, ln1g, wqkv, wproj, ln2g, w1, w2;
  int64_t dx, dln1g, dln1b, dwqkv, dbqkv, dwproj, dbproj, dln2g, dln2b, dw1, db1, dw2, db2;
  int64_t scratch;
} BlockBwd;

/* attn_scratch: per-thread scratch of the attention kernels (lab_threads of them). */
static void lab_block(float *d, const BlockFwd *p, const BlockSizes *s, float *attn_scratch) {
  int64_t N = s->B * s->T, D = s->H * s->dh, Hd = s->hidden;
  BlockSaved sv = block_saved(s);
  float *saved = d + p->saved;
  Attn a = {s->B, s->T, s->H, s->dh, s->scale};
  lab_layer_norm(d + p->x, d + p->ln1g, d + p->ln1b, saved + sv.y1, saved + sv.xhat1, saved + sv.rstd1, N, D,
                 s->eps);
  lab_dense(d, p->saved + sv.y1, p->wqkv, p->bqkv, p->saved + sv.qkv, N, D, 3 * D);
  lab_attention(saved + sv.qkv, p->mask < 0 ? NULL : d + p->mask, saved + sv.o, saved + sv.probs, &a, attn_scratch);
  lab_dense(d, p->saved + sv.o, p->wproj, p->bproj, p->tmp, N, D, D);
  lab_add(d + p->x, d + p->tmp, d + p->out, N * D); /* h = x + attention, kept in out */
  lab_layer_norm(d + p->out, d + p->ln2g, d + p->ln2b, saved + sv.y2, saved + sv.xhat2, saved + sv.rstd2, N, D,
                 s->eps);
  lab_dense(d, p->saved + sv.y2, p->w1, p->b1, p->saved + sv.f, N, D, Hd);
  lab_quick_gelu(saved + sv.f, saved + sv.g, N * Hd);
  lab_dense(d, p->saved + sv.g, p->w2, p->b2, p->tmp, N, Hd, D);
  lab_add(d + p->out, d + p->tmp, d + p->out, N * D); /* out = h + MLP */
}

/*
 * acc: max(hidden, 3D, 2D) + 1 doubles (the dense layers' bias sums, zeroed
 * here before each, and layer norm's); attn_scratch as for lab_block.
 */
static void lab_block_grad(float *d, const BlockBwd *p, const BlockSizes *s, double *acc, int64_t acc_len,
                           float *attn_scratch) {
  int64_t N = s->B * s->T, D = s->H * s->dh, Hd = s->hidden;
  BlockSaved sv = block_saved(s);
  int64_t sd = p->saved, dhd = p->scratch, dqkv = dhd + N * Hd, ta = dqkv + N * 3 * D, tb = ta + N * D;
  Attn a = {s->B, s->T, s->H, s->dh, s->scale};
  size_t acc_bytes = (size_t)acc_len * sizeof(double);
  /* MLP: fc2, GELU (in place), fc1, LN2 */
  memset(acc, 0, acc_bytes);
  lab_dense_grad(d, p->dout, sd + sv.g, p->w2, dhd, p->dw2, p->db2, N, Hd, D, acc);
  lab_quick_gelu_grad(d + dhd, d + sd + sv.f, d + dhd, N * Hd);
  memset(acc, 0, acc_bytes);
  lab_dense_grad(d, dhd, sd + sv.y2, p->w1, ta, p->dw1, p->db1, N, D, Hd, acc);
  lab_layer_norm_grad(d + ta, d + sd + sv.xhat2, d + sd + sv.rstd2, d + p->ln2g, d + tb, d + p->dln2g,
                      d + p->dln2b, N, D, acc);
  lab_add(d + tb, d + p->dout, d + tb, N * D); /* dh: LN2's gradient + the residual's */
  /* attention: proj, the heads, qkv, LN1 */
  memset(acc, 0, acc_bytes);
  lab_dense_grad(d, tb, sd + sv.o, p->wproj, ta, p->dwproj, p->dbproj, N, D, D, acc);
  lab_attention_grad(d + ta, d + sd + sv.qkv, d + sd + sv.probs, d + dqkv, &a, attn_scratch);
  memset(acc, 0, acc_bytes);
  lab_dense_grad(d, dqkv, sd + sv.y1, p->wqkv, ta, p->dwqkv, p->dbqkv, N, D, 3 * D, acc);
  lab_layer_norm_grad(d + ta, d + sd + sv.xhat1, d + sd + sv.rstd1, d + p->ln1g, d + p->dx, d + p->dln1g,
                      d + p->dln1b, N, D, acc);
  lab_add(d + p->dx, d + tb, d + p->dx, N * D); /* dx: LN1's gradient + the residual's */
}
