/*
 * Portable kernels and drivers, included by exactly one translation unit of each tier (the native
 * addon's portable.cc and the WebAssembly module's kernels.c). Plain C99 that is also valid C++.
 *
 * The drivers (blocking loops, packing, im2col) take the microkernels as function tables, so the
 * native tier plugs in AVX2 / AVX-512 ones and the WebAssembly tier SIMD128 ones; the scalar
 * microkernels here are the reference every SIMD microkernel is tested against, and the fallback
 * of a CPU without AVX2.
 *
 * Exactness: integer accumulation is exact modulo 2^32 (all arithmetic on uint32_t), which is what
 * the reference kernels' wrapInt32 of the exact sum gives. The requantization epilogues follow the
 * reference kernels operation by operation (packages/runtime/src/quantized/{onnx,torch-linear}.ts);
 * both tiers must be built with -ffp-contract=off so that no multiply-add is fused.
 */
#ifndef QF_PORTABLE_H
#define QF_PORTABLE_H

#include "qf.h"

#ifdef __cplusplus
#define QF_CAST(T, v) (reinterpret_cast<T>(v))
#define QF_SCAST(T, v) (static_cast<T>(v))
#else
#define QF_CAST(T, v) ((T)(v))
#define QF_SCAST(T, v) ((T)(v))
#endif

#define QF_MIN(a, b) ((a) < (b) ? (a) : (b))
#define QF_MAX(a, b) ((a) > (b) ? (a) : (b))

static inline int32_t qf_k4(int32_t K) { return (K + 3) >> 2; }
static inline int32_t qf_panels(int32_t N) { return (N + QF_PANEL - 1) / QF_PANEL; }

/* ---- packing ------------------------------------------------------------------------------------ */

/*
 * fp32 B panels from B [K][N] (trans = 0, row stride ldb) or from B^T [N][K] (trans = 1: a linear
 * weight [out, in]). Columns past N are zero.
 */
static void qf_pack_b_f32(const float* QF_RESTRICT B, int32_t K, int32_t N, int32_t ldb, int32_t trans, float* QF_RESTRICT out) {
  int32_t np = qf_panels(N);
  for (int32_t p = 0; p < np; p++) {
    float* dst = out + (size_t)p * K * QF_PANEL;
    int32_t n0 = p * QF_PANEL;
    int32_t nv = QF_MIN(QF_PANEL, N - n0);
    for (int32_t k = 0; k < K; k++) {
      float* d = dst + (size_t)k * QF_PANEL;
      int32_t j = 0;
      if (trans) {
        for (; j < nv; j++) d[j] = B[(size_t)(n0 + j) * ldb + k];
      } else {
        const float* s = B + (size_t)k * ldb + n0;
        for (; j < nv; j++) d[j] = s[j];
      }
      for (; j < QF_PANEL; j++) d[j] = 0.0f;
    }
  }
}

/*
 * fp32 A row panels for a microkernel of height mr: [ceil(M/mr)][K][mr], element (r, k) of panel p
 * at out[(p*K + k)*mr + r]; rows past M are zero. The microkernel then reads the mr values of one k
 * from one cache line instead of mr rows lda apart (which alias in L1 when lda is a power of two).
 */
static void qf_pack_a_f32(const float* QF_RESTRICT A, int32_t M, int32_t K, int32_t lda, int32_t mr, float* QF_RESTRICT out) {
  int32_t np = (M + mr - 1) / mr;
  for (int32_t p = 0; p < np; p++) {
    float* dst = out + (size_t)p * K * mr;
    for (int32_t r = 0; r < mr; r++) {
      int32_t m = p * mr + r;
      if (m < M) {
        const float* s = A + (size_t)m * lda;
        for (int32_t k = 0; k < K; k++) dst[(size_t)k * mr + r] = s[k];
      } else {
        for (int32_t k = 0; k < K; k++) dst[(size_t)k * mr + r] = 0.0f;
      }
    }
  }
}

/*
 * int8 B panels (the vector operand) from 8-bit B [K][N] (trans = 0) or B^T [N][K] (trans = 1).
 * Each byte is XORed with `flip` (0x80 turns uint8 into int8 minus 128, and back), so the panel holds
 * the domain the microkernel multiplies. colsum (NULL: skipped) gets the column sums over k < K of
 * the flipped values read as signed (sum_signed) or unsigned bytes.
 */
static void qf_pack_b_8(const uint8_t* QF_RESTRICT B, int32_t K, int32_t N, int32_t ldb, int32_t trans, uint8_t flip,
                        int32_t sum_signed, uint8_t* QF_RESTRICT out, int32_t* QF_RESTRICT colsum) {
  int32_t np = qf_panels(N), k4 = qf_k4(K);
  for (int32_t p = 0; p < np; p++) {
    uint8_t* dst = out + (size_t)p * k4 * 64;
    int32_t n0 = p * QF_PANEL;
    for (int32_t j = 0; j < QF_PANEL; j++) {
      int32_t n = n0 + j;
      uint32_t sum = 0;
      for (int32_t k = 0; k < k4 * 4; k++) {
        uint8_t v = 0;
        if (n < N && k < K) {
          v = (uint8_t)((trans ? B[(size_t)n * ldb + k] : B[(size_t)k * ldb + n]) ^ flip);
          sum += sum_signed ? (uint32_t)(int32_t)(int8_t)v : (uint32_t)v;
        }
        dst[(size_t)(k >> 2) * 64 + j * 4 + (k & 3)] = v;
      }
      if (colsum != NULL && n < N) colsum[n] = (int32_t)sum;
    }
  }
}

/*
 * int8 A rows (the broadcast operand): [M][K4*4] with zero padding, each byte XORed with `flip`;
 * rowsum (NULL: skipped) gets the row sums of the flipped values (signed or unsigned bytes).
 */
