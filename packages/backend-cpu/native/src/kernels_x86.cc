// x86 microkernels, each compiled for its ISA with a target attribute and chosen at run time
// (dispatch.cc). Layouts and semantics: ../portable/qf.h; the scalar microkernels in
// ../portable/qf_portable.h are the reference these must match (exactly for the integer ones).
#include <immintrin.h>
#include <string.h>
#include "kernels_x86.h"

#define T512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
#define T512VNNI __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512vnni")))
#define TAVX2 __attribute__((target("avx2,fma")))
#define TAVXVNNI __attribute__((target("avx2,fma,avxvnni")))

namespace qf {

// ---- fp32: AVX-512, 12 x 32 (two panels) and 12 x 16 ------------------------------------------------

T512 static inline __m512 eop512(const qf_eop* o, __m512 v, __m512 x) {
  const __m512 zero = _mm512_setzero_ps();
  switch (o->kind) {
    case QF_OP_ADD: return _mm512_add_ps(v, x);
    case QF_OP_MUL: return _mm512_mul_ps(v, x);
    case QF_OP_SUB: return _mm512_sub_ps(v, x);
    case QF_OP_RSUB: return _mm512_sub_ps(x, v);
    case QF_OP_DIV: return _mm512_div_ps(v, x);
    case QF_OP_RDIV: return _mm512_div_ps(x, v);
    // max/min as the scalar `v < x ? x : v` (operand order matters for NaN and signed zeros)
    case QF_OP_MAX: return _mm512_max_ps(x, v);
    case QF_OP_MIN: return _mm512_min_ps(x, v);
    case QF_OP_RELU: return _mm512_max_ps(v, zero);
    case QF_OP_CLIP: return _mm512_min_ps(_mm512_max_ps(v, _mm512_set1_ps(o->a)), _mm512_set1_ps(o->b));
    case QF_OP_HSWISH_CHAIN: {
      __m512 t = _mm512_add_ps(v, _mm512_set1_ps(3.0f));
      t = _mm512_min_ps(_mm512_max_ps(t, zero), _mm512_set1_ps(6.0f));
      return _mm512_div_ps(_mm512_mul_ps(v, t), _mm512_set1_ps(6.0f));
    }
    case QF_OP_HARDSWISH: {
      __m512 t = _mm512_add_ps(_mm512_div_ps(v, _mm512_set1_ps(6.0f)), _mm512_set1_ps(0.5f));
      t = _mm512_min_ps(_mm512_max_ps(t, zero), _mm512_set1_ps(1.0f));
      return _mm512_mul_ps(v, t);
    }
    case QF_OP_HARDSIGMOID: {
      __m512 t = _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(o->a), v), _mm512_set1_ps(o->b));
      return _mm512_min_ps(_mm512_max_ps(t, zero), _mm512_set1_ps(1.0f));
    }
    default: return v;
  }
}

// Bias and the fused program on 16 values of row `row` starting at column `col` (mask m).
T512 static inline __m512 epi512(const qf_epi_f32* e, __m512 v, int32_t row, int32_t col, __mmask16 m) {
  if (e->bias != nullptr) v = _mm512_add_ps(v, e->per_row ? _mm512_set1_ps(e->bias[row]) : _mm512_maskz_loadu_ps(m, e->bias + col));
  for (int32_t i = 0; i < e->nops; i++) {
    const qf_eop* o = &e->ops[i];
    __m512 x = o->vec == nullptr ? _mm512_set1_ps(o->a) : e->per_row ? _mm512_set1_ps(o->vec[row]) : _mm512_maskz_loadu_ps(m, o->vec + col);
    v = eop512(o, v, x);
  }
  return v;
}

