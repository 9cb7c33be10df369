// CPU backend benchmark: qforge (native and WebAssembly tiers) and onnxruntime-node on the same
// inputs, in one run. Each case is one ONNX model (built with @qforge/onnx's encoder) that ORT runs
// and qforge imports (importOnnx) and compiles with { backend: "cpu" }, so both run the same graph.
// Timing: warm-up, then blocks of runs alternating between the implementations (the machine is
// shared: alternating keeps a load spike from favouring one side); the median per implementation.
// Rows: { case, impl, tier, threads, median_ms, throughput, unit, speedup_vs_ort } with
// speedup_vs_ort = ORT median / qforge median (1 for the ORT row itself, absent without an ORT row).
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const dist = (pkg) => join(root, "packages", pkg, "dist", "index.js");

/** The deterministic generator the quant bench uses (no Math.random). */
function lcg(seed) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

export async function benchCpu(opts = {}) {
  const quick = opts.quick ?? false;
  const threadsList = opts.threads ?? [1, 2];
  const log = opts.log ?? (() => {});
  const ir = await import(dist("ir"));
  const rt = await import(dist("runtime"));
  const onnx = await import(dist("onnx"));
  const cpu = await import(dist("backend-cpu"));
  const ort = createRequire(join(root, "package.json"))("onnxruntime-node");
  const native = await cpu.loadNative();
  const tiers = native.state === "loaded" ? ["native", "wasm"] : ["wasm"];
  const rows = [];
  const rand = lcg(12345);

  const f32 = (shape, scale = 1) => ir.tensor("float32", shape, Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => (rand() * 2 - 1) * scale));
  const u8 = (shape) => ir.tensor("uint8", shape, Uint8Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => Math.floor(rand() * 256)));
  const s8 = (shape) => ir.tensor("int8", shape, Int8Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => Math.floor(rand() * 256) - 128));
  const scalar = (dtype, v) => ir.tensor(dtype, [], dtype === "float32" ? Float32Array.of(v) : dtype === "int8" ? Int8Array.of(v) : Uint8Array.of(v));
  const vi = (name, dtype, shape) => onnx.makeTensorValueInfo(name, dtype, shape);
  const model = (nodes, inputs, outputs, initializers, domains = []) => {
    const m = onnx.makeModel(onnx.makeGraph({ nodes, inputs, outputs, initializers }), { opset: 17 });
    m.opset_import.push(...domains);
    return onnx.encodeModel(m);
  };

  /** Median ms of `fn` (sync or async), runs interleaved with the other implementations. */
  async function measure(impls) {
    const once = async (fn) => {
      const t = process.hrtime.bigint();
      await fn();
      return Number(process.hrtime.bigint() - t) / 1e6;
    };
    const warm = [];
    for (const im of impls) {
      await once(im.fn);
      warm.push(await once(im.fn));
    }
    const slowest = Math.max(...warm);
    const budget = quick ? 150 : 1200;
    const reps = Math.max(quick ? 3 : 7, Math.min(quick ? 15 : 200, Math.floor(budget / Math.max(slowest, 1e-3) / impls.length)));
    const block = Math.max(1, Math.min(10, Math.floor(reps / 5)));
    const times = impls.map(() => []);
    while (times[0].length < reps) {
      for (let i = 0; i < impls.length; i++) for (let b = 0; b < block; b++) times[i].push(await once(impls[i].fn));
    }
    return times.map((t) => {
      t.sort((a, b) => a - b);
      return t[t.length >> 1];
    });
  }

  /**
   * One case: ORT and qforge (each tier, each thread count) on `feeds`; throughput = work / time.
   * `qforgeGraph` overrides the graph qforge compiles (for ops ONNX has no standard form of).
   */
  async function runCase(name, bytes, feeds, work, unit, extra = {}) {
    if (opts.only !== undefined && !opts.only.test(name)) return;
    for (const threads of threadsList) {
      const impls = [];
      let ortSession;
      if (bytes !== undefined && extra.ortSkip !== true) {
        try {
          ortSession = await ort.InferenceSession.create(bytes, { intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: "all" });
          const ortFeeds = {};
          for (const [k, t] of Object.entries(feeds)) ortFeeds[k] = new ort.Tensor(t.dtype, t.data, t.shape);
          impls.push({ impl: "onnxruntime", tier: "ort-cpu", fn: () => ortSession.run(ortFeeds) });
        } catch (e) {
          log(`  ${name}: onnxruntime could not run it (${e.message.split("\n")[0]})`);
        }
      }
      const graph = extra.graph ?? (await onnx.importOnnx(bytes)).graph;
      for (const tier of tiers) {
        if (tier === "wasm" && threads !== 1) continue; // the WebAssembly tier is single-threaded
        const s = await rt.compile(graph, { backend: "cpu", tier, threads });
        const fallbacks = s.placements.filter((p) => p.fallback);
        if (fallbacks.length > 0) log(`  ${name}: ${fallbacks.map((p) => `${p.node} falls back (${p.note})`).join("; ")}`);
        const kernel = s.placements.filter((p) => p.kernel !== "fused").map((p) => p.kernel).join("+");
        const qfeeds = graph.inputs.map((v) => feeds[v]);
        impls.push({ impl: "qforge", tier, kernel, fn: () => s.runSync(qfeeds) });
      }
      log(`  ${name} x${threads}`);
      const med = await measure(impls);
      const ortMs = impls[0].impl === "onnxruntime" ? med[0] : undefined;
      impls.forEach((im, i) => {
        const row = { case: name, impl: im.impl, tier: im.tier, threads, median_ms: med[i], throughput: work / (med[i] / 1e3), unit };
        if (ortMs !== undefined) row.speedup_vs_ort = ortMs / med[i];
        if (im.kernel !== undefined) row.kernel = im.kernel;
        rows.push(row);
      });
      await ortSession?.release?.();
    }
  }

  // ---- GEMM: fp32 MatMul and int8 QLinearMatMul (uint8 activations x int8 weights) -------------------
  const gemms = quick ? [[1, 1024, 1024], [64, 1024, 1024], [512, 512, 512]] : [[1, 1024, 1024], [64, 1024, 1024], [256, 1024, 1024], [512, 512, 512]];
  for (const [M, N, K] of gemms) {
    const a = f32([M, K]);
    const b = f32([K, N], 0.05);
    const fp = model([onnx.makeNode("MatMul", ["a", "b"], ["y"])], [vi("a", "float32", [M, K])], [vi("y", "float32", [M, N])], { b });
    await runCase(`gemm_fp32 ${M}x${N}x${K}`, fp, { a }, 2 * M * N * K / 1e9, "GFLOP/s");
    const qa = u8([M, K]);
    const q = model(
      [onnx.makeNode("QLinearMatMul", ["a", "as", "azp", "b", "bs", "bzp", "ys", "yzp"], ["y"])],
      [vi("a", "uint8", [M, K])], [vi("y", "uint8", [M, N])],
      { as: scalar("float32", 0.02), azp: scalar("uint8", 128), b: s8([K, N]), bs: scalar("float32", 0.004), bzp: scalar("int8", 0), ys: scalar("float32", 2), yzp: scalar("uint8", 128) },
    );
    await runCase(`gemm_int8 ${M}x${N}x${K}`, q, { a: qa }, 2 * M * N * K / 1e9, "GOP/s");
  }

  // ---- conv: fp32 Conv and int8 QLinearConv ------------------------------------------------------------
  const convs = [
    { name: "1x64x56x56 k3x64", C: 64, H: 56, W: 56, M: 64, s: 1 },
    { name: "1x3x224x224 k3x32 s2", C: 3, H: 224, W: 224, M: 32, s: 2 },
  ];
  for (const c of convs) {
    const OH = Math.floor((c.H + 2 - 3) / c.s) + 1;
    const OW = Math.floor((c.W + 2 - 3) / c.s) + 1;
    const work = 2 * c.M * OH * OW * c.C * 9 / 1e9;
    const attrs = { kernel_shape: [3, 3], pads: [1, 1, 1, 1], strides: [c.s, c.s] };
    const x = f32([1, c.C, c.H, c.W]);
    const fp = model([onnx.makeNode("Conv", ["x", "w", "b"], ["y"], attrs)], [vi("x", "float32", [1, c.C, c.H, c.W])], [vi("y", "float32", [1, c.M, OH, OW])],
      { w: f32([c.M, c.C, 3, 3], 0.1), b: f32([c.M], 0.1) });
    await runCase(`conv_fp32 ${c.name}`, fp, { x }, work, "GFLOP/s");
    const q = model(
      [onnx.makeNode("QLinearConv", ["x", "xs", "xzp", "w", "ws", "wzp", "ys", "yzp", "b"], ["y"], attrs)],
      [vi("x", "uint8", [1, c.C, c.H, c.W])], [vi("y", "uint8", [1, c.M, OH, OW])],
      {
        xs: scalar("float32", 0.02), xzp: scalar("uint8", 128), w: s8([c.M, c.C, 3, 3]), ws: scalar("float32", 0.003), wzp: scalar("int8", 0),
        ys: scalar("float32", 1.5), yzp: scalar("uint8", 128), b: ir.tensor("int32", [c.M], Int32Array.from({ length: c.M }, () => Math.floor(rand() * 2000) - 1000)),
      },
    );
    await runCase(`conv_int8 ${c.name}`, q, { x: u8([1, c.C, c.H, c.W]) }, work, "GOP/s");
  }

  // ---- weight-only GEMV 1x4096x4096: GB/s of weights streamed --------------------------------------------
  const N = quick ? 2048 : 4096;
  const K = N;
  const G = 128;
  const x = f32([1, K]);
  const wf = f32([K, N], 0.02);
  const fp = model([onnx.makeNode("MatMul", ["x", "w"], ["y"])], [vi("x", "float32", [1, K])], [vi("y", "float32", [1, N])], { w: wf });
  await runCase(`gemv_fp32 1x${N}x${K}`, fp, { x }, (N * K * 4) / 1e9, "GB/s");
  // int4: qforge's affine_quantized_linear (uint4 codes, per-group scale and INT zero point), ORT's MatMulNBits.
  const codes = Uint8Array.from({ length: N * K }, () => Math.floor(rand() * 16));
  const pairs = new Uint8Array((N * K) / 2);
  for (let i = 0; i < pairs.length; i++) pairs[i] = (codes[2 * i] << 4) | codes[2 * i + 1];
  const scales = f32([N, K / G], 0.01);
  const b4 = new ir.GraphBuilder();
  const x4 = b4.input("x", "float32", [1, K]);
  b4.output(b4.node1("affine_quantized_linear", [x4, b4.constant("w", ir.tensor("uint8", [N, K / 2], pairs)), b4.constant("s", scales),
    b4.constant("zp", ir.tensor("int32", [N, K / G], new Int32Array(N * (K / G)).fill(8))), ""], {
    weight_shape: [N, K], weight_dtype: "uint4", block_size: [1, G], zero_point_domain: "INT", layout: "int4_pairs",
  }));
  // MatMulNBits blobs: [N][K/G][G/2], low nibble first.
  const blobs = new Uint8Array((N * K) / 2);
  for (let i = 0; i < blobs.length; i++) blobs[i] = codes[2 * i] | (codes[2 * i + 1] << 4);
  const nbits = model(
    [onnx.makeNode("MatMulNBits", ["x", "w", "s"], ["y"], { K, N, bits: 4, block_size: G }, { domain: "com.microsoft" })],
    [vi("x", "float32", [1, K])], [vi("y", "float32", [1, N])],
    { w: ir.tensor("uint8", [N, K / G, G / 2], blobs), s: ir.tensor("float32", [N * (K / G)], scales.data) },
    [{ domain: "com.microsoft", version: 1 }],
  );
  await runCase(`gemv_int4_woq 1x${N}x${K} g${G}`, nbits, { x }, (N * K * 0.5 + N * (K / G) * 8) / 1e9, "GB/s", { graph: b4.build() });
  const b8 = new ir.GraphBuilder();
  const x8 = b8.input("x", "float32", [1, K]);
  b8.output(b8.node1("affine_quantized_linear", [x8, b8.constant("w", s8([N, K])), b8.constant("s", f32([N], 0.01)), "", ""], {
    weight_shape: [N, K], weight_dtype: "int8", block_size: [1, K], zero_point_domain: "NONE",
  }));
  const nbits8 = model(
    [onnx.makeNode("MatMulNBits", ["x", "w", "s"], ["y"], { K, N, bits: 8, block_size: G }, { domain: "com.microsoft" })],
    [vi("x", "float32", [1, K])], [vi("y", "float32", [1, N])],
    { w: ir.tensor("uint8", [N, K / G, G], u8([N * K]).data), s: ir.tensor("float32", [N * (K / G)], f32([N * (K / G)], 0.01).data) },
    [{ domain: "com.microsoft", version: 1 }],
  );
  await runCase(`gemv_int8_woq 1x${N}x${K}`, nbits8, { x }, (N * K + N * 4) / 1e9, "GB/s", { graph: b8.build() });
  return rows;
}