static void qf_pack_a_8(const uint8_t* QF_RESTRICT A, int32_t M, int32_t K, int32_t lda, uint8_t flip, int32_t sum_signed,
                        uint8_t* QF_RESTRICT out, int32_t* QF_RESTRICT rowsum) {
  int32_t kp = qf_k4(K) * 4;
  for (int32_t m = 0; m < M; m++) {
    const uint8_t* s = A + (size_t)m * lda;
    uint8_t* d = out + (size_t)m * kp;
    uint32_t sum = 0;
    int32_t k = 0;
    if (sum_signed) {
      for (; k < K; k++) { uint8_t v = (uint8_t)(s[k] ^ flip); d[k] = v; sum += (uint32_t)(int32_t)(int8_t)v; }
    } else {
      for (; k < K; k++) { uint8_t v = (uint8_t)(s[k] ^ flip); d[k] = v; sum += v; }
    }
    for (; k < kp; k++) d[k] = 0;
    if (rowsum != NULL) rowsum[m] = (int32_t)sum;
  }
}

/* ---- im2col into panels --------------------------------------------------------------------------- */

/* Padded input extent: every tap of every output pixel lands inside [0, hp) x [0, wp). */
static inline int32_t qf_conv8_hp_(const qf_conv_geo* g) { return (g->OH - 1) * g->SH + (g->KH - 1) * g->DH + 1; }
static inline int32_t qf_conv8_wp_(const qf_conv_geo* g) { return (g->OW - 1) * g->SW + (g->KW - 1) * g->DW + 1; }

/* A run of output pixels of one panel that lie on one output row. */
typedef struct qf_seg { int32_t j0, len, oy, ox0; } qf_seg;

/* Splits pixels [p, p + 16) (clipped to OH*OW) into runs on the same output row; returns the count. */
static int32_t qf_segments(const qf_conv_geo* g, int32_t p, qf_seg* segs) {
  int32_t total = g->OH * g->OW, n = 0, j = 0;
  while (j < QF_PANEL && p + j < total) {
    int32_t q = p + j, oy = q / g->OW, ox = q % g->OW;
    int32_t len = QF_MIN(QF_PANEL - j, g->OW - ox);
    if (q + len > total) len = total - q;
    segs[n].j0 = j; segs[n].len = len; segs[n].oy = oy; segs[n].ox0 = ox;
    n++;
    j += len;
  }
  return n;
}

/*
 * Copies the input pixels one k = (c, ky, kx) row of the im2col matrix needs for a run of output
 * pixels: dst[t] = x[iy][ox0*SW - PW + kx*DW + t*SW], or `pad` outside the image. Generic over the
 * element type through the macro below.
 */
#define QF_IM2COL_RUN(T, dst, row, iy_ok, ix0, len, SW, W, pad)                        \
  do {                                                                                 \
    if (!(iy_ok)) {                                                                    \
      for (int32_t t_ = 0; t_ < (len); t_++) (dst)[t_] = (pad);                        \
    } else {                                                                           \
      int32_t lo_ = 0, hi_ = (len);                                                    \
      if ((ix0) < 0) lo_ = QF_MIN((len), (-(ix0) + (SW) - 1) / (SW));                  \
      if ((ix0) + ((len) - 1) * (SW) >= (W)) {                                         \
        int32_t last_ = (ix0) > (W) - 1 ? -1 : ((W) - 1 - (ix0)) / (SW);               \
        hi_ = QF_MAX(lo_, QF_MIN((len), last_ + 1));                                   \
      }                                                                                \
      int32_t t_ = 0;                                                                  \
      for (; t_ < lo_; t_++) (dst)[t_] = (pad);                                        \
      if ((SW) == 1) {                                                                 \
        const T* s_ = (row) + (ix0);                                                   \
        for (; t_ < hi_; t_++) (dst)[t_] = s_[t_];                                     \
      } else {                                                                         \
        for (; t_ < hi_; t_++) (dst)[t_] = (row)[(ix0) + t_ * (SW)];                   \
      }                                                                                \
      for (; t_ < (len); t_++) (dst)[t_] = (pad);                                      \
    }                                                                                  \
  } while (0)

/*
 * fp32 convolution input padded once per image so that im2col is plain copies: [C][Hp][Wp] with
 * zero borders (Hp, Wp as the 8-bit input: every tap of every output lands inside). Convolutions
 * without padding whose taps stay inside the image read the input itself (qf_conv_f32_padded = 0).
 */
static inline int32_t qf_conv_f32_padded(const qf_conv_geo* g) {
  return !(g->PH == 0 && g->PW == 0 && qf_conv8_hp_(g) <= g->H && qf_conv8_wp_(g) <= g->W);
}

/* Channels [c0, c1) of the padded input. */
static void qf_conv_f32_input(const qf_conv_geo* g, const float* QF_RESTRICT X, float* QF_RESTRICT Xp, int32_t c0, int32_t c1) {
  int32_t hp = qf_conv8_hp_(g), wp = qf_conv8_wp_(g);
  for (int32_t c = c0; c < c1; c++) {
    const float* plane = X + (size_t)c * g->H * g->W;
    float* dst = Xp + (size_t)c * hp * wp;
    for (int32_t y = 0; y < hp; y++) {
      float* d = dst + (size_t)y * wp;
      int32_t iy = y - g->PH;
      int32_t x = 0;
      if (iy >= 0 && iy < g->H) {
        int32_t lo = QF_MIN(g->PW, wp), hi = QF_MIN(g->PW + g->W, wp);
        for (; x < lo; x++) d[x] = 0.0f;
        if (hi > x) __builtin_memcpy(d + x, plane + (size_t)iy * g->W + (x - g->PW), (size_t)(hi - x) * sizeof(float));
        x = QF_MAX(x, hi);
      }
      for (; x < wp; x++) d[x] = 0.0f;
    }
  }
}

/*
 * fp32 im2col of group `grp` for the pixel panels starting at pixel p0: out [npan][K][16] with
 * K = (C/G)*KH*KW, k = (c*KH + ky)*KW + kx (the weight's [M][C/G][KH][KW] order), read from the
 * padded input Xp ([C][ph][pw]; the input itself when not padded) without bounds checks.
 */