template <int MR, int NP>
T512 static void sgemm512(int32_t mr, int32_t kc, const float* A, int32_t amr, const float* B, int32_t pstride, float* C, int32_t ldc,
                          int32_t nvalid, int32_t flags, const qf_epi_f32* e, int32_t row0, int32_t col0) {
  (void)mr;
  __m512 acc[MR][NP];
#pragma GCC unroll 16
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 2
    for (int p = 0; p < NP; p++) acc[r][p] = _mm512_setzero_ps();
  const float* b1 = B + (NP > 1 ? pstride : 0);
  for (int32_t k = 0; k < kc; k++) {
    __m512 b[NP];
    b[0] = _mm512_loadu_ps(B + (size_t)k * 16);
    if (NP > 1) b[NP - 1] = _mm512_loadu_ps(b1 + (size_t)k * 16);
    const float* ak = A + (size_t)k * amr;
#pragma GCC unroll 16
    for (int r = 0; r < MR; r++) {
      __m512 av = _mm512_set1_ps(ak[r]);
#pragma GCC unroll 2
      for (int p = 0; p < NP; p++) acc[r][p] = _mm512_fmadd_ps(av, b[p], acc[r][p]);
    }
  }
#pragma GCC unroll 2
  for (int p = 0; p < NP; p++) {
    int32_t nv = nvalid - p * 16;
    if (nv <= 0) break;
    __mmask16 m = nv >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nv) - 1);
#pragma GCC unroll 16
    for (int r = 0; r < MR; r++) {
      float* c = C + (size_t)r * ldc + p * 16;
      __m512 v = acc[r][p];
      if (flags & QF_ACCUM) v = _mm512_add_ps(_mm512_maskz_loadu_ps(m, c), v);
      if (flags & QF_EPI) v = epi512(e, v, row0 + r, col0 + p * 16, m);
      _mm512_mask_storeu_ps(c, m, v);
    }
  }
}

template <int NP>
static void sgemm512_dispatch(int32_t mr, int32_t kc, const float* A, int32_t amr, const float* B, int32_t pstride, float* C, int32_t ldc,
                              int32_t nvalid, int32_t flags, const qf_epi_f32* e, int32_t row0, int32_t col0) {
  switch (mr) {
#define QF_CASE(R) case R: sgemm512<R, NP>(mr, kc, A, amr, B, pstride, C, ldc, nvalid, flags, e, row0, col0); break;
    QF_CASE(1) QF_CASE(2) QF_CASE(3) QF_CASE(4) QF_CASE(5) QF_CASE(6) QF_CASE(7) QF_CASE(8) QF_CASE(9) QF_CASE(10) QF_CASE(11)
    default: sgemm512<12, NP>(mr, kc, A, amr, B, pstride, C, ldc, nvalid, flags, e, row0, col0);
#undef QF_CASE
  }
}

const qf_sgemm_kernel SGEMM_AVX512 = {12, 32, sgemm512_dispatch<2>, sgemm512_dispatch<1>};

// ---- fp32: AVX2 + FMA, 6 x 16 ----------------------------------------------------------------------------

template <int MR>
TAVX2 static void sgemm256(int32_t mr, int32_t kc, const float* A, int32_t amr, const float* B, int32_t pstride, float* C, int32_t ldc,
                           int32_t nvalid, int32_t flags, const qf_epi_f32* e, int32_t row0, int32_t col0) {
  (void)mr;
  (void)pstride;
  __m256 acc[MR][2];
#pragma GCC unroll 8
  for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  for (int32_t k = 0; k < kc; k++) {
    __m256 b0 = _mm256_loadu_ps(B + (size_t)k * 16), b1 = _mm256_loadu_ps(B + (size_t)k * 16 + 8);
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++) {
      __m256 av = _mm256_broadcast_ss(A + (size_t)k * amr + r);
      acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
    }
  }
  if (nvalid == 16) {
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++) {
      float* c = C + (size_t)r * ldc;
      __m256 v0 = acc[r][0], v1 = acc[r][1];
      if (flags & QF_ACCUM) { v0 = _mm256_add_ps(_mm256_loadu_ps(c), v0); v1 = _mm256_add_ps(_mm256_loadu_ps(c + 8), v1); }
      _mm256_storeu_ps(c, v0);
      _mm256_storeu_ps(c + 8, v1);
    }
    if (flags & QF_EPI) qf_epi_f32_apply(e, C, ldc, row0, col0, MR, 16);
    return;
  }
  alignas(32) float tile[MR * 16];
