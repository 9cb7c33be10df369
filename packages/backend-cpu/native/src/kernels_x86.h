// x86 SIMD microkernels (kernels_x86.cc), selected at run time by the dispatcher in addon.cc.
#pragma once
#include "../portable/qf_portable.h"

namespace qf {
extern const qf_sgemm_kernel SGEMM_AVX512;
extern const qf_sgemm_kernel SGEMM_AVX2;
extern const qf_qgemm_kernel QGEMM_AVX512VNNI;
extern const qf_qgemm_kernel QGEMM_AVXVNNI;
extern const qf_qgemm_kernel QGEMM_AVX2;
void dw_f32_avx512(const qf_conv_geo* g, const float* X, const float* Wt, float* Y, const qf_epi_f32* e, int32_t c0, int32_t c1, float* plane);
void woq8_avx512(int32_t M, int32_t K, const float* x, const int8_t* q, const float* scale, const float* bias, float* y, int32_t ldy, int32_t n0, int32_t n1);
void woq4_avx512(int32_t M, int32_t K, int32_t G, const float* x, const float* xsum, const uint8_t* q, const float* s, const float* b, const float* bias,
                 float* y, int32_t ldy, int32_t n0, int32_t n1);
}  // namespace qf