static void qf_im2col_f32(const qf_conv_geo* g, const float* QF_RESTRICT Xp, int32_t ph, int32_t pw, int32_t grp, int32_t p0, int32_t npan,
                          float* QF_RESTRICT out) {
  int32_t cg = g->C / g->G, K = cg * g->KH * g->KW;
  qf_seg segs[QF_PANEL];
  for (int32_t pi = 0; pi < npan; pi++) {
    int32_t ns = qf_segments(g, p0 + pi * QF_PANEL, segs);
    int32_t filled = ns == 0 ? 0 : segs[ns - 1].j0 + segs[ns - 1].len;
    float* panel = out + (size_t)pi * K * QF_PANEL;
    int32_t k = 0;
    for (int32_t c = 0; c < cg; c++) {
      const float* plane = Xp + (size_t)(grp * cg + c) * ph * pw;
      for (int32_t ky = 0; ky < g->KH; ky++) {
        for (int32_t kx = 0; kx < g->KW; kx++, k++) {
          float* d = panel + (size_t)k * QF_PANEL;
          for (int32_t s = 0; s < ns; s++) {
            const float* src = plane + (size_t)(segs[s].oy * g->SH + ky * g->DH) * pw + (size_t)segs[s].ox0 * g->SW + (size_t)kx * g->DW;
            float* dd = d + segs[s].j0;
            if (g->SW == 1 && segs[s].len == QF_PANEL) {
              __builtin_memcpy(dd, src, QF_PANEL * sizeof(float));
            } else if (g->SW == 1) {
              __builtin_memcpy(dd, src, (size_t)segs[s].len * sizeof(float));
            } else {
              for (int32_t t = 0; t < segs[s].len; t++) dd[t] = src[(size_t)t * g->SW];
            }
          }
          for (int32_t j = filled; j < QF_PANEL; j++) d[j] = 0.0f;
        }
      }
    }
  }
}

/*
 * 8-bit convolution input, transformed once per image so that im2col becomes plain copies:
 * [G][C4g][Hp][Wp][4] bytes, C4g = ceil((C/G)/4) channel quads per group, four consecutive channels
 * of one pixel adjacent (the k-quad order of the int8 panels), padded to Hp x Wp with `pad` (the
 * zero point in the flipped domain, so padding contributes the real value 0); channels past C/G in
 * the last quad are 0. Every byte is XORed with `flip` (int8 -> uint8 domain).
 */
static inline int32_t qf_conv8_hp(const qf_conv_geo* g) { return qf_conv8_hp_(g); }
static inline int32_t qf_conv8_wp(const qf_conv_geo* g) { return qf_conv8_wp_(g); }
static inline int32_t qf_conv8_c4(const qf_conv_geo* g) { return qf_k4(g->C / g->G); }
static inline size_t qf_conv8_input_bytes(const qf_conv_geo* g) {
  return (size_t)g->G * qf_conv8_c4(g) * qf_conv8_hp(g) * qf_conv8_wp(g) * 4;
}

/* Channel quads [q0, q1) of all groups (q indexes G * C4g quads) of one image. */
static void qf_conv8_input(const qf_conv_geo* g, const uint8_t* QF_RESTRICT X, uint8_t flip, uint8_t pad, uint8_t* QF_RESTRICT Xi,
                           int32_t q0, int32_t q1) {
  int32_t cg = g->C / g->G, c4 = qf_conv8_c4(g), hp = qf_conv8_hp(g), wp = qf_conv8_wp(g);
  for (int32_t qi = q0; qi < q1; qi++) {
    int32_t grp = qi / c4, cq = qi % c4;
    uint8_t* dst = Xi + (size_t)qi * hp * wp * 4;
    for (int32_t r = 0; r < 4; r++) {
      int32_t c = cq * 4 + r;
      if (c >= cg) {
        for (size_t i = 0; i < (size_t)hp * wp; i++) dst[i * 4 + r] = 0;
        continue;
      }
      const uint8_t* plane = X + (size_t)(grp * cg + c) * g->H * g->W;
      for (int32_t y = 0; y < hp; y++) {
        int32_t iy = y - g->PH;
        uint8_t* d = dst + (size_t)y * wp * 4 + r;
        if (iy < 0 || iy >= g->H) {
          for (int32_t x = 0; x < wp; x++) d[x * 4] = pad;
          continue;
        }
        const uint8_t* row = plane + (size_t)iy * g->W;
        int32_t x = 0;
        int32_t lo = QF_MIN(g->PW, wp), hi = QF_MIN(g->PW + g->W, wp);
        for (; x < lo; x++) d[x * 4] = pad;
        for (; x < hi; x++) d[x * 4] = (uint8_t)(row[x - g->PW] ^ flip);
        for (; x < wp; x++) d[x * 4] = pad;
      }
    }
  }
}

/* Rows of the int8 conv weights in the order the panels use: k' = (ky*KW + kx) * C4g*4 + c. */
static inline int32_t qf_conv8_kq(const qf_conv_geo* g) { return g->KH * g->KW * qf_conv8_c4(g); }

/*
 * int8 conv weights [M][C/G][KH][KW] as A rows for qf_conv_8_block: [M][KQ*4] bytes (KQ =
 * qf_conv8_kq), k' ordered (tap, channel) with channels past C/G zero, each byte XORed with flip.
 * rowsum gets each row's sum of the flipped values read as signed bytes.
 */
static void qf_pack_conv_w8(const qf_conv_geo* g, const uint8_t* QF_RESTRICT W, uint8_t flip, uint8_t* QF_RESTRICT out, int32_t* QF_RESTRICT rowsum) {
  int32_t cg = g->C / g->G, c4 = qf_conv8_c4(g), taps = g->KH * g->KW, kp = taps * c4 * 4;
  for (int32_t m = 0; m < g->M; m++) {
    uint8_t* d = out + (size_t)m * kp;
    uint32_t sum = 0;
    for (int32_t t = 0; t < taps; t++) {
      for (int32_t c = 0; c < c4 * 4; c++) {
        uint8_t v = 0;
        if (c < cg) {
          v = (uint8_t)(W[((size_t)m * cg + c) * taps + t] ^ flip);
          sum += (uint32_t)(int32_t)(int8_t)v;
        }
        d[t * c4 * 4 + c] = v;
      }
    }
    if (rowsum != NULL) rowsum[m] = (int32_t)sum;
  }
}