#pragma GCC unroll 8
  for (int r = 0; r < MR; r++) { _mm256_store_ps(tile + r * 16, acc[r][0]); _mm256_store_ps(tile + r * 16 + 8, acc[r][1]); }
  for (int r = 0; r < MR; r++) {
    float* c = C + (size_t)r * ldc;
    for (int32_t j = 0; j < nvalid; j++) c[j] = (flags & QF_ACCUM) ? c[j] + tile[r * 16 + j] : tile[r * 16 + j];
  }
  if (flags & QF_EPI) qf_epi_f32_apply(e, C, ldc, row0, col0, MR, nvalid);
}

static void sgemm256_dispatch(int32_t mr, int32_t kc, const float* A, int32_t amr, const float* B, int32_t pstride, float* C, int32_t ldc,
                              int32_t nvalid, int32_t flags, const qf_epi_f32* e, int32_t row0, int32_t col0) {
  switch (mr) {
#define QF_CASE(R) case R: sgemm256<R>(mr, kc, A, amr, B, pstride, C, ldc, nvalid, flags, e, row0, col0); break;
    QF_CASE(1) QF_CASE(2) QF_CASE(3) QF_CASE(4) QF_CASE(5)
    default: sgemm256<6>(mr, kc, A, amr, B, pstride, C, ldc, nvalid, flags, e, row0, col0);
#undef QF_CASE
  }
}

const qf_sgemm_kernel SGEMM_AVX2 = {6, 16, sgemm256_dispatch, sgemm256_dispatch};

// ---- int8: AVX-512 VNNI, 6 x 64 (four panels) and 6 x 16 ---------------------------------------------------

