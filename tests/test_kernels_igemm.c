/* The igemm micro-kernel of every ISA this machine runs against the C reference of the contract
 * (ck_f32_igemm_ref) on full and edge tiles: mr < MR, nr < NR, kc = 1, odd kc, one and several
 * taps, padding taps at the zero row, a_offset that wraps around 2^64. Buffers are sized exactly
 * (the sanitizers catch any over-read) and the output has guard values around and between rows. */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ck_test.h"
#include "igemm.h"

#define GUARD 12345.678f

typedef struct {
  size_t MR, NR, mr, nr, kc, ks;
} shape;

/* Inputs of one kernel call: rows in one buffer `in` (the last row ends the buffer), positions
 * relative to a base, weights packed for NR, an output with a 3-float gap between rows. */
typedef struct {
  float *in, *zero, *w, *c;
  const float **a;
  size_t a_offset, cm_stride, nc, nin;
  double *scale; /* sum |a*w| per output, for the error bound */
} call;

static void make_call(const shape *s, uint64_t *rng, int nan_row, call *k) {
  const size_t nrows = s->mr * s->ks;
  k->nin = nrows * s->kc;
  k->in = malloc(k->nin * sizeof(float));
  ckt_fill(k->in, k->nin, rng);
  k->zero = calloc(s->kc, sizeof(float));
  const size_t wf = ck_igemm_block_floats(s->NR, s->ks, s->kc);
  k->w = malloc(wf * sizeof(float));
  ckt_fill(k->w, wf, rng);
  for (size_t j = s->nr; j < s->NR; j++) { /* the packer zero-pads columns j >= nr */
    k->w[j] = 0;
    for (size_t t = 0; t < s->ks * s->kc; t++) k->w[s->NR + t * s->NR + j] = 0;
  }
  if (nan_row >= 0) k->in[(size_t)nan_row * s->kc] = NAN;
  /* A base that makes a_offset "negative" (a wrap modulo 2^64) whenever the rows lie below the
   * zero row: the kernel must sum in uintptr_t. */
  const uintptr_t base = (uintptr_t)k->zero + s->kc * sizeof(float);
  k->a_offset = (uintptr_t)k->in - base;
  k->a = malloc(s->ks * s->MR * sizeof(*k->a));
  for (size_t t = 0; t < s->ks; t++) {
    for (size_t i = 0; i < s->MR; i++) {
      const float **e = &k->a[t * s->MR + i];
      if (i >= s->mr)
        *e = (const float *)(uintptr_t)8; /* must never be dereferenced */
      else if ((t * 7 + i * 3) % 5 == 4)
        *e = k->zero; /* a padding tap */
      else /* rows in reverse order, each used once: tap 0 of pixel 0 reads the last row */
        *e = ck_indirection_ptr(base, (nrows - 1 - (t * s->mr + i)) * s->kc * sizeof(float));
    }
  }
  k->cm_stride = s->nr + 3;
  k->nc = (s->mr - 1) * k->cm_stride + s->nr;
  k->c = malloc(k->nc * sizeof(float));
  for (size_t i = 0; i < k->nc; i++) k->c[i] = GUARD;
  k->scale = calloc(s->mr * s->nr, sizeof(double));
  for (size_t i = 0; i < s->mr; i++)
    for (size_t j = 0; j < s->nr; j++) {
      double sum = fabs(k->w[j]);
      for (size_t t = 0; t < s->ks; t++) {
        const float *r = k->a[t * s->MR + i];
        if (r != k->zero) r = (const float *)((uintptr_t)r + k->a_offset);
        for (size_t kk = 0; kk < s->kc; kk++)
          sum += fabs((double)r[kk] * k->w[s->NR + (t * s->kc + kk) * s->NR + j]);
      }
      k->scale[i * s->nr + j] = sum;
    }
}

static void free_call(call *k) {
  free(k->in), free(k->zero), free(k->w), free(k->c), free((void *)k->a), free(k->scale);
}

/* Runs the kernel of table t and the reference on the same call; checks the bound and guards. */
static void check_shape(const ck_kernels *t, const shape *s, const ck_clamp_params *p, int nan_row,
                        uint64_t seed) {
  uint64_t rng = seed;
  call k, r;
  make_call(s, &rng, nan_row, &k);
  rng = seed;
  make_call(s, &rng, nan_row, &r);
  t->igemm(s->mr, s->nr, s->kc, s->ks, k.a, k.a_offset, k.zero, k.w, k.c, k.cm_stride, p);
  ck_f32_igemm_ref(s->MR, s->NR, s->mr, s->nr, s->kc, s->ks, r.a, r.a_offset, r.zero, r.w, r.c,
                   r.cm_stride, p);
  for (size_t i = 0; i < k.nc; i++) {
    const size_t row = i / k.cm_stride, col = i % k.cm_stride;
    const char *where = t->igemm_name;
    if (col >= s->nr) {
      cr_assert(k.c[i] == GUARD, "%s mr %zu nr %zu kc %zu ks %zu: wrote the gap at %zu", where,
                s->mr, s->nr, s->kc, s->ks, i);
      continue;
    }
    if (isnan(r.c[i])) {
      cr_assert(isnan(k.c[i]), "%s: output (%zu, %zu) is %g, reference NaN", where, row, col,
                k.c[i]);
      continue;
    }
    const double tol = (double)(s->kc * s->ks + 2) * FLT_EPSILON * k.scale[row * s->nr + col];
    cr_assert(fabs((double)k.c[i] - r.c[i]) <= tol,
              "%s mr %zu nr %zu kc %zu ks %zu: output (%zu, %zu) is %.9g, reference %.9g", where,
              s->mr, s->nr, s->kc, s->ks, row, col, k.c[i], r.c[i]);
    if (t->isa == CK_ISA_GENERIC)
      cr_assert(memcmp(&k.c[i], &r.c[i], sizeof(float)) == 0,
                "the generic kernel differs from the reference at (%zu, %zu)", row, col);
  }
  free_call(&k);
  free_call(&r);
}