/*
 * int8 panels [npan][KQ][16][4] of group grp for the pixels from p0, copied from the transformed
 * input Xi: for tap (ky, kx) and channel quad cq, pixel (oy, ox) reads the 4 bytes at padded
 * (oy*SH + ky*DH, ox*SW + kx*DW). colsum (NULL: skipped) gets each pixel's byte sum (unsigned),
 * indexed from the first pixel; pixels past the image are 0.
 */
static void qf_im2col_8(const qf_conv_geo* g, const uint8_t* QF_RESTRICT Xi, int32_t grp, int32_t p0, int32_t npan, uint8_t* QF_RESTRICT out,
                        int32_t* QF_RESTRICT colsum) {
  int32_t c4 = qf_conv8_c4(g), hp = qf_conv8_hp(g), wp = qf_conv8_wp(g), kq = qf_conv8_kq(g);
  const uint8_t* xg = Xi + (size_t)grp * c4 * hp * wp * 4;
  for (int32_t pi = 0; pi < npan; pi++) {
    qf_seg segs[QF_PANEL];
    int32_t ns = qf_segments(g, p0 + pi * QF_PANEL, segs);
    int32_t filled = ns == 0 ? 0 : segs[ns - 1].j0 + segs[ns - 1].len;
    uint32_t* panel = QF_CAST(uint32_t*, out + (size_t)pi * kq * 64);
    for (int32_t ky = 0; ky < g->KH; ky++) {
      for (int32_t kx = 0; kx < g->KW; kx++) {
        int32_t t = ky * g->KW + kx;
        for (int32_t cq = 0; cq < c4; cq++) {
          uint32_t* d = panel + (size_t)(t * c4 + cq) * QF_PANEL;
          const uint8_t* plane = xg + (size_t)cq * hp * wp * 4;
          for (int32_t si = 0; si < ns; si++) {
            const qf_seg* sg = &segs[si];
            const uint8_t* src = plane + ((size_t)(sg->oy * g->SH + ky * g->DH) * wp + (size_t)sg->ox0 * g->SW + (size_t)kx * g->DW) * 4;
            uint32_t* dd = d + sg->j0;
            if (g->SW == 1 && sg->len == QF_PANEL) {
              __builtin_memcpy(dd, src, QF_PANEL * 4); /* a whole panel row: one fixed-size copy */
            } else if (g->SW == 1) {
              __builtin_memcpy(dd, src, (size_t)sg->len * 4);
            } else {
              for (int32_t j = 0; j < sg->len; j++) __builtin_memcpy(dd + j, src + (size_t)j * g->SW * 4, 4);
            }
          }
          for (int32_t j = filled; j < QF_PANEL; j++) d[j] = 0;
        }
      }
    }
    if (colsum != NULL) {
      const uint8_t* pb = out + (size_t)pi * kq * 64;
      for (int32_t j = 0; j < QF_PANEL; j++) {
        uint32_t sum = 0;
        for (int32_t q = 0; q < kq; q++) {
          const uint8_t* u = pb + (size_t)q * 64 + j * 4;
          sum += (uint32_t)u[0] + u[1] + u[2] + u[3];
        }
        colsum[pi * QF_PANEL + j] = (int32_t)sum;
      }
    }
  }
}

/* ---- fp32 epilogue (scalar) ------------------------------------------------------------------------ */

static inline float qf_eop_apply(const qf_eop* o, float v, int32_t ch) {
  float x = o->vec != NULL ? o->vec[ch] : o->a;
  switch (o->kind) {
    case QF_OP_ADD: return v + x;
    case QF_OP_MUL: return v * x;
    case QF_OP_SUB: return v - x;
    case QF_OP_RSUB: return x - v;
    case QF_OP_DIV: return v / x;
    case QF_OP_RDIV: return x / v;
    case QF_OP_MAX: return v < x ? x : v;
    case QF_OP_MIN: return v > x ? x : v;
    case QF_OP_RELU: return v < 0.0f ? 0.0f : v;
    case QF_OP_CLIP: {
      /* the reference clip's order: lower bound first, then the upper bound wins */
      float r = v < o->a ? o->a : v;
      return r > o->b ? o->b : r;
    }
    case QF_OP_HSWISH_CHAIN: {
      float t = v + 3.0f;
      t = t < 0.0f ? 0.0f : (t > 6.0f ? 6.0f : t);
      return (v * t) / 6.0f;
    }
    case QF_OP_HARDSWISH: {
      float t = v / 6.0f + 0.5f;
      t = t < 0.0f ? 0.0f : (t > 1.0f ? 1.0f : t);
      return v * t;
    }
    case QF_OP_HARDSIGMOID: {
      float t = o->a * v + o->b;
      return t < 0.0f ? 0.0f : (t > 1.0f ? 1.0f : t);
    }
    default: return v;
  }
}

static inline float qf_epi_one(const qf_epi_f32* e, float v, int32_t ch) {
  if (e->bias != NULL) v += e->bias[ch];
  for (int32_t i = 0; i < e->nops; i++) v = qf_eop_apply(&e->ops[i], v, ch);
  return v;
}

/* Applies bias and the fused program to C[mr][nc] whose first element is (row0, col0). */
static void qf_epi_f32_apply(const qf_epi_f32* e, float* C, int32_t ldc, int32_t row0, int32_t col0, int32_t mr, int32_t nc) {
  if (e->bias == NULL && e->nops == 0) return;
  for (int32_t i = 0; i < mr; i++) {
    float* c = C + (size_t)i * ldc;
    for (int32_t j = 0; j < nc; j++) c[j] = qf_epi_one(e, c[j], e->per_row ? row0 + i : col0 + j);
  }
}

/* ---- int8 epilogue (scalar) ------------------------------------------------------------------------- */

/* The exact int32 accumulator (mod 2^32) of element (r, c) from the raw product sum. */
static inline uint32_t qf_corrected(const qf_qepi* e, uint32_t raw, int32_t r, int32_t c) {
  uint32_t za = (uint32_t)e->za[e->za_per_row ? r : 0];
  uint32_t zb = (uint32_t)e->zb[e->zb_per_col ? c : 0];
  uint32_t acc = raw;
  if (e->sa != NULL) acc -= zb * (uint32_t)e->sa[r];
  if (e->sb != NULL) acc -= za * (uint32_t)e->sb[c];
  acc += (uint32_t)e->K * za * zb;
  return acc;
}