template <int MR, int NP, bool AU8>
T512VNNI static void qgemm512(int32_t mr, int32_t k4, const uint8_t* A, int32_t lda, const uint8_t* B, int32_t pstride, int32_t* T, int32_t ldt) {
  (void)mr;
  __m512i acc[MR][NP];
#pragma GCC unroll 8
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
    for (int p = 0; p < NP; p++) acc[r][p] = _mm512_setzero_si512();
  for (int32_t q = 0; q < k4; q++) {
    __m512i b[NP];
#pragma GCC unroll 4
    for (int p = 0; p < NP; p++) b[p] = _mm512_loadu_si512(B + (size_t)p * pstride + (size_t)q * 64);
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++) {
      int32_t a4;
      memcpy(&a4, A + (size_t)r * lda + (size_t)q * 4, 4);
      __m512i av = _mm512_set1_epi32(a4);
#pragma GCC unroll 4
      for (int p = 0; p < NP; p++) acc[r][p] = AU8 ? _mm512_dpbusd_epi32(acc[r][p], av, b[p]) : _mm512_dpbusd_epi32(acc[r][p], b[p], av);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
    for (int p = 0; p < NP; p++) _mm512_storeu_si512(T + (size_t)r * ldt + p * 16, acc[r][p]);
}

template <int NP, bool AU8>
static void qgemm512_dispatch(int32_t mr, int32_t k4, const uint8_t* A, int32_t lda, const uint8_t* B, int32_t pstride, int32_t* T, int32_t ldt) {
  switch (mr) {
#define QF_CASE(R) case R: qgemm512<R, NP, AU8>(mr, k4, A, lda, B, pstride, T, ldt); break;
    QF_CASE(1) QF_CASE(2) QF_CASE(3) QF_CASE(4) QF_CASE(5)
    default: qgemm512<6, NP, AU8>(mr, k4, A, lda, B, pstride, T, ldt);
#undef QF_CASE
  }
}

// The int8 epilogue with AVX-512: the same operations as qf_qepi_apply, 16 columns at a time. Kinds
// and outputs it does not cover go to the scalar one.
T512 static void qepi512(const qf_qepi* e, const int32_t* T, int32_t ldt, int32_t r0, int32_t c0, int32_t mr, int32_t nc, void* Y, int32_t ldy) {
  bool simd = (e->kind == QF_Q_I32 || e->kind == QF_Q_QLINEAR || e->kind == QF_Q_QNNPACK || e->kind == QF_Q_ONEDNN) && e->out_type != QF_OUT_F32;
  if (!simd) {
    qf_qepi_apply(e, T, ldt, r0, c0, mr, nc, Y, ldy);
    return;
  }
  const __m512 flo = _mm512_set1_ps((float)(e->lo - e->zp)), fhi = _mm512_set1_ps((float)(e->hi - e->zp));
  const __m512d dlo = _mm512_set1_pd((double)(e->lo - e->zp)), dhi = _mm512_set1_pd((double)(e->hi - e->zp));
  const __m512i vzp = _mm512_set1_epi32(e->zp);
  const __m512i vK = _mm512_set1_epi32(e->K);
  for (int32_t i = 0; i < mr; i++) {
    int32_t r = r0 + i;
    __m512i vza = _mm512_set1_epi32(e->za[e->za_per_row ? r : 0]);
    __m512i vsa = _mm512_set1_epi32(e->sa != nullptr ? e->sa[r] : 0);
    for (int32_t j = 0; j < nc; j += 16) {
      int32_t n = nc - j < 16 ? nc - j : 16;
      __mmask16 m = n == 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
      int32_t c = c0 + j;
      __m512i acc = _mm512_maskz_loadu_epi32(m, T + (size_t)i * ldt + j);
      __m512i vzb = e->zb_per_col ? _mm512_maskz_loadu_epi32(m, e->zb + c) : _mm512_set1_epi32(e->zb[0]);
      if (e->sa != nullptr) acc = _mm512_sub_epi32(acc, _mm512_mullo_epi32(vzb, vsa));
      if (e->sb != nullptr) acc = _mm512_sub_epi32(acc, _mm512_mullo_epi32(vza, _mm512_maskz_loadu_epi32(m, e->sb + c)));
      acc = _mm512_add_epi32(acc, _mm512_mullo_epi32(_mm512_mullo_epi32(vK, vza), vzb));
      __m512i q;
      if (e->kind == QF_Q_I32) {
        q = acc;
      } else if (e->kind == QF_Q_ONEDNN) {
        __m512d ws0, ws1, ad0, ad1;
        if (e->per_row) {
          ws0 = ws1 = _mm512_set1_pd(e->dws[r]);
          ad0 = ad1 = _mm512_set1_pd(e->dadd[r]);
        } else {
          ws0 = _mm512_maskz_loadu_pd((__mmask8)m, e->dws + c);
          ws1 = _mm512_maskz_loadu_pd((__mmask8)(m >> 8), e->dws + c + 8);
          ad0 = _mm512_maskz_loadu_pd((__mmask8)m, e->dadd + c);
          ad1 = _mm512_maskz_loadu_pd((__mmask8)(m >> 8), e->dadd + c + 8);
        }
        __m512d xs = _mm512_set1_pd(e->xs), ys = _mm512_set1_pd(e->ys);
        __m512d d0 = _mm512_cvtepi32_pd(_mm512_castsi512_si256(acc));
        __m512d d1 = _mm512_cvtepi32_pd(_mm512_extracti64x4_epi64(acc, 1));
        d0 = _mm512_add_pd(_mm512_div_pd(_mm512_mul_pd(_mm512_mul_pd(d0, xs), ws0), ys), ad0);
        d1 = _mm512_add_pd(_mm512_div_pd(_mm512_mul_pd(_mm512_mul_pd(d1, xs), ws1), ys), ad1);
        d0 = _mm512_min_pd(_mm512_max_pd(d0, dlo), dhi);
        d1 = _mm512_min_pd(_mm512_max_pd(d1, dlo), dhi);
        __m256i i0 = _mm512_cvtpd_epi32(d0), i1 = _mm512_cvtpd_epi32(d1);
        q = _mm512_add_epi32(_mm512_inserti64x4(_mm512_castsi256_si512(i0), i1, 1), vzp);
      } else {
        if (e->bias != nullptr) {
          __m512i vb = e->per_row ? _mm512_set1_epi32(e->bias[r]) : _mm512_maskz_loadu_epi32(m, e->bias + c);
          acc = _mm512_add_epi32(acc, vb);
        }
        __m512 mult = e->per_row ? _mm512_set1_ps(e->mult[r]) : _mm512_maskz_loadu_ps(m, e->mult + c);
        __m512 f;
        if (e->kind == QF_Q_QNNPACK) {
          f = _mm512_mul_ps(_mm512_cvtepi32_ps(acc), mult);
        } else {
          __m512d m0 = _mm512_cvtps_pd(_mm512_castps512_ps256(mult));
          __m512d m1 = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(mult), 1)));
          __m512d d0 = _mm512_mul_pd(_mm512_cvtepi32_pd(_mm512_castsi512_si256(acc)), m0);
          __m512d d1 = _mm512_mul_pd(_mm512_cvtepi32_pd(_mm512_extracti64x4_epi64(acc, 1)), m1);
          f = _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(d0)), _mm512_cvtpd_ps(d1), 1);
        }
        f = _mm512_min_ps(_mm512_max_ps(f, flo), fhi);
        q = _mm512_add_epi32(_mm512_cvtps_epi32(f), vzp);
      }
      size_t at = (size_t)i * ldy + j;
      if (e->out_type == QF_OUT_I32) {
        _mm512_mask_storeu_epi32(static_cast<int32_t*>(Y) + at, m, q);
      } else {
        uint8_t* yb = static_cast<uint8_t*>(Y) + at;
        _mm_mask_storeu_epi8(yb, m, _mm512_cvtepi32_epi8(q));
        if (e->lut != nullptr) for (int32_t t = 0; t < n; t++) yb[t] = e->lut[yb[t]];
      }
    }
  }
}

