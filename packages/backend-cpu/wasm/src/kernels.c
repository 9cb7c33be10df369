/*
 * The WebAssembly SIMD128 tier: the portable drivers of ../../native/portable with SIMD128
 * microkernels, exported with pointer (i32 offset) arguments into the module's own memory. Built by
 * scripts/build-wasm.mjs with clang --target=wasm32 -msimd128 -mbulk-memory -O3 -nostdlib
 * -ffp-contract=off; the .wasm is checked in so installs never need clang. Single-threaded.
 */
#include <wasm_simd128.h>
#include "../../native/portable/qf_portable.h"

#define EXPORT(name) __attribute__((export_name(#name)))

/* ---- fp32 microkernel: 4 rows x 16 columns, as two 8-column halves (11 live vectors) ----------- */

static void sgemm_wasm(int32_t mr, int32_t kc, const float* A, int32_t amr, const float* B, int32_t pstride, float* C, int32_t ldc,
                       int32_t nvalid, int32_t flags, const qf_epi_f32* e, int32_t row0, int32_t col0) {
  (void)pstride;
  float tile[4 * 16];
  for (int h = 0; h < 2; h++) {
    if (h * 8 >= nvalid) break;
    v128_t c00 = wasm_f32x4_splat(0.0f), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
    const float* b = B + h * 8;
    for (int32_t k = 0; k < kc; k++) {
      v128_t b0 = wasm_v128_load(b + (size_t)k * 16), b1 = wasm_v128_load(b + (size_t)k * 16 + 4);
      const float* ak = A + (size_t)k * amr; /* packed: 4 rows of one k are adjacent */
      v128_t x0 = wasm_f32x4_splat(ak[0]), x1 = wasm_f32x4_splat(ak[1]), x2 = wasm_f32x4_splat(ak[2]), x3 = wasm_f32x4_splat(ak[3]);
      c00 = wasm_f32x4_add(c00, wasm_f32x4_mul(x0, b0)); c01 = wasm_f32x4_add(c01, wasm_f32x4_mul(x0, b1));
      c10 = wasm_f32x4_add(c10, wasm_f32x4_mul(x1, b0)); c11 = wasm_f32x4_add(c11, wasm_f32x4_mul(x1, b1));
      c20 = wasm_f32x4_add(c20, wasm_f32x4_mul(x2, b0)); c21 = wasm_f32x4_add(c21, wasm_f32x4_mul(x2, b1));
      c30 = wasm_f32x4_add(c30, wasm_f32x4_mul(x3, b0)); c31 = wasm_f32x4_add(c31, wasm_f32x4_mul(x3, b1));
    }
    wasm_v128_store(tile + 0 * 16 + h * 8, c00); wasm_v128_store(tile + 0 * 16 + h * 8 + 4, c01);
    wasm_v128_store(tile + 1 * 16 + h * 8, c10); wasm_v128_store(tile + 1 * 16 + h * 8 + 4, c11);
    wasm_v128_store(tile + 2 * 16 + h * 8, c20); wasm_v128_store(tile + 2 * 16 + h * 8 + 4, c21);
    wasm_v128_store(tile + 3 * 16 + h * 8, c30); wasm_v128_store(tile + 3 * 16 + h * 8 + 4, c31);
  }
  for (int32_t i = 0; i < mr; i++) {
    float* c = C + (size_t)i * ldc;
    const float* t = tile + i * 16;
    if (nvalid == 16) {
      for (int q = 0; q < 4; q++) {
        v128_t v = wasm_v128_load(t + 4 * q);
        if (flags & QF_ACCUM) v = wasm_f32x4_add(wasm_v128_load(c + 4 * q), v);
        wasm_v128_store(c + 4 * q, v);
      }
    } else {
      for (int32_t j = 0; j < nvalid; j++) c[j] = (flags & QF_ACCUM) ? c[j] + t[j] : t[j];
    }
  }
  if (flags & QF_EPI) qf_epi_f32_apply(e, C, ldc, row0, col0, mr, nvalid);
}

static const qf_sgemm_kernel SGEMM_WASM = {4, 16, sgemm_wasm, sgemm_wasm};

/* ---- int8 microkernel: 4 rows x 16 columns, exact via i16 widening and i32x4.dot_i16x8_s ------------ */