static inline float qf_rintf(float v) { return __builtin_rintf(v); }
static inline double qf_rint(double v) { return __builtin_rint(v); }

/* One requantized value for channel ch from the exact int32 accumulator. */
static inline int32_t qf_requant_one(const qf_qepi* e, int32_t acc, int32_t ch) {
  float flo = (float)(e->lo - e->zp), fhi = (float)(e->hi - e->zp);
  switch (e->kind) {
    case QF_Q_QLINEAR: {
      int32_t t = e->bias != NULL ? (int32_t)((uint32_t)acc + (uint32_t)e->bias[ch]) : acc;
      float f = (float)((double)t * (double)e->mult[ch]);
      f = f < flo ? flo : (f > fhi ? fhi : f);
      return (int32_t)qf_rintf(f) + e->zp;
    }
    case QF_Q_QNNPACK: {
      int32_t t = e->bias != NULL ? (int32_t)((uint32_t)acc + (uint32_t)e->bias[ch]) : acc;
      float f = (float)t * e->mult[ch];
      f = f < flo ? flo : (f > fhi ? fhi : f);
      return (int32_t)qf_rintf(f) + e->zp;
    }
    case QF_Q_ONEDNN: {
      double d = (double)acc * e->xs * e->dws[ch] / e->ys + e->dadd[ch];
      double dlo = (double)(e->lo - e->zp), dhi = (double)(e->hi - e->zp);
      d = d < dlo ? dlo : (d > dhi ? dhi : d);
      return (int32_t)qf_rint(d) + e->zp;
    }
    default: return acc;
  }
}

/*
 * Turns a tile of raw products T[mr][nc] (row stride ldt) whose first element is (r0, c0) into the
 * output Y (row stride ldy, element type e->out_type): zero-point correction, then the kind's
 * requantization. Y points at element (r0, c0).
 */
static void qf_qepi_apply(const qf_qepi* e, const int32_t* T, int32_t ldt, int32_t r0, int32_t c0, int32_t mr, int32_t nc, void* Y, int32_t ldy) {
  for (int32_t i = 0; i < mr; i++) {
    int32_t r = r0 + i;
    for (int32_t j = 0; j < nc; j++) {
      int32_t c = c0 + j;
      int32_t acc = (int32_t)qf_corrected(e, (uint32_t)T[(size_t)i * ldt + j], r, c);
      int32_t ch = e->per_row ? r : c;
      size_t at = (size_t)i * ldy + j;
      switch (e->out_type) {
        case QF_OUT_U8:
        case QF_OUT_S8: {
          uint8_t b = (uint8_t)qf_requant_one(e, acc, ch);
          QF_CAST(uint8_t*, Y)[at] = e->lut != NULL ? e->lut[b] : b;
          break;
        }
        case QF_OUT_I32: QF_CAST(int32_t*, Y)[at] = qf_requant_one(e, acc, ch); break;
        default: {
          float v;
          if (e->kind == QF_Q_DYN_ONEDNN) {
            double d = (double)acc * e->xs * e->dws[ch];
            v = (float)(e->dfbias != NULL ? d + e->dfbias[ch] : d);
          } else {
            v = (float)acc * e->mult[ch];
            if (e->fbias != NULL) v = v + e->fbias[ch];
          }
          QF_CAST(float*, Y)[at] = v;
        }
      }
    }
  }
}

/* ---- scalar microkernels ------------------------------------------------------------------------------- */

static void qf_sgemm_ukr_scalar(int32_t mr, int32_t kc, const float* A, int32_t amr, const float* B, int32_t pstride, float* C, int32_t ldc,
                                int32_t nvalid, int32_t flags, const qf_epi_f32* e, int32_t row0, int32_t col0) {
  (void)pstride;
  for (int32_t i = 0; i < mr; i++) {
    float acc[QF_PANEL];
    for (int32_t j = 0; j < QF_PANEL; j++) acc[j] = 0.0f;
    for (int32_t k = 0; k < kc; k++) {
      float av = A[(size_t)k * amr + i];
      const float* b = B + (size_t)k * QF_PANEL;
      for (int32_t j = 0; j < QF_PANEL; j++) acc[j] += av * b[j];
    }
    float* c = C + (size_t)i * ldc;
    for (int32_t j = 0; j < nvalid; j++) c[j] = (flags & QF_ACCUM) ? c[j] + acc[j] : acc[j];
  }
  if (flags & QF_EPI) qf_epi_f32_apply(e, C, ldc, row0, col0, mr, nvalid);
}

static void qf_qgemm_ukr_scalar_u8(int32_t mr, int32_t k4, const uint8_t* A, int32_t lda, const uint8_t* B, int32_t pstride, int32_t* T, int32_t ldt) {
  (void)pstride;
  for (int32_t i = 0; i < mr; i++) {
    const uint8_t* a = A + (size_t)i * lda;
    for (int32_t j = 0; j < QF_PANEL; j++) {
      uint32_t acc = 0;
      for (int32_t k = 0; k < k4 * 4; k++) acc += (uint32_t)((int32_t)a[k] * (int32_t)(int8_t)B[(size_t)(k >> 2) * 64 + j * 4 + (k & 3)]);
      T[(size_t)i * ldt + j] = (int32_t)acc;
    }
  }
}

static void qf_qgemm_ukr_scalar_s8(int32_t mr, int32_t k4, const uint8_t* A, int32_t lda, const uint8_t* B, int32_t pstride, int32_t* T, int32_t ldt) {
  (void)pstride;
  for (int32_t i = 0; i < mr; i++) {
    const uint8_t* a = A + (size_t)i * lda;
    for (int32_t j = 0; j < QF_PANEL; j++) {
      uint32_t acc = 0;
      for (int32_t k = 0; k < k4 * 4; k++) acc += (uint32_t)((int32_t)(int8_t)a[k] * (int32_t)B[(size_t)(k >> 2) * 64 + j * 4 + (k & 3)]);
      T[(size_t)i * ldt + j] = (int32_t)acc;
    }
  }
}

