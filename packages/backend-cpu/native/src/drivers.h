// The portable drivers (packing, im2col, blocking loops, depthwise, weight-only GEMV), compiled three
// times with different target ISAs (drivers_generic.cc, drivers_avx2.cc, drivers_avx512.cc) so the
// compiler's auto-vectorization of the copy and elementwise loops matches the CPU.
#pragma once
#include "../portable/qf.h"

struct QfDrivers {
  const char* name;
  void (*pack_b_f32)(const float* B, int32_t K, int32_t N, int32_t ldb, int32_t trans, float* out);
  void (*pack_b_8)(const uint8_t* B, int32_t K, int32_t N, int32_t ldb, int32_t trans, uint8_t flip, int32_t sum_signed, uint8_t* out, int32_t* colsum);
  void (*pack_a_8)(const uint8_t* A, int32_t M, int32_t K, int32_t lda, uint8_t flip, int32_t sum_signed, uint8_t* out, int32_t* rowsum);
  void (*pack_a_f32)(const float* A, int32_t M, int32_t K, int32_t lda, int32_t mr, float* out);
  void (*sgemm_cols)(const qf_sgemm_kernel* u, int32_t M, int32_t N, int32_t K, const float* Ap, const float* Bp, float* C, int32_t ldc,
                     const qf_epi_f32* e, int32_t row0, int32_t n0, int32_t n1);
  void (*qgemm_cols)(const qf_qgemm_kernel* u, int32_t a_signed, int32_t M, int32_t N, int32_t K, const uint8_t* A, const uint8_t* Bp, const qf_qepi* e,
                     void* Y, int32_t ldy, int32_t ysize, int32_t r0, int32_t c0, int32_t n0, int32_t n1, int32_t* tile);
  void (*conv_f32_input)(const qf_conv_geo* g, const float* X, float* Xp, int32_t c0, int32_t c1);
  void (*conv_f32_block)(const qf_sgemm_kernel* u, const qf_conv_geo* g, const float* X, const float* Wt, float* Y, const qf_epi_f32* e, int32_t grp,
                         int32_t p0, int32_t p1, float* scratch);
  void (*conv8_input)(const qf_conv_geo* g, const uint8_t* X, uint8_t flip, uint8_t pad, uint8_t* Xi, int32_t q0, int32_t q1);
  void (*pack_conv_w8)(const qf_conv_geo* g, const uint8_t* W, uint8_t flip, uint8_t* out, int32_t* rowsum);
  void (*conv_8_block)(const qf_qgemm_kernel* u, const qf_conv_geo* g, const uint8_t* Xi, const uint8_t* Wp, const qf_qepi* e, void* Y, int32_t ysize,
                       int32_t grp, int32_t p0, int32_t p1, uint8_t* scratch, int32_t* tile);
  void (*dw_f32)(const qf_conv_geo* g, const float* X, const float* Wt, float* Y, const qf_epi_f32* e, int32_t c0, int32_t c1);
  void (*dw_8)(const qf_conv_geo* g, const uint8_t* X, int32_t x_signed, int32_t zx, const uint8_t* Wt, int32_t w_signed, const int32_t* zw, const qf_qepi* e,
               qf_qepi_fn epi_fn, void* Y, int32_t ysize, int32_t c0, int32_t c1, int32_t* scratch);
  void (*woq8)(int32_t M, int32_t K, const float* x, const int8_t* q, const float* scale, const float* bias, float* y, int32_t ldy, int32_t n0, int32_t n1);
  void (*woq4)(int32_t M, int32_t K, int32_t G, const float* x, const float* xsum, const uint8_t* q, const float* s, const float* b, const float* bias,
               float* y, int32_t ldy, int32_t n0, int32_t n1);
  void (*group_sums)(int32_t M, int32_t K, int32_t G, const float* x, float* xsum);
  void (*pack_int4)(const uint8_t* q, int32_t N, int32_t K, uint8_t* out);
  const qf_sgemm_kernel* sgemm_scalar;
  const qf_qgemm_kernel* qgemm_scalar;
};

extern const QfDrivers QF_DRIVERS_GENERIC;
extern const QfDrivers QF_DRIVERS_AVX2;
extern const QfDrivers QF_DRIVERS_AVX512;
