// N-API glue of the native tier: argument unpacking, ISA dispatch (__builtin_cpu_supports, capped by
// setIsa for tests), thread partitioning over the pool, and epilogue objects owned by JS handles.
// Every kernel is synchronous: it runs on the calling thread plus the pool's workers.
#include <node_api.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "drivers.h"
#include "kernels_x86.h"
#include "pool.h"

namespace {

// ---- ISA levels and dispatch -------------------------------------------------------------------------------

enum Level { L_SCALAR = 0, L_AVX2 = 1, L_AVXVNNI = 2, L_AVX512 = 3, L_AVX512VNNI = 4 };
const char* const LEVEL_NAMES[] = {"scalar", "avx2", "avxvnni", "avx512", "avx512vnni"};

struct Features {
  bool avx2 = false, fma = false, avx512 = false, avx512vnni = false, avxvnni = false;
};

Features detect() {
  Features f;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
  f.avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512vl");
  f.avx512vnni = f.avx512 && __builtin_cpu_supports("avx512vnni");
  f.avxvnni = f.avx2 && __builtin_cpu_supports("avxvnni");
#endif
  return f;
}

bool supported(const Features& f, int level) {
  switch (level) {
    case L_SCALAR: return true;
    case L_AVX2: return f.avx2 && f.fma;
    case L_AVXVNNI: return f.avx2 && f.fma && f.avxvnni;
    case L_AVX512: return f.avx2 && f.fma && f.avx512;
    case L_AVX512VNNI: return f.avx2 && f.fma && f.avx512vnni;
    default: return false;
  }
}

struct Dispatch {
  int level = L_SCALAR;  // the cap
  const QfDrivers* drv = &QF_DRIVERS_GENERIC;
  const qf_sgemm_kernel* sgemm = nullptr;
  const qf_qgemm_kernel* qgemm = nullptr;
  const char* sgemm_name = "scalar";
  const char* qgemm_name = "scalar";
  const char* woq_name = "scalar";
  bool woq512 = false;
};

Features g_feat;
Dispatch g_disp;
qf::Pool* g_pool = nullptr;

int best_level() {
  int best = L_SCALAR;
  for (int l = L_SCALAR; l <= L_AVX512VNNI; l++) if (supported(g_feat, l)) best = l;
  return best;
}

void select(int cap) {
  Dispatch d;
  d.level = std::min(cap, best_level());
  auto ok = [&](int l) { return l <= d.level && supported(g_feat, l); };
  d.drv = ok(L_AVX512) ? &QF_DRIVERS_AVX512 : ok(L_AVX2) ? &QF_DRIVERS_AVX2 : &QF_DRIVERS_GENERIC;
  if (ok(L_AVX512)) { d.sgemm = &qf::SGEMM_AVX512; d.sgemm_name = "avx512"; }
  else if (ok(L_AVX2)) { d.sgemm = &qf::SGEMM_AVX2; d.sgemm_name = "avx2"; }
  else { d.sgemm = d.drv->sgemm_scalar; d.sgemm_name = "scalar"; }
  if (ok(L_AVX512VNNI)) { d.qgemm = &qf::QGEMM_AVX512VNNI; d.qgemm_name = "avx512vnni"; }
  else if (ok(L_AVXVNNI)) { d.qgemm = &qf::QGEMM_AVXVNNI; d.qgemm_name = "avxvnni"; }
  else if (ok(L_AVX2)) { d.qgemm = &qf::QGEMM_AVX2; d.qgemm_name = "avx2"; }
  else { d.qgemm = d.drv->qgemm_scalar; d.qgemm_name = "scalar"; }
  d.woq512 = ok(L_AVX512);
  d.woq_name = d.woq512 ? "avx512" : "scalar";
  g_disp = d;
}

// ---- argument helpers ----------------------------------------------------------------------------------------

struct Err {
  std::string msg;
};

#define NAPI_CALL(env, call)                                 \
  do {                                                       \
    if ((call) != napi_ok) throw Err{"N-API call failed: " #call}; \
  } while (0)

struct Arr {
  void* data = nullptr;
  size_t length = 0;  // elements
  napi_typedarray_type type = napi_uint8_array;
};

Arr arr(napi_env env, napi_value v, const char* what, bool nullable = false) {
  napi_valuetype t;
  NAPI_CALL(env, napi_typeof(env, v, &t));
  Arr a;
  if (t == napi_null || t == napi_undefined) {
    if (!nullable) throw Err{std::string(what) + " is required"};
    return a;
  }
  bool is;
  NAPI_CALL(env, napi_is_typedarray(env, v, &is));
  if (!is) throw Err{std::string(what) + " must be a typed array"};
  napi_value ab;
  size_t off;
  NAPI_CALL(env, napi_get_typedarray_info(env, v, &a.type, &a.length, &a.data, &ab, &off));
  return a;
}

template <typename T>
T* ptr(const Arr& a) {
  return static_cast<T*>(a.data);
}

int32_t i32(napi_env env, napi_value v) {
  int32_t r;
  NAPI_CALL(env, napi_get_value_int32(env, v, &r));
  return r;
}

double f64(napi_env env, napi_value v) {
  double r;
  NAPI_CALL(env, napi_get_value_double(env, v, &r));
  return r;
}

struct Args {
  napi_env env;
  std::vector<napi_value> v;
  Args(napi_env e, napi_callback_info info, size_t n) : env(e), v(n) {
    size_t argc = n;
    NAPI_CALL(e, napi_get_cb_info(e, info, &argc, v.data(), nullptr, nullptr));
    if (argc < n) throw Err{"expected " + std::to_string(n) + " arguments, got " + std::to_string(argc)};
  }
  Arr a(size_t i, const char* what, bool nullable = false) { return arr(env, v[i], what, nullable); }
  int32_t i(size_t k) { return i32(env, v[k]); }
  double d(size_t k) { return f64(env, v[k]); }
};

void need_len(const Arr& a, size_t n, const char* what) {
  if (a.length < n) throw Err{std::string(what) + " is too short: " + std::to_string(a.length) + " < " + std::to_string(n)};
}

thread_local std::vector<uint8_t> t_scratch;
uint8_t* scratch(size_t bytes) {
  if (t_scratch.size() < bytes + 64) t_scratch.resize(bytes + 64);
  uintptr_t p = reinterpret_cast<uintptr_t>(t_scratch.data());
  return reinterpret_cast<uint8_t*>((p + 63) & ~static_cast<uintptr_t>(63));
}

typedef napi_value (*Impl)(napi_env, napi_callback_info);

template <Impl F>
napi_value guarded(napi_env env, napi_callback_info info) {
  try {
    return F(env, info);
  } catch (const Err& e) {
    napi_throw_error(env, "QF_NATIVE", e.msg.c_str());
    return nullptr;
  } catch (const std::exception& e) {
    napi_throw_error(env, "QF_NATIVE", e.what());
    return nullptr;
  }
}

napi_value undef(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

napi_value str(napi_env env, const char* s) {
  napi_value v;
  napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &v);
  return v;
}

void set(napi_env env, napi_value obj, const char* key, napi_value v) { napi_set_named_property(env, obj, key, v); }

qf_conv_geo geo_of(const Arr& g) {
  need_len(g, 15, "geometry");
  const int32_t* v = ptr<int32_t>(g);
  qf_conv_geo r;
  r.C = v[0]; r.H = v[1]; r.W = v[2]; r.M = v[3]; r.G = v[4];
  r.KH = v[5]; r.KW = v[6]; r.SH = v[7]; r.SW = v[8]; r.PH = v[9]; r.PW = v[10]; r.DH = v[11]; r.DW = v[12]; r.OH = v[13]; r.OW = v[14];
  if (r.G <= 0 || r.C % r.G != 0 || r.M % r.G != 0 || r.SH <= 0 || r.SW <= 0 || r.DH <= 0 || r.DW <= 0 || r.OH <= 0 || r.OW <= 0) {
    throw Err{"bad convolution geometry"};
  }
  return r;
}

int ysize_of(int32_t out_type) { return out_type == QF_OUT_I32 || out_type == QF_OUT_F32 ? 4 : 1; }

// ---- info / configuration ----------------------------------------------------------------------------------------

napi_value info_impl(napi_env env, napi_callback_info) {
  napi_value o, feats;
  napi_create_object(env, &o);
  set(env, o, "level", str(env, LEVEL_NAMES[g_disp.level]));
  set(env, o, "best", str(env, LEVEL_NAMES[best_level()]));
  set(env, o, "sgemm", str(env, g_disp.sgemm_name));
  set(env, o, "qgemm", str(env, g_disp.qgemm_name));
  set(env, o, "woq", str(env, g_disp.woq_name));
  set(env, o, "drivers", str(env, g_disp.drv->name));
  napi_value mr;
  napi_create_int32(env, g_disp.sgemm->mr, &mr);
  set(env, o, "sgemmMR", mr);
  napi_create_array(env, &feats);
  uint32_t n = 0;
  const std::pair<bool, const char*> fl[] = {{g_feat.avx2, "avx2"}, {g_feat.fma, "fma"}, {g_feat.avxvnni, "avxvnni"}, {g_feat.avx512, "avx512"},
                                             {g_feat.avx512vnni, "avx512vnni"}};
  for (auto& p : fl) if (p.first) napi_set_element(env, feats, n++, str(env, p.second));
  set(env, o, "features", feats);
  return o;
}

napi_value set_isa_impl(napi_env env, napi_callback_info info) {
  Args a(env, info, 1);
  char buf[32];
  size_t len;
  NAPI_CALL(env, napi_get_value_string_utf8(env, a.v[0], buf, sizeof buf, &len));
  int cap = -1;
  for (int l = 0; l <= L_AVX512VNNI; l++) if (strcmp(buf, LEVEL_NAMES[l]) == 0) cap = l;
  if (std::string(buf) == "best") cap = L_AVX512VNNI;
  if (cap < 0) throw Err{std::string("unknown ISA level '") + buf + "'"};
  select(cap);
  return info_impl(env, info);
}

// ---- packing --------------------------------------------------------------------------------------------------------

// packBF32(B, K, N, ldb, trans, out)
napi_value pack_b_f32_impl(napi_env env, napi_callback_info info) {
  Args a(env, info, 6);
  Arr B = a.a(0, "B"), out = a.a(5, "out");
  int32_t K = a.i(1), N = a.i(2), ldb = a.i(3), trans = a.i(4);
  need_len(out, (size_t)qf_panels(N) * K * QF_PANEL, "out");
  if (K > 0 && N > 0) need_len(B, trans ? (size_t)(N - 1) * ldb + K : (size_t)(K - 1) * ldb + N, "B");
  g_disp.drv->pack_b_f32(ptr<float>(B), K, N, ldb, trans, ptr<float>(out));
  return undef(env);
}

// packB8(B, K, N, ldb, trans, flip, sumSigned, out, colsum|null)
napi_value pack_b_8_impl(napi_env env, napi_callback_info info) {
  Args a(env, info, 9);
  Arr B = a.a(0, "B"), out = a.a(7, "out"), cs = a.a(8, "colsum", true);
  int32_t K = a.i(1), N = a.i(2), ldb = a.i(3), trans = a.i(4), flip = a.i(5), ss = a.i(6);
  need_len(out, (size_t)qf_panels(N) * qf_k4(K) * 64, "out");
  if (cs.data) need_len(cs, N, "colsum");
  g_disp.drv->pack_b_8(ptr<uint8_t>(B), K, N, ldb, trans, (uint8_t)flip, ss, ptr<uint8_t>(out), ptr<int32_t>(cs));
  return undef(env);
}

// packInt4(q, N, K, out)
napi_value pack_int4_impl(napi_env env, napi_callback_info info) {
  Args a(env, info, 4);
  Arr q = a.a(0, "q"), out = a.a(3, "out");
  int32_t N = a.i(1), K = a.i(2);
  if (K % 32 != 0) throw Err{"int4 packing needs K to be a multiple of 32"};
  need_len(q, (size_t)N * K, "q");
  need_len(out, (size_t)N * K / 2, "out");
  g_disp.drv->pack_int4(ptr<uint8_t>(q), N, K, ptr<uint8_t>(out));
  return undef(env);
}

// ---- fp32 epilogue handles --------------------------------------------------------------------------------------------------

struct EpiBox {
  qf_epi_f32 e;
  std::vector<float> bias;
  std::vector<std::vector<float>> vecs;
};

// epiF32(bias|null, perRow, kinds Int32Array, ab Float32Array [a, b per op], vecs: (Float32Array|null)[]) -> handle
napi_value epi_f32_impl(napi_env env, napi_callback_info info) {
  Args a(env, info, 5);
  Arr bias = a.a(0, "bias", true), kinds = a.a(2, "kinds"), ab = a.a(3, "ab");
  int32_t n = (int32_t)kinds.length;
  if (n > QF_MAX_EOPS) throw Err{"too many fused operations"};
  need_len(ab, (size_t)2 * n, "ab");
  auto* box = new EpiBox();
  box->e.bias = nullptr;
  box->e.per_row = a.i(1);
  box->e.nops = n;
  if (bias.data) {
    box->bias.assign(ptr<float>(bias), ptr<float>(bias) + bias.length);
    box->e.bias = box->bias.data();
  }
  box->vecs.resize(n);
  for (int32_t i = 0; i < n; i++) {
    napi_value v;
    NAPI_CALL(env, napi_get_element(env, a.v[4], i, &v));
    Arr vec = arr(env, v, "vec", true);
    qf_eop& o = box->e.ops[i];
    o.kind = ptr<int32_t>(kinds)[i];
    o.a = ptr<float>(ab)[2 * i];
    o.b = ptr<float>(ab)[2 * i + 1];
    o.vec = nullptr;
    if (vec.data) {
      box->vecs[i].assign(ptr<float>(vec), ptr<float>(vec) + vec.length);
      o.vec = box->vecs[i].data();
    }
  }
  napi_value ext;
  NAPI_CALL(env, napi_create_external(env, box, [](napi_env, void* data, void*) { delete static_cast<EpiBox*>(data); }, nullptr, &ext));
  return ext;
}

const qf_epi_f32* epi_f32_of(napi_env env, napi_value v) {
  void* p;
  if (napi_get_value_external(env, v, &p) != napi_ok || p == nullptr) throw Err{"expected an fp32 epilogue handle"};
  return &static_cast<EpiBox*>(p)->e;
}

// ---- fp32 GEMM -----------------------------------------------------------------------------------------------------

struct Grid {
  int rows, cols;  // chunks
};

// Chunks of rows and columns for `threads`: columns first (B panels stream once), rows as well when
// there are too few column tiles to go round.
Grid grid(int threads, int M, int mr, int N, int nr) {
  int ntn = (N + nr - 1) / nr, ntm = (M + mr - 1) / mr;
  if (threads <= 1) return {1, 1};
  int cols = std::min(ntn, threads * 4);
  int rows = 1;
  if (cols < threads * 2) rows = std::min(ntm, (threads * 2 + cols - 1) / cols);
  return {std::max(rows, 1), std::max(cols, 1)};
}

// Threads worth using for `flops` of work: waking a worker costs a few microseconds, so small
// problems run on the calling thread alone.
int threads_for(int threads, double flops) {
  int useful = static_cast<int>(flops / 1.5e6);
  return std::max(1, std::min(threads, useful));
}

// sgemm(M, N, K, A, lda, Bp, C, ldc, epi, threads): A raw row-major, packed here; epi from epiF32
// (its per-channel arrays must cover N columns, or M rows when per-row).
napi_value sgemm_impl(napi_env env, napi_callback_info info) {
  Args a(env, info, 10);
  int32_t M = a.i(0), N = a.i(1), K = a.i(2), lda = a.i(4), ldc = a.i(7);
  Arr A = a.a(3, "A"), Bp = a.a(5, "Bp"), C = a.a(6, "C");
  const qf_epi_f32& e = *epi_f32_of(env, a.v[8]);
  if (M <= 0 || N <= 0) return undef(env);
  need_len(A, (size_t)(M - 1) * lda + K, "A");
  need_len(C, (size_t)(M - 1) * ldc + N, "C");
  need_len(Bp, (size_t)qf_panels(N) * K * QF_PANEL, "Bp");
  int threads = threads_for(a.i(9), 2.0 * M * N * K);
  const qf_sgemm_kernel* u = g_disp.sgemm;
  const QfDrivers* drv = g_disp.drv;
  int mr = u->mr;
  std::vector<float> ap((size_t)((M + mr - 1) / mr) * mr * K);
  drv->pack_a_f32(ptr<float>(A), M, K, lda, mr, ap.data());
  Grid gr = grid(threads, M, mr, N, u->nr);
  int ntn = (N + u->nr - 1) / u->nr, ntm = (M + mr - 1) / mr;
  const float* pb = ptr<float>(Bp);
  float* pc = ptr<float>(C);
  g_pool->run(threads, gr.rows * gr.cols, [&](int t) {
    int ri = t / gr.cols, ci = t % gr.cols;
    int m0 = (int)((long)ntm * ri / gr.rows) * mr, m1 = std::min(M, (int)((long)ntm * (ri + 1) / gr.rows) * mr);
    int n0 = (int)((long)ntn * ci / gr.cols) * u->nr, n1 = std::min(N, (int)((long)ntn * (ci + 1) / gr.cols) * u->nr);
    if (m0 >= m1 || n0 >= n1) return;
    drv->sgemm_cols(u, m1 - m0, N, K, ap.data() + (size_t)m0 * K, pb, pc + (size_t)m0 * ldc, ldc, &e, m0, n0, n1);
  });
  return undef(env);
}

// ---- fp32 convolution --------------------------------------------------------------------------------------------------

// packConvF32(geo, W, out) -> mr: the weights of each group packed as GEMM A panels for the current
// fp32 microkernel (depthwise weights are used as they are and need no packing).
napi_value pack_conv_f32_impl(napi_env env, napi_callback_info info) {
  Args a(env, info, 3);
  qf_conv_geo g = geo_of(a.a(0, "geometry"));
  Arr W = a.a(1, "W"), out = a.a(2, "out");
  int32_t mr = g_disp.sgemm->mr, mg = g.M / g.G, K = (g.C / g.G) * g.KH * g.KW;
  size_t per = qf_conv_group_floats(&g, mr);
  need_len(W, (size_t)g.M * K, "W");
  need_len(out, per * g.G, "out");
  for (int32_t grp = 0; grp < g.G; grp++) g_disp.drv->pack_a_f32(ptr<float>(W) + (size_t)grp * mg * K, mg, K, K, mr, ptr<float>(out) + per * grp);
  napi_value r;
  napi_create_int32(env, mr, &r);
  return r;
}

// convF32(geo, batch, X, W, mr, Y, epi, threads): W packed by packConvF32 for height mr (raw
// weights for a depthwise geometry); epi from epiF32, per row (= output channel).
napi_value conv_f32_impl(napi_env env, napi_callback_info info) {
  Args a(env, info, 8);
  qf_conv_geo g = geo_of(a.a(0, "geometry"));
  int32_t batch = a.i(1), mr = a.i(4);
  Arr X = a.a(2, "X"), Wt = a.a(3, "W"), Y = a.a(5, "Y");
  const qf_epi_f32& e = *epi_f32_of(env, a.v[6]);
  if (!e.per_row) throw Err{"a conv epilogue is per row"};
  size_t xin = (size_t)g.C * g.H * g.W, yout = (size_t)g.M * g.OH * g.OW;
  int32_t cg = g.C / g.G, K = cg * g.KH * g.KW, ohw = g.OH * g.OW;
  double flops = 2.0 * batch * g.M * ohw * K;
  int threads = threads_for(a.i(7), flops);
  need_len(X, xin * batch, "X");
  need_len(Y, yout * batch, "Y");
  const float* px = ptr<float>(X);
  const float* pw = ptr<float>(Wt);
  float* py = ptr<float>(Y);
  const QfDrivers* drv = g_disp.drv;
  if (g.G == g.C && g.G == g.M) {
    need_len(Wt, (size_t)g.M * K, "W");
    int chunks = std::min(g.C, threads * 4);
    int tasks = batch * chunks;
    bool simd = g_disp.woq512;  // the AVX-512 level
    size_t plane = (size_t)((g.OH - 1) * g.SH + (g.KH - 1) * g.DH + 1) * ((g.OW - 1) * g.SW + (g.KW - 1) * g.DW + 1 + 64) * sizeof(float);
    g_pool->run(threads, tasks, [&](int t) {
      int n = t / chunks, ci = t % chunks;
      int c0 = (int)((long)g.C * ci / chunks), c1 = (int)((long)g.C * (ci + 1) / chunks);
      if (simd) qf::dw_f32_avx512(&g, px + n * xin, pw, py + n * yout, &e, c0, c1, reinterpret_cast<float*>(scratch(plane)));
      else drv->dw_f32(&g, px + n * xin, pw, py + n * yout, &e, c0, c1);
    });
    return undef(env);
  }
  const qf_sgemm_kernel* u = g_disp.sgemm;
  if (mr != u->mr) throw Err{"the conv weights were packed for another microkernel (ISA changed after compile): recompile the session"};
  need_len(Wt, qf_conv_group_floats(&g, mr) * g.G, "W");
  int nblk = (ohw + QF_CONV_PB - 1) / QF_CONV_PB;
  // Pixel blocks per task: a few per thread so that tasks balance.
  int per = std::max(1, (nblk * g.G) / std::max(1, threads * 4));
  int chunks = (nblk + per - 1) / per;
  bool padded = qf_conv_f32_padded(&g);
  std::vector<float> xp(padded ? (size_t)g.C * qf_conv8_hp_(&g) * qf_conv8_wp_(&g) : 0);
  for (int32_t n = 0; n < batch; n++) {
    const float* xin_n = px + n * xin;
    if (padded) {
      int cchunks = std::min(g.C, threads * 2);
      g_pool->run(threads, cchunks, [&](int t) {
        drv->conv_f32_input(&g, xin_n, xp.data(), (int)((long)g.C * t / cchunks), (int)((long)g.C * (t + 1) / cchunks));
      });
    }
    const float* src = padded ? xp.data() : xin_n;
    g_pool->run(threads, g.G * chunks, [&](int t) {
      int grp = t / chunks, ci = t % chunks;
      int p0 = ci * per * QF_CONV_PB, p1 = std::min(ohw, (ci + 1) * per * QF_CONV_PB);
      float* s = reinterpret_cast<float*>(scratch((size_t)K * QF_CONV_PB * sizeof(float)));
      drv->conv_f32_block(u, &g, src, pw, py + n * yout, &e, grp, p0, p1, s);
    });
  }
  return undef(env);
}

// ---- int8 epilogue handles ----------------------------------------------------------------------------------------------

struct QepiBox {
  qf_qepi e;
  std::vector<int32_t> za, zb, sa, sb, bias;
  std::vector<uint8_t> lut;
  std::vector<float> mult, fbias;
  std::vector<double> dws, dadd, dfbias;
};

template <typename T>
void copy_to(std::vector<T>& dst, const Arr& a) {
  if (a.data == nullptr) return;
  dst.assign(static_cast<const T*>(a.data), static_cast<const T*>(a.data) + a.length);
}

template <typename T>
const T* opt(const std::vector<T>& v, const Arr& a) {
  return a.data == nullptr ? nullptr : v.data();
}

// qepi(ints[kind, per_row, out_type, zp, lo, hi, K, za_per_row, zb_per_col], za, zb, sa|null, sb|null, bias|null,
//      mult|null, dws|null, dadd|null, fbias|null, dfbias|null, xs, ys, lut|null) -> handle
napi_value qepi_impl(napi_env env, napi_callback_info info) {
  Args a(env, info, 14);
  Arr ints = a.a(0, "ints");
  need_len(ints, 9, "ints");
  const int32_t* v = ptr<int32_t>(ints);
  auto* box = new QepiBox();
  Arr za = a.a(1, "za"), zb = a.a(2, "zb"), sa = a.a(3, "sa", true), sb = a.a(4, "sb", true), bias = a.a(5, "bias", true);
  Arr mult = a.a(6, "mult", true), dws = a.a(7, "dws", true), dadd = a.a(8, "dadd", true), fbias = a.a(9, "fbias", true), dfbias = a.a(10, "dfbias", true);
  copy_to(box->za, za); copy_to(box->zb, zb); copy_to(box->sa, sa); copy_to(box->sb, sb); copy_to(box->bias, bias);
  copy_to(box->mult, mult); copy_to(box->dws, dws); copy_to(box->dadd, dadd); copy_to(box->fbias, fbias); copy_to(box->dfbias, dfbias);
  if (box->za.empty() || box->zb.empty()) {
    delete box;
    throw Err{"za and zb must have at least one element"};
  }
  qf_qepi& e = box->e;
  e.kind = v[0]; e.per_row = v[1]; e.out_type = v[2]; e.zp = v[3]; e.lo = v[4]; e.hi = v[5]; e.K = v[6]; e.za_per_row = v[7]; e.zb_per_col = v[8];
  e.za = box->za.data(); e.zb = box->zb.data();
  e.sa = opt(box->sa, sa); e.sb = opt(box->sb, sb); e.bias = opt(box->bias, bias);
  e.mult = opt(box->mult, mult); e.dws = opt(box->dws, dws); e.dadd = opt(box->dadd, dadd); e.fbias = opt(box->fbias, fbias); e.dfbias = opt(box->dfbias, dfbias);
  e.xs = a.d(11); e.ys = a.d(12);
  Arr lut = a.a(13, "lut", true);
  e.lut = nullptr;
  if (lut.data) {
    if (lut.length != 256) {
      delete box;
      throw Err{"lut must have 256 entries"};
    }
    box->lut.assign(ptr<uint8_t>(lut), ptr<uint8_t>(lut) + 256);
    e.lut = box->lut.data();
  }
  napi_value ext;
  NAPI_CALL(env, napi_create_external(env, box, [](napi_env, void* data, void*) { delete static_cast<QepiBox*>(data); }, nullptr, &ext));
  return ext;
}

QepiBox* qepi_of(napi_env env, napi_value v) {
  void* p;
  if (napi_get_value_external(env, v, &p) != napi_ok || p == nullptr) throw Err{"expected an epilogue handle"};
  return static_cast<QepiBox*>(p);
}

// ---- int8 GEMM (activations x prepacked weights) ----------------------------------------------------------------------

// qgemm(M, N, K, A, lda, aFlip, needRowSum, Bp, epi, Y, ldy, threads): A raw 8-bit [M][K] (XOR aFlip gives uint8).
napi_value qgemm_impl(napi_env env, napi_callback_info info) {
  Args a(env, info, 12);
  int32_t M = a.i(0), N = a.i(1), K = a.i(2), lda = a.i(4), flip = a.i(5), need_rs = a.i(6), ldy = a.i(10);
  int threads = threads_for(a.i(11), 0.5 * M * N * K);
  Arr A = a.a(3, "A"), Bp = a.a(7, "Bp"), Y = a.a(9, "Y");
  QepiBox* box = qepi_of(env, a.v[8]);
  if (M <= 0 || N <= 0) return undef(env);
  int ys = ysize_of(box->e.out_type);
  need_len(A, (size_t)(M - 1) * lda + K, "A");
  need_len(Bp, (size_t)qf_panels(N) * qf_k4(K) * 64, "Bp");
  if (Y.length * (Y.type == napi_float32_array || Y.type == napi_int32_array ? 4 : 1) < ((size_t)(M - 1) * ldy + N) * ys) throw Err{"Y is too short"};
  int32_t kp = qf_k4(K) * 4;
  std::vector<uint8_t> ap((size_t)M * kp);
  std::vector<int32_t> rs(need_rs ? M : 0);
  g_disp.drv->pack_a_8(ptr<uint8_t>(A), M, K, lda, (uint8_t)flip, 0, ap.data(), need_rs ? rs.data() : nullptr);
  qf_qepi e = box->e;
  if (need_rs) e.sa = rs.data();
  const qf_qgemm_kernel* u = g_disp.qgemm;
  Grid gr = grid(threads, M, u->mr, N, u->nr);
  int ntn = (N + u->nr - 1) / u->nr, ntm = (M + u->mr - 1) / u->mr;
  uint8_t* py = ptr<uint8_t>(Y);
  const uint8_t* pb = ptr<uint8_t>(Bp);
  const QfDrivers* drv = g_disp.drv;
  g_pool->run(threads, gr.rows * gr.cols, [&](int t) {
    int ri = t / gr.cols, ci = t % gr.cols;
    int m0 = (int)((long)ntm * ri / gr.rows) * u->mr, m1 = std::min(M, (int)((long)ntm * (ri + 1) / gr.rows) * u->mr);
    int n0 = (int)((long)ntn * ci / gr.cols) * u->nr, n1 = std::min(N, (int)((long)ntn * (ci + 1) / gr.cols) * u->nr);
    if (m0 >= m1 || n0 >= n1) return;
    int32_t* tile = reinterpret_cast<int32_t*>(scratch((size_t)u->mr * u->nr * 4));
    drv->qgemm_cols(u, 0, m1 - m0, N, K, ap.data() + (size_t)m0 * kp, pb, &e, py + (size_t)m0 * ldy * ys, ldy, ys, m0, 0, n0, n1, tile);
  });
  return undef(env);
}

// qgemmB(M, N, K, A, lda, aFlip, needRowSum, B, ldb, bFlip, needColSum, epi, Y, ldy, threads): like qgemm with
// a runtime B [K][N] (row stride ldb), packed here with its column sums (used when needColSum).
napi_value qgemm_b_impl(napi_env env, napi_callback_info info) {
  Args a(env, info, 15);
  int32_t M = a.i(0), N = a.i(1), K = a.i(2), lda = a.i(4), flip = a.i(5), need_rs = a.i(6), ldb = a.i(8), bflip = a.i(9), need_cs = a.i(10);
  int32_t ldy = a.i(13);
  Arr A = a.a(3, "A"), B = a.a(7, "B"), Y = a.a(12, "Y");
  QepiBox* box = qepi_of(env, a.v[11]);
  if (M <= 0 || N <= 0) return undef(env);
  int ys = ysize_of(box->e.out_type);
  need_len(A, (size_t)(M - 1) * lda + K, "A");
  if (K > 0) need_len(B, (size_t)(K - 1) * ldb + N, "B");
  if (Y.length * (Y.type == napi_float32_array || Y.type == napi_int32_array ? 4 : 1) < ((size_t)(M - 1) * ldy + N) * ys) throw Err{"Y is too short"};
  int threads = threads_for(a.i(14), 0.5 * M * N * K);
  const QfDrivers* drv = g_disp.drv;
  int32_t k4 = qf_k4(K), kp = k4 * 4;
  size_t panels = (size_t)((qf_panels(N) + 3) / 4) * 4;
  std::vector<uint8_t> bp(panels * k4 * 64);
  std::vector<int32_t> cs(N);
  drv->pack_b_8(ptr<uint8_t>(B), K, N, ldb, 0, (uint8_t)bflip, 1, bp.data(), cs.data());
  std::vector<uint8_t> ap((size_t)M * kp);
  std::vector<int32_t> rs(need_rs ? M : 0);
  drv->pack_a_8(ptr<uint8_t>(A), M, K, lda, (uint8_t)flip, 0, ap.data(), need_rs ? rs.data() : nullptr);
  qf_qepi e = box->e;
  if (need_rs) e.sa = rs.data();
  e.sb = need_cs ? cs.data() : nullptr;
  const qf_qgemm_kernel* u = g_disp.qgemm;
  Grid gr = grid(threads, M, u->mr, N, u->nr);
  int ntn = (N + u->nr - 1) / u->nr, ntm = (M + u->mr - 1) / u->mr;
  uint8_t* py = ptr<uint8_t>(Y);
  g_pool->run(threads, gr.rows * gr.cols, [&](int t) {
    int ri = t / gr.cols, ci = t % gr.cols;
    int m0 = (int)((long)ntm * ri / gr.rows) * u->mr, m1 = std::min(M, (int)((long)ntm * (ri + 1) / gr.rows) * u->mr);
    int n0 = (int)((long)ntn * ci / gr.cols) * u->nr, n1 = std::min(N, (int)((long)ntn * (ci + 1) / gr.cols) * u->nr);
    if (m0 >= m1 || n0 >= n1) return;
    int32_t* tile = reinterpret_cast<int32_t*>(scratch((size_t)u->mr * u->nr * 4));
    drv->qgemm_cols(u, 0, m1 - m0, N, K, ap.data() + (size_t)m0 * kp, bp.data(), &e, py + (size_t)m0 * ldy * ys, ldy, ys, m0, 0, n0, n1, tile);
  });
  return undef(env);
}

// ---- int8 convolution ---------------------------------------------------------------------------------------------------

// packConvW8(geo, W, flip, out, rowsum): int8 conv weights as A rows (qf_pack_conv_w8).
napi_value pack_conv_w8_impl(napi_env env, napi_callback_info info) {
  Args a(env, info, 5);
  qf_conv_geo g = geo_of(a.a(0, "geometry"));
  Arr W = a.a(1, "W"), out = a.a(3, "out"), rs = a.a(4, "rowsum");
  need_len(W, (size_t)g.M * (g.C / g.G) * g.KH * g.KW, "W");
  need_len(out, (size_t)g.M * qf_conv8_kq(&g) * 4, "out");
  need_len(rs, g.M, "rowsum");
  g_disp.drv->pack_conv_w8(&g, ptr<uint8_t>(W), (uint8_t)a.i(2), ptr<uint8_t>(out), ptr<int32_t>(rs));
  return undef(env);
}

// convQ8(geo, batch, X, xFlip, pad, Wp, epi, needColSum, Y, threads): Wp from packConvW8.
napi_value conv_q8_impl(napi_env env, napi_callback_info info) {
  Args a(env, info, 10);
  qf_conv_geo g = geo_of(a.a(0, "geometry"));
  int32_t batch = a.i(1), flip = a.i(3), pad = a.i(4), need_cs = a.i(7);
  Arr X = a.a(2, "X"), Wp = a.a(5, "Wp"), Y = a.a(8, "Y");
  QepiBox* box = qepi_of(env, a.v[6]);
  int ys = ysize_of(box->e.out_type);
  size_t xin = (size_t)g.C * g.H * g.W, yout = (size_t)g.M * g.OH * g.OW;
  int32_t kq = qf_conv8_kq(&g), ohw = g.OH * g.OW;
  int threads = threads_for(a.i(9), 0.5 * batch * g.M * ohw * (g.C / g.G) * g.KH * g.KW);
  need_len(X, xin * batch, "X");
  need_len(Wp, (size_t)g.M * kq * 4, "Wp");
  if (Y.length * (Y.type == napi_float32_array || Y.type == napi_int32_array ? 4 : 1) < yout * batch * ys) throw Err{"Y is too short"};
  qf_qepi e = box->e;
  if (need_cs) e.sb = e.za;  // any non-NULL: the driver computes the column sums
  else e.sb = nullptr;
  const qf_qgemm_kernel* u = g_disp.qgemm;
  const QfDrivers* drv = g_disp.drv;
  int nblk = (ohw + QF_CONV_PB - 1) / QF_CONV_PB;
  int per = std::max(1, (nblk * g.G) / std::max(1, threads * 4));
  int chunks = (nblk + per - 1) / per;
  const uint8_t* px = ptr<uint8_t>(X);
  const uint8_t* pw = ptr<uint8_t>(Wp);
  uint8_t* py = ptr<uint8_t>(Y);
  std::vector<uint8_t> xi(qf_conv8_input_bytes(&g));
  int quads = g.G * qf_conv8_c4(&g);
  size_t colbytes = (size_t)kq * 64 * (QF_CONV_PB / QF_PANEL);
  for (int32_t n = 0; n < batch; n++) {
    int qchunks = std::min(quads, threads * 2);
    g_pool->run(threads, qchunks, [&](int t) {
      drv->conv8_input(&g, px + n * xin, (uint8_t)flip, (uint8_t)pad, xi.data(), (int)((long)quads * t / qchunks), (int)((long)quads * (t + 1) / qchunks));
    });
    g_pool->run(threads, g.G * chunks, [&](int t) {
      int grp = t / chunks, ci = t % chunks;
      int p0 = ci * per * QF_CONV_PB, p1 = std::min(ohw, (ci + 1) * per * QF_CONV_PB);
      uint8_t* s = scratch(colbytes + QF_CONV_PB * 4 + (size_t)u->mr * u->nr * 4 + 64);
      int32_t* tile = reinterpret_cast<int32_t*>(s + ((colbytes + QF_CONV_PB * 4 + 63) & ~(size_t)63));
      drv->conv_8_block(u, &g, xi.data(), pw, &e, py + n * yout * ys, ys, grp, p0, p1, s, tile);
    });
  }
  return undef(env);
}

// dwQ8(geo, batch, X, xSigned, zx, W, wSigned, zw, epi, Y, threads)
napi_value dw_q8_impl(napi_env env, napi_callback_info info) {
  Args a(env, info, 11);
  qf_conv_geo g = geo_of(a.a(0, "geometry"));
  int32_t batch = a.i(1), xs = a.i(3), zx = a.i(4), ws = a.i(6);
  Arr X = a.a(2, "X"), Wt = a.a(5, "W"), zw = a.a(7, "zw"), Y = a.a(9, "Y");
  QepiBox* box = qepi_of(env, a.v[8]);
  if (!(g.G == g.C && g.G == g.M)) throw Err{"dwQ8 needs a depthwise geometry"};
  int threads = threads_for(a.i(10), 2.0 * batch * g.M * g.OH * g.OW * g.KH * g.KW);
  int ys = ysize_of(box->e.out_type);
  size_t xin = (size_t)g.C * g.H * g.W, yout = (size_t)g.M * g.OH * g.OW;
  need_len(X, xin * batch, "X");
  need_len(Wt, (size_t)g.M * g.KH * g.KW, "W");
  need_len(zw, g.M, "zw");
  if (Y.length * (Y.type == napi_float32_array || Y.type == napi_int32_array ? 4 : 1) < yout * batch * ys) throw Err{"Y is too short"};
  const QfDrivers* drv = g_disp.drv;
  int chunks = std::min(g.C, threads * 4);
  const uint8_t* px = ptr<uint8_t>(X);
  uint8_t* py = ptr<uint8_t>(Y);
  g_pool->run(threads, batch * chunks, [&](int t) {
    int n = t / chunks, ci = t % chunks;
    int c0 = (int)((long)g.C * ci / chunks), c1 = (int)((long)g.C * (ci + 1) / chunks);
    int32_t* sc = reinterpret_cast<int32_t*>(scratch(qf_dw8_scratch(&g) * 4));
    drv->dw_8(&g, px + n * xin, xs, zx, ptr<uint8_t>(Wt), ws, ptr<int32_t>(zw), &box->e, g_disp.qgemm->epi, py + n * yout * ys, ys, c0, c1, sc);
  });
  return undef(env);
}

// ---- weight-only GEMV / GEMM ------------------------------------------------------------------------------------------------

// woq8(M, N, K, x, q, scale, bias|null, y, threads)
napi_value woq8_impl(napi_env env, napi_callback_info info) {
  Args a(env, info, 9);
  int32_t M = a.i(0), N = a.i(1), K = a.i(2);
  int threads = threads_for(a.i(8), 2.0 * M * N * K);
  Arr x = a.a(3, "x"), q = a.a(4, "q"), sc = a.a(5, "scale"), bias = a.a(6, "bias", true), y = a.a(7, "y");
  need_len(x, (size_t)M * K, "x");
  need_len(q, (size_t)N * K, "q");
  need_len(sc, N, "scale");
  need_len(y, (size_t)M * N, "y");
  if (bias.data) need_len(bias, N, "bias");
  bool simd = g_disp.woq512;
  const QfDrivers* drv = g_disp.drv;
  int chunks = std::max(1, std::min(threads * 4, N / 16));
  g_pool->run(threads, chunks, [&](int t) {
    int n0 = (int)((long)N * t / chunks) & ~3, n1 = t + 1 == chunks ? N : (int)((long)N * (t + 1) / chunks) & ~3;
    if (simd) qf::woq8_avx512(M, K, ptr<float>(x), ptr<int8_t>(q), ptr<float>(sc), ptr<float>(bias), ptr<float>(y), N, n0, n1);
    else drv->woq8(M, K, ptr<float>(x), ptr<int8_t>(q), ptr<float>(sc), ptr<float>(bias), ptr<float>(y), N, n0, n1);
  });
  return undef(env);
}

// woq4(M, N, K, G, x, q, s, b, bias|null, y, threads)
napi_value woq4_impl(napi_env env, napi_callback_info info) {
  Args a(env, info, 11);
  int32_t M = a.i(0), N = a.i(1), K = a.i(2), G = a.i(3);
  int threads = threads_for(a.i(10), 2.0 * M * N * K);
  Arr x = a.a(4, "x"), q = a.a(5, "q"), s = a.a(6, "s"), b = a.a(7, "b"), bias = a.a(8, "bias", true), y = a.a(9, "y");
  if (G <= 0 || G % 32 != 0 || K % G != 0) throw Err{"woq4 needs a group size that is a multiple of 32 and divides K"};
  int32_t ng = K / G;
  need_len(x, (size_t)M * K, "x");
  need_len(q, (size_t)N * K / 2, "q");
  need_len(s, (size_t)N * ng, "s");
  need_len(b, (size_t)N * ng, "b");
  need_len(y, (size_t)M * N, "y");
  if (bias.data) need_len(bias, N, "bias");
  std::vector<float> xsum((size_t)M * ng);
  const QfDrivers* drv = g_disp.drv;
  drv->group_sums(M, K, G, ptr<float>(x), xsum.data());
  bool simd = g_disp.woq512;
  int chunks = std::max(1, std::min(threads * 4, N / 16));
  g_pool->run(threads, chunks, [&](int t) {
    int n0 = (int)((long)N * t / chunks) & ~3, n1 = t + 1 == chunks ? N : (int)((long)N * (t + 1) / chunks) & ~3;
    if (simd) qf::woq4_avx512(M, K, G, ptr<float>(x), xsum.data(), ptr<uint8_t>(q), ptr<float>(s), ptr<float>(b), ptr<float>(bias), ptr<float>(y), N, n0, n1);
    else drv->woq4(M, K, G, ptr<float>(x), xsum.data(), ptr<uint8_t>(q), ptr<float>(s), ptr<float>(b), ptr<float>(bias), ptr<float>(y), N, n0, n1);
  });
  return undef(env);
}

}  // namespace

// ---- module ----------------------------------------------------------------------------------------------------------------------

NAPI_MODULE_INIT() {
  if (g_pool == nullptr) {
    g_feat = detect();
    select(L_AVX512VNNI);
    g_pool = new qf::Pool();  // never freed: workers may outlive module teardown at process exit
  }
  const struct {
    const char* name;
    napi_callback cb;
  } fns[] = {
      {"info", guarded<info_impl>},       {"setIsa", guarded<set_isa_impl>},   {"packBF32", guarded<pack_b_f32_impl>},
      {"packB8", guarded<pack_b_8_impl>}, {"packInt4", guarded<pack_int4_impl>},
      {"sgemm", guarded<sgemm_impl>},     {"convF32", guarded<conv_f32_impl>}, {"packConvF32", guarded<pack_conv_f32_impl>},
      {"epiF32", guarded<epi_f32_impl>}, {"qepi", guarded<qepi_impl>},
      {"qgemm", guarded<qgemm_impl>},     {"qgemmB", guarded<qgemm_b_impl>},     {"convQ8", guarded<conv_q8_impl>},
      {"packConvW8", guarded<pack_conv_w8_impl>},   {"dwQ8", guarded<dw_q8_impl>},
      {"woq8", guarded<woq8_impl>},       {"woq4", guarded<woq4_impl>},
  };
  for (const auto& f : fns) {
    napi_value fn;
    napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.cb, nullptr, &fn);
    napi_set_named_property(env, exports, f.name, fn);
  }
  return exports;
}