static const qf_sgemm_kernel QF_SGEMM_SCALAR = {4, 16, qf_sgemm_ukr_scalar, qf_sgemm_ukr_scalar};
static const qf_qgemm_kernel QF_QGEMM_SCALAR = {4, 16, qf_qgemm_ukr_scalar_u8, qf_qgemm_ukr_scalar_s8, qf_qgemm_ukr_scalar_u8,
                                                qf_qgemm_ukr_scalar_s8, qf_qepi_apply};

/* ---- drivers ---------------------------------------------------------------------------------------------- */

#define QF_KC 128

/*
 * C[M][N] = A x B for the columns [n0, n1) (n0 a multiple of 16), with the epilogue. A is packed
 * with qf_pack_a_f32 for u->mr, B is packed panels. K is blocked by QF_KC and M by QF_MC so a B tile
 * stays in L1 while the packed A block (in L2) streams past it. row0 offsets the epilogue's row
 * index (conv: the group's first output channel).
 */
#define QF_MC 480
static void qf_sgemm_cols(const qf_sgemm_kernel* u, int32_t M, int32_t N, int32_t K, const float* Ap, const float* Bp,
                          float* C, int32_t ldc, const qf_epi_f32* e, int32_t row0, int32_t n0, int32_t n1) {
  int32_t pstride = K * QF_PANEL, mr = u->mr;
  /* A few rows (GEMV) are memory-bound on B: stream each panel whole instead of in K blocks that
     jump between panels. */
  int32_t kb = M <= 4 ? QF_MAX(K, 1) : QF_KC;
  for (int32_t k0 = 0; k0 < K || k0 == 0; k0 += kb) {
    int32_t kc = QF_MIN(kb, K - k0);
    int32_t flags = (k0 > 0 ? QF_ACCUM : 0) | (k0 + kb >= K ? QF_EPI : 0);
    for (int32_t i0 = 0; i0 < M; i0 += QF_MC) {
      int32_t i1 = QF_MIN(M, i0 + QF_MC);
      for (int32_t j = n0; j < n1; j += u->nr) {
        int32_t nv = QF_MIN(u->nr, QF_MIN(n1, N) - j);
        if (nv <= 0) break;
        qf_sgemm_ukr_fn fn = nv <= QF_PANEL ? u->tail : u->full;
        const float* b = Bp + (size_t)(j / QF_PANEL) * pstride + (size_t)k0 * QF_PANEL;
        for (int32_t i = i0; i < i1; i += mr) {
          int32_t m = QF_MIN(mr, M - i);
          fn(m, kc, Ap + (size_t)(i / mr) * K * mr + (size_t)k0 * mr, mr, b, pstride, C + (size_t)i * ldc + j, ldc, nv, flags, e, row0 + i, j);
        }
      }
    }
    if (K == 0) break;
  }
}

/*
 * Raw int8 products for columns [n0, n1) of every row, each tile turned into output by u->epi.
 * A: packed rows [M][K4*4]; Bp: panels; a_signed picks the microkernel (A int8 x B uint8).
 * `tile` is scratch of mr * nr int32.
 */
static void qf_qgemm_cols(const qf_qgemm_kernel* u, int32_t a_signed, int32_t M, int32_t N, int32_t K, const uint8_t* A, const uint8_t* Bp,
                          const qf_qepi* e, void* Y, int32_t ldy, int32_t ysize, int32_t r0, int32_t c0, int32_t n0, int32_t n1, int32_t* tile) {
  int32_t k4 = qf_k4(K), lda = k4 * 4, pstride = k4 * 64;
  for (int32_t j = n0; j < n1; j += u->nr) {
    int32_t nv = QF_MIN(u->nr, QF_MIN(n1, N) - j);
    if (nv <= 0) break;
    qf_qgemm_ukr_fn fn = nv <= QF_PANEL ? (a_signed ? u->as8_tail : u->au8_tail) : (a_signed ? u->as8 : u->au8);
    const uint8_t* b = Bp + (size_t)(j / QF_PANEL) * pstride;
    for (int32_t i = 0; i < M; i += u->mr) {
      int32_t mr = QF_MIN(u->mr, M - i);
      fn(mr, k4, A + (size_t)i * lda, lda, b, pstride, tile, u->nr);
      u->epi(e, tile, u->nr, r0 + i, c0 + j, mr, nv, QF_CAST(uint8_t*, Y) + ((size_t)i * ldy + j) * ysize, ldy);
    }
  }
}

/* Pixels per im2col block: a multiple of 32 so the 32-wide AVX-512 tile never straddles blocks. */
#define QF_CONV_PB 64

/* Floats of the packed weights of one group: qf_pack_a_f32 of its mg rows for height mr. */
static inline size_t qf_conv_group_floats(const qf_conv_geo* g, int32_t mr) {
  int32_t mg = g->M / g->G, K = (g->C / g->G) * g->KH * g->KW;
  return (size_t)((mg + mr - 1) / mr) * mr * K;
}

/*
 * fp32 convolution of one image, group grp, output pixels [p0, p1) (p0 a multiple of QF_CONV_PB):
 * im2col of a pixel block into scratch (K * QF_CONV_PB floats), then W[group rows] x block.
 * Xp: the padded input (qf_conv_f32_input), or the input itself when qf_conv_f32_padded is 0.
 * Wp: the weights packed per group (qf_pack_a_f32 of each group's rows, groups one after another).
 * Y is [M][OH*OW].
 */
static void qf_conv_f32_block(const qf_sgemm_kernel* u, const qf_conv_geo* g, const float* Xp, const float* Wp, float* Y, const qf_epi_f32* e,
                              int32_t grp, int32_t p0, int32_t p1, float* scratch) {
  int32_t padded = qf_conv_f32_padded(g);
  int32_t ph = padded ? qf_conv8_hp_(g) : g->H, pw = padded ? qf_conv8_wp_(g) : g->W;
  int32_t cg = g->C / g->G, mg = g->M / g->G, K = cg * g->KH * g->KW, ohw = g->OH * g->OW;
  const float* Wg = Wp + (size_t)grp * qf_conv_group_floats(g, u->mr);
  for (int32_t pb = p0; pb < p1; pb += QF_CONV_PB) {
    int32_t pe = QF_MIN(QF_MIN(pb + QF_CONV_PB, p1), ohw);
    int32_t npan = qf_panels(pe - pb);
    qf_im2col_f32(g, Xp, ph, pw, grp, pb, npan, scratch);
    qf_sgemm_cols(u, mg, pe - pb, K, Wg, scratch, Y + (size_t)grp * mg * ohw + pb, ohw, e, grp * mg, 0, pe - pb);
  }
}