static inline void qgemm_wasm(int32_t mr, int32_t k4, const uint8_t* A, int32_t lda, const uint8_t* B, int32_t* T, int32_t ldt, int a_signed) {
  const uint8_t* a[4] = {A, A + (mr > 1 ? lda : 0), A + (mr > 2 ? 2 * lda : 0), A + (mr > 3 ? 3 * lda : 0)};
  for (int cgp = 0; cgp < 4; cgp++) { /* 4 columns per pass: one v128 of B per k-quad */
    v128_t acc[4][2];
    for (int r = 0; r < 4; r++) acc[r][0] = acc[r][1] = wasm_i32x4_splat(0);
    for (int32_t q = 0; q < k4; q++) {
      v128_t braw = wasm_v128_load(B + (size_t)q * 64 + cgp * 16);
      v128_t blo = a_signed ? wasm_u16x8_extend_low_u8x16(braw) : wasm_i16x8_extend_low_i8x16(braw);
      v128_t bhi = a_signed ? wasm_u16x8_extend_high_u8x16(braw) : wasm_i16x8_extend_high_i8x16(braw);
      for (int r = 0; r < 4; r++) {
        uint32_t a4;
        __builtin_memcpy(&a4, a[r] + (size_t)q * 4, 4);
        v128_t a8 = wasm_i32x4_splat((int32_t)a4);
        v128_t a16 = a_signed ? wasm_i16x8_extend_low_i8x16(a8) : wasm_u16x8_extend_low_u8x16(a8);
        acc[r][0] = wasm_i32x4_add(acc[r][0], wasm_i32x4_dot_i16x8(a16, blo));
        acc[r][1] = wasm_i32x4_add(acc[r][1], wasm_i32x4_dot_i16x8(a16, bhi));
      }
    }
    for (int r = 0; r < mr; r++) {
      /* lanes: (c0 k01, c0 k23, c1 k01, c1 k23) and the same for c2, c3 */
      v128_t s0 = wasm_i32x4_add(wasm_i32x4_shuffle(acc[r][0], acc[r][1], 0, 2, 4, 6), wasm_i32x4_shuffle(acc[r][0], acc[r][1], 1, 3, 5, 7));
      wasm_v128_store(T + (size_t)r * ldt + cgp * 4, s0);
    }
  }
}

static void qgemm_wasm_u8(int32_t mr, int32_t k4, const uint8_t* A, int32_t lda, const uint8_t* B, int32_t pstride, int32_t* T, int32_t ldt) {
  (void)pstride;
  qgemm_wasm(mr, k4, A, lda, B, T, ldt, 0);
}
static void qgemm_wasm_s8(int32_t mr, int32_t k4, const uint8_t* A, int32_t lda, const uint8_t* B, int32_t pstride, int32_t* T, int32_t ldt) {
  (void)pstride;
  qgemm_wasm(mr, k4, A, lda, B, T, ldt, 1);
}

static const qf_qgemm_kernel QGEMM_WASM = {4, 16, qgemm_wasm_u8, qgemm_wasm_s8, qgemm_wasm_u8, qgemm_wasm_s8, qf_qepi_apply};

/* ---- weight-only GEMV ------------------------------------------------------------------------------------ */

static inline float hsum128(v128_t v) {
  return wasm_f32x4_extract_lane(v, 0) + wasm_f32x4_extract_lane(v, 1) + wasm_f32x4_extract_lane(v, 2) + wasm_f32x4_extract_lane(v, 3);
}

static inline v128_t i8x4_to_f32(const int8_t* p) {
  int32_t w;
  __builtin_memcpy(&w, p, 4);
  v128_t b = wasm_i32x4_splat(w);
  return wasm_f32x4_convert_i32x4(wasm_i32x4_extend_low_i16x8(wasm_i16x8_extend_low_i8x16(b)));
}

static void woq8_wasm(int32_t M, int32_t K, const float* x, const int8_t* q, const float* scale, const float* bias, float* y, int32_t ldy, int32_t n0, int32_t n1) {
  int32_t k4 = K & ~3;
  for (int32_t m = 0; m < M; m++) {
    const float* xr = x + (size_t)m * K;
    for (int32_t n = n0; n < n1; n++) {
      const int8_t* w = q + (size_t)n * K;
      v128_t acc = wasm_f32x4_splat(0.0f);
      for (int32_t k = 0; k < k4; k += 4) acc = wasm_f32x4_add(acc, wasm_f32x4_mul(wasm_v128_load(xr + k), i8x4_to_f32(w + k)));
      float s = hsum128(acc);
      for (int32_t k = k4; k < K; k++) s += xr[k] * (float)w[k];
      float v = s * scale[n];
      y[(size_t)m * ldy + n] = bias != NULL ? v + bias[n] : v;
    }
  }
}

