// Portable drivers compiled for the avx2 target (see drivers.h).
#pragma GCC target("avx2,fma")
#include "../portable/qf_portable.h"
#include "drivers.h"

extern const QfDrivers QF_DRIVERS_AVX2 = {
  "avx2", qf_pack_b_f32, qf_pack_b_8, qf_pack_a_8, qf_pack_a_f32, qf_sgemm_cols, qf_qgemm_cols, qf_conv_f32_input, qf_conv_f32_block, qf_conv8_input, qf_pack_conv_w8, qf_conv_8_block,
  qf_dw_f32, qf_dw_8, qf_woq8_scalar, qf_woq4_scalar, qf_group_sums, qf_pack_int4, &QF_SGEMM_SCALAR, &QF_QGEMM_SCALAR,
};