/*
 * int8 convolution of one image, group grp, pixels [p0, p1): panels from the transformed input Xi
 * (qf_conv8_input) into scratch (KQ*64*(QF_CONV_PB/16) bytes, then QF_CONV_PB int32 column sums when
 * e->sb is requested), raw products W (qf_pack_conv_w8 rows) x block, requantized per row.
 * e->sb must be non-NULL (any pointer) when the column sums are needed; it is replaced here.
 */
static void qf_conv_8_block(const qf_qgemm_kernel* u, const qf_conv_geo* g, const uint8_t* Xi, const uint8_t* Wp, const qf_qepi* e, void* Y,
                            int32_t ysize, int32_t grp, int32_t p0, int32_t p1, uint8_t* scratch, int32_t* tile) {
  int32_t mg = g->M / g->G, kq = qf_conv8_kq(g), ohw = g->OH * g->OW;
  uint8_t* cols = scratch;
  int32_t* sums = QF_CAST(int32_t*, scratch + (size_t)kq * 64 * (QF_CONV_PB / QF_PANEL));
  qf_qepi le = *e;
  for (int32_t pb = p0; pb < p1; pb += QF_CONV_PB) {
    int32_t pe = QF_MIN(QF_MIN(pb + QF_CONV_PB, p1), ohw);
    int32_t npan = qf_panels(pe - pb);
    qf_im2col_8(g, Xi, grp, pb, npan, cols, e->sb != NULL ? sums : NULL);
    if (e->sb != NULL) le.sb = sums - pb;
    qf_qgemm_cols(u, 1, mg, pe - pb, kq * 4, Wp + (size_t)grp * mg * kq * 4, cols, &le, QF_CAST(uint8_t*, Y) + ((size_t)grp * mg * ohw + pb) * ysize,
                  ohw, ysize, grp * mg, pb, 0, pe - pb, tile);
  }
}

/* ---- depthwise convolution (group == C == M), direct ------------------------------------------------------ */

/*
 * fp32 depthwise convolution of channels [c0, c1) of one image: y[c][oy][ox] = bias[c] +
 * sum_{ky,kx} w[c][ky][kx] * x[c][oy*SH - PH + ky*DH][ox*SW - PW + kx*DW], then the activation.
 */
static void qf_dw_f32(const qf_conv_geo* g, const float* X, const float* Wt, float* Y, const qf_epi_f32* e, int32_t c0, int32_t c1) {
  int32_t OW = g->OW;
  for (int32_t c = c0; c < c1; c++) {
    const float* x = X + (size_t)c * g->H * g->W;
    const float* w = Wt + (size_t)c * g->KH * g->KW;
    float b = 0.0f;
    for (int32_t oy = 0; oy < g->OH; oy++) {
      float* y = Y + ((size_t)c * g->OH + oy) * OW;
      for (int32_t ox = 0; ox < OW; ox++) y[ox] = b;
      for (int32_t ky = 0; ky < g->KH; ky++) {
        int32_t iy = oy * g->SH - g->PH + ky * g->DH;
        if (iy < 0 || iy >= g->H) continue;
        const float* row = x + (size_t)iy * g->W;
        for (int32_t kx = 0; kx < g->KW; kx++) {
          float wv = w[ky * g->KW + kx];
          int32_t off = kx * g->DW - g->PW;
          /* valid ox: 0 <= ox*SW + off < W */
          int32_t lo = off >= 0 ? 0 : (-off + g->SW - 1) / g->SW;
          int32_t hi = g->W - 1 - off < 0 ? 0 : (g->W - 1 - off) / g->SW + 1;
          if (hi > OW) hi = OW;
          if (g->SW == 1) {
            const float* r = row + off;
            for (int32_t ox = lo; ox < hi; ox++) y[ox] += wv * r[ox];
          } else if (g->SW == 2) {
            const float* r = row + off;
            for (int32_t ox = lo; ox < hi; ox++) y[ox] += wv * r[2 * ox];
          } else {
            for (int32_t ox = lo; ox < hi; ox++) y[ox] += wv * row[ox * g->SW + off];
          }
        }
      }
      if (e->bias != NULL || e->nops > 0) for (int32_t ox = 0; ox < OW; ox++) y[ox] = qf_epi_one(e, y[ox], c);
    }
  }
}

/* int32 scratch of qf_dw_8: the padded plane and one output row. */
static inline size_t qf_dw8_scratch(const qf_conv_geo* g) {
  return (size_t)((g->OH - 1) * g->SH + (g->KH - 1) * g->DH + 1) * ((g->OW - 1) * g->SW + (g->KW - 1) * g->DW + 1) + g->OW;
}

/*
 * 8-bit depthwise convolution of channels [c0, c1): exact int32 sums of (x - zx) * (w - zw[c]) over
 * the taps (padding is the real 0), requantized per channel by epi_fn. Each channel's centred input
 * is first copied into a zero-padded int32 plane, so the tap loops have no bounds checks and
 * vectorize. x and w are read as signed (x_signed / w_signed) or unsigned bytes. e must have
 * sa = sb = NULL and za = zb = 0. scratch: qf_dw8_scratch(g) int32.
 */