static void woq4_wasm(int32_t M, int32_t K, int32_t G, const float* x, const float* xsum, const uint8_t* q, const float* s, const float* b,
                      const float* bias, float* y, int32_t ldy, int32_t n0, int32_t n1) {
  int32_t ng = K / G;
  const v128_t low = wasm_i32x4_splat(15);
  for (int32_t m = 0; m < M; m++) {
    const float* xr = x + (size_t)m * K;
    const float* xs = xsum + (size_t)m * ng;
    for (int32_t n = n0; n < n1; n++) {
      const uint8_t* w = q + (size_t)n * (K / 2);
      v128_t tot = wasm_f32x4_splat(0.0f);
      float extra = 0.0f;
      for (int32_t gi = 0; gi < ng; gi++) {
        v128_t d = wasm_f32x4_splat(0.0f);
        for (int32_t k0 = gi * G; k0 < (gi + 1) * G; k0 += 32) {
          v128_t raw = wasm_v128_load(w + k0 / 2);
          v128_t w16lo = wasm_u16x8_extend_low_u8x16(raw), w16hi = wasm_u16x8_extend_high_u8x16(raw);
          v128_t q0 = wasm_u32x4_extend_low_u16x8(w16lo), q1 = wasm_u32x4_extend_high_u16x8(w16lo);
          v128_t q2 = wasm_u32x4_extend_low_u16x8(w16hi), q3 = wasm_u32x4_extend_high_u16x8(w16hi);
          const float* xl = xr + k0;
          d = wasm_f32x4_add(d, wasm_f32x4_mul(wasm_v128_load(xl), wasm_f32x4_convert_i32x4(wasm_v128_and(q0, low))));
          d = wasm_f32x4_add(d, wasm_f32x4_mul(wasm_v128_load(xl + 4), wasm_f32x4_convert_i32x4(wasm_v128_and(q1, low))));
          d = wasm_f32x4_add(d, wasm_f32x4_mul(wasm_v128_load(xl + 8), wasm_f32x4_convert_i32x4(wasm_v128_and(q2, low))));
          d = wasm_f32x4_add(d, wasm_f32x4_mul(wasm_v128_load(xl + 12), wasm_f32x4_convert_i32x4(wasm_v128_and(q3, low))));
          d = wasm_f32x4_add(d, wasm_f32x4_mul(wasm_v128_load(xl + 16), wasm_f32x4_convert_i32x4(wasm_u32x4_shr(q0, 4))));
          d = wasm_f32x4_add(d, wasm_f32x4_mul(wasm_v128_load(xl + 20), wasm_f32x4_convert_i32x4(wasm_u32x4_shr(q1, 4))));
          d = wasm_f32x4_add(d, wasm_f32x4_mul(wasm_v128_load(xl + 24), wasm_f32x4_convert_i32x4(wasm_u32x4_shr(q2, 4))));
          d = wasm_f32x4_add(d, wasm_f32x4_mul(wasm_v128_load(xl + 28), wasm_f32x4_convert_i32x4(wasm_u32x4_shr(q3, 4))));
        }
        tot = wasm_f32x4_add(tot, wasm_f32x4_mul(wasm_f32x4_splat(s[(size_t)n * ng + gi]), d));
        extra += b[(size_t)n * ng + gi] * xs[gi];
      }
      float v = hsum128(tot) + extra;
      y[(size_t)m * ldy + n] = bias != NULL ? v + bias[n] : v;
    }
  }
}

/* ---- exports ----------------------------------------------------------------------------------------------- */

static qf_conv_geo geo_at(const int32_t* v) {
  qf_conv_geo r;
  r.C = v[0]; r.H = v[1]; r.W = v[2]; r.M = v[3]; r.G = v[4];
  r.KH = v[5]; r.KW = v[6]; r.SH = v[7]; r.SW = v[8]; r.PH = v[9]; r.PW = v[10]; r.DH = v[11]; r.DW = v[12]; r.OH = v[13]; r.OW = v[14];
  return r;
}

static int32_t ysize_of(int32_t t) { return t == QF_OUT_I32 || t == QF_OUT_F32 ? 4 : 1; }

EXPORT(abi_version) int32_t abi_version(void) { return 2; }
EXPORT(qepi_size) int32_t qepi_size(void) { return (int32_t)sizeof(qf_qepi); }
EXPORT(conv_pixels_per_block) int32_t conv_pixels_per_block(void) { return QF_CONV_PB; }