const qf_qgemm_kernel QGEMM_AVX512VNNI = {6, 64, qgemm512_dispatch<4, true>, qgemm512_dispatch<4, false>,
                                          qgemm512_dispatch<1, true>, qgemm512_dispatch<1, false>, qepi512};

// ---- int8: AVX-VNNI (VEX vpdpbusd on 256-bit), 4 x 16 ------------------------------------------------------

template <int MR, bool AU8>
TAVXVNNI static void qgemm_avxvnni(int32_t mr, int32_t k4, const uint8_t* A, int32_t lda, const uint8_t* B, int32_t pstride, int32_t* T, int32_t ldt) {
  (void)mr;
  (void)pstride;
  __m256i acc[MR][2];
#pragma GCC unroll 8
  for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
  for (int32_t q = 0; q < k4; q++) {
    __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(B + (size_t)q * 64));
    __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(B + (size_t)q * 64 + 32));
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++) {
      int32_t a4;
      memcpy(&a4, A + (size_t)r * lda + (size_t)q * 4, 4);
      __m256i av = _mm256_set1_epi32(a4);
      if (AU8) {
        acc[r][0] = _mm256_dpbusd_avx_epi32(acc[r][0], av, b0);
        acc[r][1] = _mm256_dpbusd_avx_epi32(acc[r][1], av, b1);
      } else {
        acc[r][0] = _mm256_dpbusd_avx_epi32(acc[r][0], b0, av);
        acc[r][1] = _mm256_dpbusd_avx_epi32(acc[r][1], b1, av);
      }
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; r++) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(T + (size_t)r * ldt), acc[r][0]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(T + (size_t)r * ldt + 8), acc[r][1]);
  }
}