static const ck_kernels *tables[4];
static int ntables;

static void load_tables(void) {
  ck_isa isas[4];
  int n = ckt_available_isas(isas, 4);
  ntables = 0;
  for (int i = 0; i < n; i++) {
    const ck_kernels *t = ck_kernels_for(isas[i]);
    if (t != NULL && t->igemm != NULL) tables[ntables++] = t;
  }
}

Test(kernels_igemm, every_isa_has_an_igemm_kernel) {
  load_tables();
  ck_isa isas[4];
  cr_assert_eq(ntables, ckt_available_isas(isas, 4));
}

Test(kernels_igemm, full_and_edge_tiles_against_the_reference) {
  load_tables();
  const ck_clamp_params none = {-INFINITY, INFINITY};
  for (int ti = 0; ti < ntables; ti++) {
    const ck_kernels *t = tables[ti];
    const size_t MR = (size_t)t->igemm_mr, NR = (size_t)t->igemm_nr;
    /* Every row count: a kernel may run partial tiles through bodies compiled for fewer rows. */
    size_t mrs[32];
    for (size_t i = 0; i < MR; i++) mrs[i] = MR - i;
    const size_t nrs[] = {NR, 1, NR - 1, NR / 2, NR / 2 + 1};
    const size_t kcs[] = {1, 2, 7, 16, 33};
    const size_t kss[] = {1, 2, 9};
    uint64_t seed = 1;
    for (size_t a = 0; a < MR; a++)
      for (size_t b = 0; b < sizeof nrs / sizeof *nrs; b++)
        for (size_t c = 0; c < sizeof kcs / sizeof *kcs; c++)
          for (size_t d = 0; d < sizeof kss / sizeof *kss; d++) {
            if (nrs[b] == 0) continue;
            const shape s = {MR, NR, mrs[a], nrs[b], kcs[c], kss[d]};
            check_shape(t, &s, &none, -1, seed++);
          }
  }
}

Test(kernels_igemm, clamp_and_nan) {
  load_tables();
  const ck_clamp_params clamp = {-0.25f, 0.5f};
  for (int ti = 0; ti < ntables; ti++) {
    const ck_kernels *t = tables[ti];
    const size_t MR = (size_t)t->igemm_mr, NR = (size_t)t->igemm_nr;
    const shape full = {MR, NR, MR, NR, 5, 3};
    check_shape(t, &full, &clamp, -1, 77);
    /* A NaN in one input row makes NaN of every output that reads it, clamped or not. */
    const shape edge = {MR, NR, MR > 2 ? MR - 2 : 1, NR - 3, 5, 3};
    check_shape(t, &edge, &clamp, 0, 78);
  }
}

/* A pixel's outputs do not depend on the tile it is computed in: rows of a partial tile and
 * columns of a partial block have the bits of the full tile. */
Test(kernels_igemm, same_bits_in_full_and_partial_tiles) {
  load_tables();
  const ck_clamp_params none = {-INFINITY, INFINITY};
  for (int ti = 0; ti < ntables; ti++) {
    const ck_kernels *t = tables[ti];
    const size_t MR = (size_t)t->igemm_mr, NR = (size_t)t->igemm_nr, kc = 13, ks = 4;
    uint64_t rng = 5;
    call full;
    const shape sf = {MR, NR, MR, NR, kc, ks};
    make_call(&sf, &rng, -1, &full);
    t->igemm(MR, NR, kc, ks, full.a, full.a_offset, full.zero, full.w, full.c, full.cm_stride,
             &none);
    for (size_t mr = 1; mr < MR; mr++) {
      const size_t nr = NR - 1;
      float *part = malloc(((mr - 1) * full.cm_stride + nr) * sizeof(float));
      t->igemm(mr, nr, kc, ks, full.a, full.a_offset, full.zero, full.w, part, full.cm_stride,
               &none);
      for (size_t i = 0; i < mr; i++)
        for (size_t j = 0; j < nr; j++)
          cr_assert(memcmp(&part[i * full.cm_stride + j], &full.c[i * full.cm_stride + j],
                           sizeof(float)) == 0,
                    "%s: (%zu, %zu) differs between a %zux%zu and a full tile", t->igemm_name, i, j,
                    mr, nr);
      free(part);
    }
    free_call(&full);
  }
}