EXPORT(pack_b_f32) void pack_b_f32(const float* B, int32_t K, int32_t N, int32_t ldb, int32_t trans, float* out) { qf_pack_b_f32(B, K, N, ldb, trans, out); }
EXPORT(pack_b_8) void pack_b_8(const uint8_t* B, int32_t K, int32_t N, int32_t ldb, int32_t trans, int32_t flip, int32_t ss, uint8_t* out, int32_t* colsum) {
  qf_pack_b_8(B, K, N, ldb, trans, (uint8_t)flip, ss, out, colsum);
}
EXPORT(pack_int4) void pack_int4(const uint8_t* q, int32_t N, int32_t K, uint8_t* out) { qf_pack_int4(q, N, K, out); }

EXPORT(sgemm_mr) int32_t sgemm_mr(void) { return SGEMM_WASM.mr; }

EXPORT(epi_size) int32_t epi_size(void) { return (int32_t)sizeof(qf_epi_f32); }

/* Fills an fp32 epilogue: kinds[n], ab[2n] (a, b per op), vecs[n] (pointers, 0 for scalar operands). */
EXPORT(epi_init) void epi_init(qf_epi_f32* e, const float* bias, int32_t per_row, int32_t n, const int32_t* kinds, const float* ab, const int32_t* vecs) {
  e->bias = bias;
  e->per_row = per_row;
  e->nops = n > QF_MAX_EOPS ? QF_MAX_EOPS : n;
  for (int32_t i = 0; i < e->nops; i++) {
    e->ops[i].kind = kinds[i];
    e->ops[i].a = ab[2 * i];
    e->ops[i].b = ab[2 * i + 1];
    e->ops[i].vec = (const float*)(uintptr_t)vecs[i];
  }
}

/* scratch: ceil(M/4)*4*K floats (packed A) */
EXPORT(sgemm) void sgemm(int32_t M, int32_t N, int32_t K, const float* A, int32_t lda, const float* Bp, float* C, int32_t ldc, const qf_epi_f32* e,
                         float* scratch) {
  if (M <= 0 || N <= 0) return;
  qf_pack_a_f32(A, M, K, lda, SGEMM_WASM.mr, scratch);
  qf_sgemm_cols(&SGEMM_WASM, M, N, K, scratch, Bp, C, ldc, e, 0, 0, N);
}

/* The weights of each group as A panels (qf_conv_group_floats(g, 4) floats per group). */
EXPORT(pack_conv_f32) void pack_conv_f32(const int32_t* geo, const float* W, float* out) {
  qf_conv_geo g = geo_at(geo);
  int32_t mg = g.M / g.G, K = (g.C / g.G) * g.KH * g.KW;
  size_t per = qf_conv_group_floats(&g, SGEMM_WASM.mr);
  for (int32_t grp = 0; grp < g.G; grp++) qf_pack_a_f32(W + (size_t)grp * mg * K, mg, K, K, SGEMM_WASM.mr, out + per * grp);
}

EXPORT(conv_f32_scratch) int32_t conv_f32_scratch(const int32_t* geo) {
  qf_conv_geo g = geo_at(geo);
  size_t pad = qf_conv_f32_padded(&g) ? (size_t)g.C * qf_conv8_hp_(&g) * qf_conv8_wp_(&g) : 0;
  return (int32_t)(((size_t)(g.C / g.G) * g.KH * g.KW * QF_CONV_PB + pad) * 4 + 64);
}

/* W: packed by pack_conv_f32 (raw for depthwise); e per row. scratch: conv_f32_scratch(geo) bytes (unused by depthwise) */
EXPORT(conv_f32) void conv_f32(const int32_t* geo, int32_t batch, const float* X, const float* Wt, float* Y, const qf_epi_f32* ep, float* scratch) {
  qf_conv_geo g = geo_at(geo);
  qf_epi_f32 e = *ep;
  size_t xin = (size_t)g.C * g.H * g.W, yout = (size_t)g.M * g.OH * g.OW;
  for (int32_t n = 0; n < batch; n++) {
    if (g.G == g.C && g.G == g.M) {
      qf_dw_f32(&g, X + n * xin, Wt, Y + n * yout, &e, 0, g.C);
    } else {
      const float* src = X + n * xin;
      float* cols = scratch;
      if (qf_conv_f32_padded(&g)) {
        float* xp = scratch + (size_t)(g.C / g.G) * g.KH * g.KW * QF_CONV_PB;
        qf_conv_f32_input(&g, src, xp, 0, g.C);
        src = xp;
      }
      for (int32_t grp = 0; grp < g.G; grp++) qf_conv_f32_block(&SGEMM_WASM, &g, src, Wt, Y + n * yout, &e, grp, 0, g.OH * g.OW, cols);
    }
  }
}