// ---- int8: AVX2 without VNNI, exact (sign/zero-extend to int16, vpmaddwd), 4 x 16 ---------------------------

template <int MR, bool AU8>
TAVX2 static void qgemm_avx2(int32_t mr, int32_t k4, const uint8_t* A, int32_t lda, const uint8_t* B, int32_t pstride, int32_t* T, int32_t ldt) {
  (void)mr;
  (void)pstride;
  // acc[r][h] holds, for 4 columns h*4..h*4+3, two partial sums each (k pairs 0-1 and 2-3).
  __m256i acc[MR][4];
#pragma GCC unroll 8
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 4
    for (int h = 0; h < 4; h++) acc[r][h] = _mm256_setzero_si256();
  for (int32_t q = 0; q < k4; q++) {
    __m256i b[4];
#pragma GCC unroll 4
    for (int h = 0; h < 4; h++) {
      __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(B + (size_t)q * 64 + h * 16));
      b[h] = AU8 ? _mm256_cvtepi8_epi16(raw) : _mm256_cvtepu8_epi16(raw);
    }
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++) {
      int32_t a4;
      memcpy(&a4, A + (size_t)r * lda + (size_t)q * 4, 4);
      __m128i a8 = _mm_set1_epi32(a4);
      __m256i av = AU8 ? _mm256_cvtepu8_epi16(a8) : _mm256_cvtepi8_epi16(a8);
#pragma GCC unroll 4
      for (int h = 0; h < 4; h++) acc[r][h] = _mm256_add_epi32(acc[r][h], _mm256_madd_epi16(av, b[h]));
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; r++) {
    // hadd pairs: lanes (c0a, c0b, c1a, c1b | c2a, c2b, c3a, c3b) -> per column sums; the 128-bit
    // halves of hadd interleave, which the permute puts back in column order.
    __m256i s01 = _mm256_hadd_epi32(acc[r][0], acc[r][1]);
    __m256i s23 = _mm256_hadd_epi32(acc[r][2], acc[r][3]);
    s01 = _mm256_permute4x64_epi64(s01, 0xD8);
    s23 = _mm256_permute4x64_epi64(s23, 0xD8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(T + (size_t)r * ldt), s01);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(T + (size_t)r * ldt + 8), s23);
  }
}

template <bool AU8, bool VNNI>
static void qgemm256_dispatch(int32_t mr, int32_t k4, const uint8_t* A, int32_t lda, const uint8_t* B, int32_t pstride, int32_t* T, int32_t ldt) {
  switch (mr) {
#define QF_CASE(R) case R: if (VNNI) qgemm_avxvnni<R, AU8>(mr, k4, A, lda, B, pstride, T, ldt); else qgemm_avx2<R, AU8>(mr, k4, A, lda, B, pstride, T, ldt); break;
    QF_CASE(1) QF_CASE(2) QF_CASE(3)
    default: if (VNNI) qgemm_avxvnni<4, AU8>(mr, k4, A, lda, B, pstride, T, ldt); else qgemm_avx2<4, AU8>(mr, k4, A, lda, B, pstride, T, ldt);
#undef QF_CASE
  }
}

const qf_qgemm_kernel QGEMM_AVXVNNI = {4, 16, qgemm256_dispatch<true, true>, qgemm256_dispatch<false, true>,
                                       qgemm256_dispatch<true, true>, qgemm256_dispatch<false, true>, qf_qepi_apply};
const qf_qgemm_kernel QGEMM_AVX2 = {4, 16, qgemm256_dispatch<true, false>, qgemm256_dispatch<false, false>,
                                    qgemm256_dispatch<true, false>, qgemm256_dispatch<false, false>, qf_qepi_apply};

// ---- fp32 depthwise convolution: AVX-512 ------------------------------------------------------------------