static void qf_dw_8(const qf_conv_geo* g, const uint8_t* X, int32_t x_signed, int32_t zx, const uint8_t* Wt, int32_t w_signed, const int32_t* zw,
                    const qf_qepi* e, qf_qepi_fn epi_fn, void* Y, int32_t ysize, int32_t c0, int32_t c1, int32_t* scratch) {
  int32_t OW = g->OW;
  int32_t hp = (g->OH - 1) * g->SH + (g->KH - 1) * g->DH + 1, wp = (g->OW - 1) * g->SW + (g->KW - 1) * g->DW + 1;
  int32_t* plane = scratch;
  int32_t* acc = scratch + (size_t)hp * wp;
  for (int32_t c = c0; c < c1; c++) {
    const uint8_t* x = X + (size_t)c * g->H * g->W;
    for (int32_t y = 0; y < hp; y++) {
      int32_t* d = plane + (size_t)y * wp;
      int32_t iy = y - g->PH;
      int32_t xx = 0;
      if (iy >= 0 && iy < g->H) {
        const uint8_t* row = x + (size_t)iy * g->W;
        int32_t lo = QF_MIN(g->PW, wp), hi = QF_MIN(g->PW + g->W, wp);
        for (; xx < lo; xx++) d[xx] = 0;
        if (x_signed) for (; xx < hi; xx++) d[xx] = (int32_t)(int8_t)row[xx - g->PW] - zx;
        else for (; xx < hi; xx++) d[xx] = (int32_t)row[xx - g->PW] - zx;
      }
      for (; xx < wp; xx++) d[xx] = 0;
    }
    const uint8_t* w = Wt + (size_t)c * g->KH * g->KW;
    for (int32_t oy = 0; oy < g->OH; oy++) {
      for (int32_t ox = 0; ox < OW; ox++) acc[ox] = 0;
      for (int32_t ky = 0; ky < g->KH; ky++) {
        for (int32_t kx = 0; kx < g->KW; kx++) {
          int32_t wv = (w_signed ? (int32_t)(int8_t)w[ky * g->KW + kx] : (int32_t)w[ky * g->KW + kx]) - zw[c];
          const int32_t* r = plane + (size_t)(oy * g->SH + ky * g->DH) * wp + (size_t)kx * g->DW;
          if (g->SW == 1) {
            for (int32_t ox = 0; ox < OW; ox++) acc[ox] += wv * r[ox];
          } else if (g->SW == 2) {
            for (int32_t ox = 0; ox < OW; ox++) acc[ox] += wv * r[2 * ox];
          } else {
            for (int32_t ox = 0; ox < OW; ox++) acc[ox] += wv * r[ox * g->SW];
          }
        }
      }
      epi_fn(e, acc, OW, c, 0, 1, OW, QF_CAST(uint8_t*, Y) + ((size_t)c * g->OH + oy) * OW * ysize, OW);
    }
  }
}

/* ---- weight-only quantized GEMV / GEMM (A16W8, A16W4) ------------------------------------------------------- */

/*
 * int8 weight-only: y[m][n] = (sum_k x[m][k] * q[n][k]) * scale[n] + bias[n], rows n in [n0, n1).
 * (torchao int8_weight_only: per-output-channel symmetric int8 weights, float activations.)
 */
static void qf_woq8_scalar(int32_t M, int32_t K, const float* x, const int8_t* q, const float* scale, const float* bias, float* y, int32_t ldy,
                           int32_t n0, int32_t n1) {
  for (int32_t m = 0; m < M; m++) {
    const float* xr = x + (size_t)m * K;
    for (int32_t n = n0; n < n1; n++) {
      const int8_t* w = q + (size_t)n * K;
      float acc = 0.0f;
      for (int32_t k = 0; k < K; k++) acc += xr[k] * (float)w[k];
      float v = acc * scale[n];
      y[(size_t)m * ldy + n] = bias != NULL ? v + bias[n] : v;
    }
  }
}

/*
 * int4 weight-only with groups of G along k (G a multiple of 32): w[n][k] = q * s[n][g] + b[n][g]
 * (both of torchao's zero-point domains fold into this: INT: b = -zp * s; FLOAT: b = zero - 8 * s).
 * q is packed per 32-block of k: byte i holds k0+i (low nibble) and k0+16+i (high nibble).
 * y[m][n] = sum_g s[n][g] * sum_{k in g} x[m][k] q[n][k] + b[n][g] * sum_{k in g} x[m][k].
 * xsum: [M][K/G] group sums of x (computed by the caller once per call).
 */
static void qf_woq4_scalar(int32_t M, int32_t K, int32_t G, const float* x, const float* xsum, const uint8_t* q, const float* s, const float* b,
                           const float* bias, float* y, int32_t ldy, int32_t n0, int32_t n1) {
  int32_t ng = K / G;
  for (int32_t m = 0; m < M; m++) {
    const float* xr = x + (size_t)m * K;
    for (int32_t n = n0; n < n1; n++) {
      const uint8_t* w = q + (size_t)n * (K / 2);
      float total = 0.0f;
      for (int32_t gi = 0; gi < ng; gi++) {
        float dot = 0.0f;
        for (int32_t k0 = gi * G; k0 < (gi + 1) * G; k0 += 32) {
          const uint8_t* blk = w + k0 / 2;
          for (int32_t i = 0; i < 16; i++) {
            dot += xr[k0 + i] * (float)(blk[i] & 15);
            dot += xr[k0 + 16 + i] * (float)(blk[i] >> 4);
          }
        }
        total += s[(size_t)n * ng + gi] * dot + b[(size_t)n * ng + gi] * xsum[(size_t)m * ng + gi];
      }
      y[(size_t)m * ldy + n] = bias != NULL ? total + bias[n] : total;
    }
  }
}

/* Group sums of x rows: xsum[m][g] = sum_{k in group g} x[m][k]. */
static void qf_group_sums(int32_t M, int32_t K, int32_t G, const float* x, float* xsum) {
  int32_t ng = K / G;
  for (int32_t m = 0; m < M; m++) {
    for (int32_t gi = 0; gi < ng; gi++) {
      float s = 0.0f;
      for (int32_t k = gi * G; k < (gi + 1) * G; k++) s += x[(size_t)m * K + k];
      xsum[(size_t)m * ng + gi] = s;
    }
  }
}

/* Packs int4 values q[N][K] (one value 0..15 per byte) into the 32-block nibble layout above. */
static void qf_pack_int4(const uint8_t* q, int32_t N, int32_t K, uint8_t* out) {
  for (int32_t n = 0; n < N; n++) {
    const uint8_t* s = q + (size_t)n * K;
    uint8_t* d = out + (size_t)n * (K / 2);
    for (int32_t k0 = 0; k0 < K; k0 += 32) {
      for (int32_t i = 0; i < 16; i++) d[k0 / 2 + i] = (uint8_t)((s[k0 + i] & 15) | ((s[k0 + 16 + i] & 15) << 4));
    }
  }
}

#endif