EXPORT(qepi_init) void qepi_init(qf_qepi* e, int32_t kind, int32_t per_row, int32_t out_type, int32_t zp, int32_t lo, int32_t hi, int32_t K,
                                 const int32_t* za, int32_t za_per_row, const int32_t* zb, int32_t zb_per_col, const int32_t* sa, const int32_t* sb,
                                 const int32_t* bias, const float* mult, const double* dws, const double* dadd, const float* fbias,
                                 const double* dfbias, double xs, double ys, const uint8_t* lut) {
  e->kind = kind; e->per_row = per_row; e->out_type = out_type; e->zp = zp; e->lo = lo; e->hi = hi; e->K = K;
  e->za = za; e->za_per_row = za_per_row; e->zb = zb; e->zb_per_col = zb_per_col; e->sa = sa; e->sb = sb; e->bias = bias;
  e->mult = mult; e->dws = dws; e->dadd = dadd; e->fbias = fbias; e->dfbias = dfbias; e->xs = xs; e->ys = ys; e->lut = lut;
}

/* scratch: M * K4*4 bytes (packed A), then M int32 row sums, then 4*16 int32 (tile); 16-byte aligned by the caller */
EXPORT(qgemm) void qgemm(int32_t M, int32_t N, int32_t K, const uint8_t* A, int32_t lda, int32_t flip, int32_t need_rs, const uint8_t* Bp,
                         const qf_qepi* epi, void* Y, int32_t ldy, uint8_t* scratch) {
  if (M <= 0 || N <= 0) return;
  int32_t kp = qf_k4(K) * 4;
  uint8_t* ap = scratch;
  int32_t* rs = QF_CAST(int32_t*, scratch + (((size_t)M * kp + 15) & ~(size_t)15));
  int32_t* tile = rs + ((M + 3) & ~3);
  qf_pack_a_8(A, M, K, lda, (uint8_t)flip, 0, ap, need_rs ? rs : NULL);
  qf_qepi e = *epi;
  if (need_rs) e.sa = rs;
  qf_qgemm_cols(&QGEMM_WASM, 0, M, N, K, ap, Bp, &e, Y, ldy, ysize_of(e.out_type), 0, 0, 0, N, tile);
}

/* qgemm with a runtime B [K][N] (row stride ldb): scratch = qgemm's, then packed B, then N int32 column sums */
EXPORT(qgemm_b_scratch) int32_t qgemm_b_scratch(int32_t M, int32_t N, int32_t K) {
  int32_t kp = qf_k4(K) * 4;
  return (int32_t)((((size_t)M * kp + 15) & ~(size_t)15) + ((size_t)M + 3) / 4 * 16 + 64 * 4 +
                   (size_t)((qf_panels(N) + 3) / 4) * 4 * qf_k4(K) * 64 + (size_t)N * 4 + 64);
}

EXPORT(qgemm_b) void qgemm_b(int32_t M, int32_t N, int32_t K, const uint8_t* A, int32_t lda, int32_t flip, int32_t need_rs, const uint8_t* B, int32_t ldb,
                             int32_t bflip, int32_t need_cs, const qf_qepi* epi, void* Y, int32_t ldy, uint8_t* scratch) {
  if (M <= 0 || N <= 0) return;
  int32_t kp = qf_k4(K) * 4;
  uint8_t* ap = scratch;
  int32_t* rs = QF_CAST(int32_t*, scratch + (((size_t)M * kp + 15) & ~(size_t)15));
  int32_t* tile = rs + ((M + 3) & ~3);
  uint8_t* bp = QF_CAST(uint8_t*, tile + 64);
  int32_t* cs = QF_CAST(int32_t*, bp + (size_t)((qf_panels(N) + 3) / 4) * 4 * qf_k4(K) * 64);
  qf_pack_b_8(B, K, N, ldb, 0, (uint8_t)bflip, 1, bp, cs);
  qf_pack_a_8(A, M, K, lda, (uint8_t)flip, 0, ap, need_rs ? rs : NULL);
  qf_qepi e = *epi;
  if (need_rs) e.sa = rs;
  e.sb = need_cs ? cs : NULL;
  qf_qgemm_cols(&QGEMM_WASM, 0, M, N, K, ap, bp, &e, Y, ldy, ysize_of(e.out_type), 0, 0, 0, N, tile);
}