// Channels [c0, c1) of one image. Each channel's input is first copied into a zero-padded plane (so
// the taps need no bounds checks), then up to 64 outputs of a row accumulate in four registers over
// all taps. Stride 1 loads contiguously, stride 2 takes the even lanes of two loads, others gather.
T512 void dw_f32_avx512(const qf_conv_geo* g, const float* X, const float* Wt, float* Y, const qf_epi_f32* e, int32_t c0, int32_t c1, float* plane) {
  const int32_t hp = (g->OH - 1) * g->SH + (g->KH - 1) * g->DH + 1;
  const int32_t wp = (g->OW - 1) * g->SW + (g->KW - 1) * g->DW + 1;
  const int32_t wps = wp + 64;  // slack for full-width loads past the last output
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (int32_t c = c0; c < c1; c++) {
    const float* x = X + (size_t)c * g->H * g->W;
    for (int32_t y = 0; y < hp; y++) {
      float* d = plane + (size_t)y * wps;
      int32_t iy = y - g->PH;
      if (iy < 0 || iy >= g->H) {
        memset(d, 0, sizeof(float) * wps);
        continue;
      }
      int32_t lo = g->PW < wp ? g->PW : wp;
      int32_t hi = g->PW + g->W < wp ? g->PW + g->W : wp;
      memset(d, 0, sizeof(float) * lo);
      memcpy(d + lo, x + (size_t)iy * g->W + (lo - g->PW), sizeof(float) * (hi - lo));
      memset(d + hi, 0, sizeof(float) * (wps - hi));
    }
    const float* w = Wt + (size_t)c * g->KH * g->KW;
    for (int32_t oy = 0; oy < g->OH; oy++) {
      float* yrow = Y + ((size_t)c * g->OH + oy) * g->OW;
      for (int32_t ox0 = 0; ox0 < g->OW; ox0 += 64) {
        __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
        int32_t nch = (g->OW - ox0 + 15) / 16;
        if (nch > 4) nch = 4;
        for (int32_t ky = 0; ky < g->KH; ky++) {
          const float* row = plane + (size_t)(oy * g->SH + ky * g->DH) * wps;
          for (int32_t kx = 0; kx < g->KW; kx++) {
            __m512 wv = _mm512_set1_ps(w[ky * g->KW + kx]);
            const float* base = row + (size_t)ox0 * g->SW + (size_t)kx * g->DW;
            for (int32_t q = 0; q < nch; q++) {
              __m512 v;
              if (g->SW == 1) {
                v = _mm512_loadu_ps(base + q * 16);
              } else if (g->SW == 2) {
                v = _mm512_permutex2var_ps(_mm512_loadu_ps(base + q * 32), even, _mm512_loadu_ps(base + q * 32 + 16));
              } else {
                __m512i idx = _mm512_mullo_epi32(_mm512_add_epi32(lane, _mm512_set1_epi32(q * 16)), _mm512_set1_epi32(g->SW));
                int32_t n = g->OW - ox0 - q * 16;
                __mmask16 m = n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
                v = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, idx, base, 4);
              }
              acc[q] = _mm512_fmadd_ps(wv, v, acc[q]);
            }
          }
        }
        for (int32_t q = 0; q < nch; q++) {
          int32_t n = g->OW - ox0 - q * 16;
          __mmask16 m = n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
          _mm512_mask_storeu_ps(yrow + ox0 + q * 16, m, epi512(e, acc[q], c, 0, m));
        }
      }
    }
  }
}

// ---- weight-only GEMV: AVX-512 ----------------------------------------------------------------------------------

T512 static inline float hsum512(__m512 v) { return _mm512_reduce_add_ps(v); }

