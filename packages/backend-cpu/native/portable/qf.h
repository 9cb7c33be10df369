/*
 * qforge CPU kernels: declarations shared by the native addon (C++, x86 SIMD with runtime dispatch)
 * and the WebAssembly module (C, wasm SIMD128). Everything here is plain C so both compilers take it.
 *
 * Layouts (one for every tier, so that packing code is shared):
 *  - fp32 B panels: [ceil(N/16)][K][16] floats, columns past N are zero.
 *  - int8 B panels: [ceil(N/16)][K4][16][4] bytes (K4 = ceil(K/4)): four consecutive k of one column
 *    are adjacent, which is the operand order of VPDPBUSD / i32x4.dot_i16x8; k past K is zero.
 *  - int8 A rows: [M][K4*4] bytes (K padded with zeros), the broadcast operand.
 */
#ifndef QF_H
#define QF_H

#include <stdint.h>
#include <stddef.h>

#ifdef __cplusplus
#define QF_RESTRICT __restrict__
extern "C" {
#else
#define QF_RESTRICT restrict
#endif

#define QF_PANEL 16

/* ---- fp32 epilogue: bias and a fused elementwise program --------------------------------------- */

/*
 * One step of the elementwise tail fused into an fp32 GEMM/conv. Each step is one float32 operation
 * (rounded to float32 like the unfused graph node), with a scalar operand `a` or, when `vec` is set,
 * a per-channel operand vec[channel] (channel = row for conv, column for linear).
 */
enum {
  QF_OP_ADD = 0,      /* v + x */
  QF_OP_MUL = 1,      /* v * x */
  QF_OP_SUB = 2,      /* v - x */
  QF_OP_RSUB = 3,     /* x - v */
  QF_OP_DIV = 4,      /* v / x */
  QF_OP_RDIV = 5,     /* x / v */
  QF_OP_MAX = 6,      /* max(v, x) */
  QF_OP_MIN = 7,      /* min(v, x) */
  QF_OP_RELU = 8,     /* max(v, 0) */
  QF_OP_CLIP = 9,     /* clip(v, a, b) */
  /* torch hardswish exported as nodes: div(mul(v, clip(add(v, 3), 0, 6)), 6), each step in float32 */
  QF_OP_HSWISH_CHAIN = 10,
  /* the hardswish op: v * max(0, min(1, v / 6 + 0.5)) */
  QF_OP_HARDSWISH = 11,
  /* ONNX HardSigmoid: max(0, min(1, a * v + b)) */
  QF_OP_HARDSIGMOID = 12
};

#define QF_MAX_EOPS 8

typedef struct qf_eop {
  int32_t kind;
  float a, b;
  const float* vec; /* NULL: the scalar a */
} qf_eop;

typedef struct qf_epi_f32 {
  const float* bias;    /* NULL: none */
  int32_t per_row;      /* 1: bias and vec indexed by row (conv, W x col), 0: by column (linear, x W^T) */
  int32_t nops;
  qf_eop ops[QF_MAX_EOPS];
} qf_epi_f32;

/* ---- int8 epilogue: zero-point corrections and requantization ---------------------------------- */

enum {
  /* int32 accumulators (matmul_integer / conv_integer) */
  QF_Q_I32 = 0,
  /* ONNX QLinear*: clamp(rint(f32((double)(acc + bias) * mult)) + zp) (ORT MlasRequantizeOutput) */
  QF_Q_QLINEAR = 1,
  /* PyTorch qnnpack/xnnpack: clamp(rint(f32(f32(acc + bias_q) * mult)) + zp) */
  QF_Q_QNNPACK = 2,
  /* PyTorch onednn: clamp(rint(acc * xs * ws[c] / ys + badd[c]) + zp), double arithmetic */
  QF_Q_ONEDNN = 3,
  /* PyTorch linear_dynamic, qnnpack: f32(f32(acc) * mult[c]) (+ fbias[c] in f32) */
  QF_Q_DYN_QNNPACK = 4,
  /* PyTorch linear_dynamic, onednn: acc * xs * ws[c] + fbias[c] in double, stored as f32 */
  QF_Q_DYN_ONEDNN = 5
};

enum { QF_OUT_U8 = 0, QF_OUT_S8 = 1, QF_OUT_I32 = 2, QF_OUT_F32 = 3 };

typedef struct qf_qepi {
  int32_t kind;
  int32_t per_row; /* requantization parameters indexed by row (1) or by column (0) */
  int32_t out_type;
  int32_t zp, lo, hi;
  int32_t K; /* the true reduction length (for the zero-point correction) */
  /* Zero points of the two operands in the domain the kernel multiplies (A: u8 or s8, B: the other),
     za per row when za_per_row, zb per column when zb_per_col, else element 0. */
  const int32_t* za;
  int32_t za_per_row;
  const int32_t* zb;
  int32_t zb_per_col;
  /* Row sums of A and column sums of B over k < K; NULL when the matching zero point is all zero. */
  const int32_t* sa;
  const int32_t* sb;
  const int32_t* bias; /* int32, added (wrapping) before requantization; NULL: none */
  const float* mult;   /* float32 multiplier per channel */
  const double* dws;   /* onednn: weight scale per channel */
  const double* dadd;  /* onednn: bias / y_scale per channel */
  const float* fbias;  /* dynamic: float bias per channel; NULL: none */
  const double* dfbias; /* dynamic onednn: float bias per channel as double */
  double xs, ys;
  /* A fused per-tensor quantized unary op (hardswish, sigmoid, ...) as a table over the output
     byte, applied after requantization (8-bit outputs only); NULL: none. */
  const uint8_t* lut;
} qf_qepi;

/* ---- convolution geometry ---------------------------------------------------------------------- */

typedef struct qf_conv_geo {
  int32_t C, H, W;   /* input channels and spatial size of one image */
  int32_t M;         /* output channels */
  int32_t G;         /* groups */
  int32_t KH, KW, SH, SW, PH, PW, DH, DW;
  int32_t OH, OW;
} qf_conv_geo;

/* ---- microkernel tables ------------------------------------------------------------------------------ */

/*
 * fp32: C[mr][<= nr] (+)= A x panels starting at B (panel stride pstride floats), A a packed row
 * panel: element (r, k) at A[k * amr + r] (amr: the panel height the rows were packed with).
 * flags bit 0: add to C (a later k block), bit 1: apply the epilogue (the last k block).
 */
#define QF_ACCUM 1
#define QF_EPI 2
typedef void (*qf_sgemm_ukr_fn)(int32_t mr, int32_t kc, const float* A, int32_t amr, const float* B, int32_t pstride, float* C, int32_t ldc,
                                int32_t nvalid, int32_t flags, const qf_epi_f32* e, int32_t row0, int32_t col0);
typedef struct qf_sgemm_kernel {
  int32_t mr, nr;       /* nr: 16 or 32 */
  qf_sgemm_ukr_fn full; /* nr columns */
  qf_sgemm_ukr_fn tail; /* 16 columns (one panel), used for the last tile when nr is 32 */
} qf_sgemm_kernel;

/* int8: raw T[mr][nr] = A rows (K4*4 bytes each, stride lda) x panels (stride pstride bytes). */
typedef void (*qf_qgemm_ukr_fn)(int32_t mr, int32_t k4, const uint8_t* A, int32_t lda, const uint8_t* B, int32_t pstride, int32_t* T, int32_t ldt);
typedef void (*qf_qepi_fn)(const qf_qepi* e, const int32_t* T, int32_t ldt, int32_t r0, int32_t c0, int32_t mr, int32_t nc, void* Y, int32_t ldy);
typedef struct qf_qgemm_kernel {
  int32_t mr, nr;
  qf_qgemm_ukr_fn au8, as8;         /* A unsigned x B signed / A signed x B unsigned, nr columns */
  qf_qgemm_ukr_fn au8_tail, as8_tail; /* 16 columns */
  qf_qepi_fn epi;
} qf_qgemm_kernel;

#ifdef __cplusplus
}
#endif

#endif