/* int8 conv weights as A rows (qf_pack_conv_w8); rowsum: M int32 */
EXPORT(pack_conv_w8) void pack_conv_w8(const int32_t* geo, const uint8_t* W, int32_t flip, uint8_t* out, int32_t* rowsum) {
  qf_conv_geo g = geo_at(geo);
  qf_pack_conv_w8(&g, W, (uint8_t)flip, out, rowsum);
}

EXPORT(conv_q8_scratch) int32_t conv_q8_scratch(const int32_t* geo) {
  qf_conv_geo g = geo_at(geo);
  return (int32_t)(((qf_conv8_input_bytes(&g) + 63) & ~(size_t)63) + (size_t)qf_conv8_kq(&g) * 64 * (QF_CONV_PB / QF_PANEL) + QF_CONV_PB * 4 + 64 * 4 + 64);
}

/* Wp from pack_conv_w8; scratch: conv_q8_scratch(geo) bytes, 64-byte aligned */
EXPORT(conv_q8) void conv_q8(const int32_t* geo, int32_t batch, const uint8_t* X, int32_t flip, int32_t pad, const uint8_t* Wp, const qf_qepi* epi,
                             int32_t need_cs, void* Y, uint8_t* scratch) {
  qf_conv_geo g = geo_at(geo);
  int32_t ys = ysize_of(epi->out_type);
  size_t xib = (qf_conv8_input_bytes(&g) + 63) & ~(size_t)63;
  uint8_t* xi = scratch;
  uint8_t* cols = scratch + xib;
  size_t colbytes = (size_t)qf_conv8_kq(&g) * 64 * (QF_CONV_PB / QF_PANEL);
  int32_t* tile = QF_CAST(int32_t*, cols + colbytes + QF_CONV_PB * 4);
  qf_qepi e = *epi;
  e.sb = need_cs ? e.za : NULL;
  size_t xin = (size_t)g.C * g.H * g.W, yout = (size_t)g.M * g.OH * g.OW;
  for (int32_t n = 0; n < batch; n++) {
    qf_conv8_input(&g, X + n * xin, (uint8_t)flip, (uint8_t)pad, xi, 0, g.G * qf_conv8_c4(&g));
    for (int32_t grp = 0; grp < g.G; grp++) {
      qf_conv_8_block(&QGEMM_WASM, &g, xi, Wp, &e, QF_CAST(uint8_t*, Y) + n * yout * ys, ys, grp, 0, g.OH * g.OW, cols, tile);
    }
  }
}

EXPORT(dw_q8_scratch) int32_t dw_q8_scratch(const int32_t* geo) {
  qf_conv_geo g = geo_at(geo);
  return (int32_t)(qf_dw8_scratch(&g) * 4);
}

/* scratch: dw_q8_scratch(geo) bytes */
EXPORT(dw_q8) void dw_q8(const int32_t* geo, int32_t batch, const uint8_t* X, int32_t xs, int32_t zx, const uint8_t* W, int32_t ws, const int32_t* zw,
                         const qf_qepi* epi, void* Y, int32_t* scratch) {
  qf_conv_geo g = geo_at(geo);
  int32_t ys = ysize_of(epi->out_type);
  size_t xin = (size_t)g.C * g.H * g.W, yout = (size_t)g.M * g.OH * g.OW;
  for (int32_t n = 0; n < batch; n++) qf_dw_8(&g, X + n * xin, xs, zx, W, ws, zw, epi, qf_qepi_apply, QF_CAST(uint8_t*, Y) + n * yout * ys, ys, 0, g.C, scratch);
}

EXPORT(woq8) void woq8(int32_t M, int32_t N, int32_t K, const float* x, const int8_t* q, const float* scale, const float* bias, float* y) {
  woq8_wasm(M, K, x, q, scale, bias, y, N, 0, N);
}

/* scratch: M * K/G floats */
EXPORT(woq4) void woq4(int32_t M, int32_t N, int32_t K, int32_t G, const float* x, const uint8_t* q, const float* s, const float* b, const float* bias,
                       float* y, float* scratch) {
  qf_group_sums(M, K, G, x, scratch);
  woq4_wasm(M, K, G, x, scratch, q, s, b, bias, y, N, 0, N);
}