// Four weight rows at a time share each x load.
T512 void woq8_avx512(int32_t M, int32_t K, const float* x, const int8_t* q, const float* scale, const float* bias, float* y, int32_t ldy,
                      int32_t n0, int32_t n1) {
  int32_t k16 = K & ~15;
  for (int32_t m = 0; m < M; m++) {
    const float* xr = x + (size_t)m * K;
    int32_t n = n0;
    for (; n + 4 <= n1; n += 4) {
      __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      const int8_t* w0 = q + (size_t)n * K;
      const int8_t* w1 = w0 + K;
      const int8_t* w2 = w1 + K;
      const int8_t* w3 = w2 + K;
      for (int32_t k = 0; k < k16; k += 16) {
        __m512 xv = _mm512_loadu_ps(xr + k);
        a0 = _mm512_fmadd_ps(xv, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w0 + k)))), a0);
        a1 = _mm512_fmadd_ps(xv, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w1 + k)))), a1);
        a2 = _mm512_fmadd_ps(xv, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w2 + k)))), a2);
        a3 = _mm512_fmadd_ps(xv, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w3 + k)))), a3);
      }
      float s[4] = {hsum512(a0), hsum512(a1), hsum512(a2), hsum512(a3)};
      const int8_t* ws[4] = {w0, w1, w2, w3};
      for (int t = 0; t < 4; t++) {
        for (int32_t k = k16; k < K; k++) s[t] += xr[k] * (float)ws[t][k];
        float v = s[t] * scale[n + t];
        y[(size_t)m * ldy + n + t] = bias != nullptr ? v + bias[n + t] : v;
      }
    }
    if (n < n1) qf_woq8_scalar(1, K, xr, q, scale, bias, y + (size_t)m * ldy, ldy, n, n1);
  }
}

// int4 (32-blocks of nibbles, see qf_woq4_scalar): four rows at a time share the x loads; each row
// keeps two partial dot products (low and high nibbles) so the FMA chains stay short, and a vector
// accumulator collects s[g] * dot_g for every group; the b[g] * xsum[g] terms are a short scalar dot
// product per row.
T512 void woq4_avx512(int32_t M, int32_t K, int32_t G, const float* x, const float* xsum, const uint8_t* q, const float* s, const float* b,
                      const float* bias, float* y, int32_t ldy, int32_t n0, int32_t n1) {
  int32_t ng = K / G;
  const __m512i low = _mm512_set1_epi32(15);
  for (int32_t m = 0; m < M; m++) {
    const float* xr = x + (size_t)m * K;
    const float* xs = xsum + (size_t)m * ng;
    int32_t n = n0;
    for (; n + 4 <= n1; n += 4) {
      const uint8_t* w[4];
      for (int r = 0; r < 4; r++) w[r] = q + (size_t)(n + r) * (K / 2);
      __m512 t[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
      for (int32_t gi = 0; gi < ng; gi++) {
        __m512 dl[4], dh[4];
        for (int r = 0; r < 4; r++) dl[r] = dh[r] = _mm512_setzero_ps();
        for (int32_t k0 = gi * G; k0 < (gi + 1) * G; k0 += 32) {
          __m512 xl = _mm512_loadu_ps(xr + k0), xh = _mm512_loadu_ps(xr + k0 + 16);
#pragma GCC unroll 4
          for (int r = 0; r < 4; r++) {
            __m512i qv = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w[r] + k0 / 2)));
            dl[r] = _mm512_fmadd_ps(xl, _mm512_cvtepi32_ps(_mm512_and_si512(qv, low)), dl[r]);
            dh[r] = _mm512_fmadd_ps(xh, _mm512_cvtepi32_ps(_mm512_srli_epi32(qv, 4)), dh[r]);
          }
        }
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) t[r] = _mm512_fmadd_ps(_mm512_set1_ps(s[(size_t)(n + r) * ng + gi]), _mm512_add_ps(dl[r], dh[r]), t[r]);
      }
      for (int r = 0; r < 4; r++) {
        float v = hsum512(t[r]);
        for (int32_t gi = 0; gi < ng; gi++) v += b[(size_t)(n + r) * ng + gi] * xs[gi];
        y[(size_t)m * ldy + n + r] = bias != nullptr ? v + bias[n + r] : v;
      }
    }
    if (n < n1) qf_woq4_scalar(1, K, G, xr, xs, q, s, b, bias, y + (size_t)m * ldy, ldy, n, n1);
  }
}

}  // namespace qf
