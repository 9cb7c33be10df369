/**
 * `npx tsx examples/web/bench.ts [--quick] [--json file]`: the WebGPU benchmark in headless
 * Chromium — the GEMM, conv and PP-OCRv4 recognition cases of the CPU bench, each as one ONNX model
 * that onnxruntime-web's WebGPU EP runs and qforge imports and compiles with { backend: "webgpu" },
 * on the same adapter and inputs in the same page. Prints the table with the ratio to ORT.
 * `benchWebGpuInChromium` is what scripts/bench.mjs can call.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fromArray, tensor, type Graph, type Tensor } from "@qforge/ir";
import { runOp } from "@qforge/runtime";
import { encodeModel, importOnnx, makeGraph, makeModel, makeNode, makeTensorValueInfo } from "@qforge/onnx";
import { quantizeModel } from "@qforge/cli";
import { lowerQdq } from "@qforge/pt2e";
import type { WebGpuBenchRow } from "@qforge/backend-webgpu";
import { graphToJson, tensorToJson } from "./graph-json.js";
import { preprocessLine } from "./lines.js";
import { bundle, launchChromium, OCR_LINES, OUT, ROOT, serve, WEB } from "./serve.js";
import type { BenchCaseJson } from "./bench-page.js";

function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

const b64 = (u: Uint8Array): string => Buffer.from(u).toString("base64");

async function caseOf(name: string, onnx: Uint8Array, feeds: Record<string, Tensor>, work: number, unit: string): Promise<BenchCaseJson> {
  const ep = await importOnnx(onnx, { fold: (op, inputs, attrs, n) => runOp(op, inputs, { ...attrs }, { numOutputs: n }) });
  const g: Graph = { ...ep.graph, inputs: ep.inputs.map((s) => s.value), outputs: ep.outputs.map((s) => s.value) };
  return {
    name, graph: graphToJson(g), feeds: ep.inputs.map((s) => tensorToJson(feeds[s.name]!)), work, unit, onnx: b64(onnx),
    ortFeeds: Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, tensorToJson(t)])),
  };
}

/** Builds the cases, runs the bench page in Chromium and returns the rows. */
export async function benchWebGpuInChromium(opts: { quick?: boolean; log?: (m: string) => void } = {}): Promise<{ rows: WebGpuBenchRow[]; table: string }> {
  const quick = opts.quick ?? false;
  const log = opts.log ?? (() => {});
  const rand = lcg(12345);
  const f32 = (shape: number[], scale = 1): Tensor => tensor("float32", shape, Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => (rand() * 2 - 1) * scale));
  const u8 = (shape: number[]): Tensor => fromArray("uint8", shape, Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => Math.floor(rand() * 256)));
  const s8 = (shape: number[]): Tensor => fromArray("int8", shape, Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => Math.floor(rand() * 256) - 128));
  const sc = (dtype: "float32" | "uint8" | "int8", v: number): Tensor => fromArray(dtype, [], [v]);
  const vi = makeTensorValueInfo;
  const model = (nodes: ReturnType<typeof makeNode>[], inputs: ReturnType<typeof vi>[], outputs: ReturnType<typeof vi>[], initializers: Record<string, Tensor>): Uint8Array =>
    encodeModel(makeModel(makeGraph({ nodes, inputs, outputs, initializers }), { opset: 17 }));
  const cases: BenchCaseJson[] = [];
  log("building cases...");
  const gemms = quick ? [[64, 256, 256], [256, 256, 256]] : [[64, 1024, 1024], [512, 512, 512]];
  for (const [M, N, K] of gemms as [number, number, number][]) {
    const b = f32([K, N], 0.05);
    cases.push(await caseOf(`gemm_fp32 ${M}x${N}x${K}`, model([makeNode("MatMul", ["a", "b"], ["y"])], [vi("a", "float32", [M, K])], [vi("y", "float32", [M, N])], { b }),
      { a: f32([M, K]) }, (2 * M * N * K) / 1e9, "GFLOP/s"));
    cases.push(await caseOf(`gemm_int8 ${M}x${N}x${K}`, model(
      [makeNode("QLinearMatMul", ["a", "as", "az", "b", "bs", "bz", "ys", "yz"], ["y"])], [vi("a", "uint8", [M, K])], [vi("y", "uint8", [M, N])],
      { as: sc("float32", 0.02), az: sc("uint8", 128), b: s8([K, N]), bs: sc("float32", 0.003), bz: sc("int8", 0), ys: sc("float32", 1.5), yz: sc("uint8", 128) },
    ), { a: u8([M, K]) }, (2 * M * N * K) / 1e9, "GOP/s"));
  }
  const convs = quick ? [{ name: "1x16x56x56 k3x16", C: 16, H: 56, W: 56, M: 16, s: 1 }] : [{ name: "1x64x56x56 k3x64", C: 64, H: 56, W: 56, M: 64, s: 1 }, { name: "1x3x224x224 k3x32 s2", C: 3, H: 224, W: 224, M: 32, s: 2 }];
  for (const c of convs) {
    const OH = Math.floor((c.H + 2 - 3) / c.s) + 1;
    const OW = Math.floor((c.W + 2 - 3) / c.s) + 1;
    const work = (2 * c.M * OH * OW * c.C * 9) / 1e9;
    const attrs = { kernel_shape: [3, 3], pads: [1, 1, 1, 1], strides: [c.s, c.s] };
    cases.push(await caseOf(`conv_fp32 ${c.name}`, model([makeNode("Conv", ["x", "w", "b"], ["y"], attrs)], [vi("x", "float32", [1, c.C, c.H, c.W])], [vi("y", "float32", [1, c.M, OH, OW])],
      { w: f32([c.M, c.C, 3, 3], 0.1), b: f32([c.M], 0.1) }), { x: f32([1, c.C, c.H, c.W]) }, work, "GFLOP/s"));
    cases.push(await caseOf(`conv_int8 ${c.name}`, model(
      [makeNode("QLinearConv", ["x", "xs", "xzp", "w", "ws", "wzp", "ys", "yzp", "b"], ["y"], attrs)], [vi("x", "uint8", [1, c.C, c.H, c.W])], [vi("y", "uint8", [1, c.M, OH, OW])],
      {
        xs: sc("float32", 0.02), xzp: sc("uint8", 128), w: s8([c.M, c.C, 3, 3]), ws: sc("float32", 0.003), wzp: sc("int8", 0), ys: sc("float32", 1.5), yzp: sc("uint8", 128),
        b: fromArray("int32", [c.M], Array.from({ length: c.M }, () => Math.floor(rand() * 2000) - 1000)),
      },
    ), { x: u8([1, c.C, c.H, c.W]) }, work, "GOP/s"));
  }
  // PP-OCRv4 recognition on a real text line: fp32 (both engines) and qforge's int8 (PT2E, XNNPACK quantizer).
  const recPath = join(ROOT, "node_modules", "@gutenye", "ocr-models", "assets", "ch_PP-OCRv4_rec_infer.onnx");
  const line = preprocessLine(join(OCR_LINES, "001.png"));
  const recBytes = new Uint8Array(readFileSync(recPath));
  const rec = await caseOf(`ppocrv4_rec fp32 ${line.shape.join("x")}`, recBytes, { x: line }, 1, "lines/s");
  cases.push(rec);
  const ep = await importOnnx(recBytes, { fold: (op, inputs, attrs, n) => runOp(op, inputs, { ...attrs }, { numOutputs: n }) });
  const { program } = quantizeModel(ep, { quantizer: "xnnpack", method: "minmax", perChannel: true }, [[line]]);
  const lowered = lowerQdq(program);
  const gq: Graph = { ...lowered.graph, inputs: lowered.inputs.map((s) => s.value), outputs: lowered.outputs.map((s) => s.value) };
  cases.push({ name: `ppocrv4_rec int8 ${line.shape.join("x")}`, graph: graphToJson(gq), feeds: [tensorToJson(line)], work: 1, unit: "lines/s" });

  mkdirSync(OUT, { recursive: true });
  writeFileSync(join(OUT, "bench-cases.json"), JSON.stringify(cases));
  await bundle(join(WEB, "bench-page.ts"), join(OUT, "bench-page.js"));
  const { server, url } = await serve({
    "/bench.html": join(WEB, "bench.html"), "/bench-page.js": join(OUT, "bench-page.js"), "/out": OUT,
    "/ort": join(ROOT, "node_modules", "onnxruntime-web", "dist"),
  });
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    page.on("console", (m) => log(`[page] ${m.text()}`));
    await page.goto(`${url}/bench.html?budget=${quick ? 1500 : 4000}`);
    await page.waitForFunction(() => (globalThis as { qforgeBench?: unknown }).qforgeBench !== undefined, undefined, { timeout: 3_600_000, polling: 1000 });
    const result = (await page.evaluate(() => (globalThis as { qforgeBench?: unknown }).qforgeBench)) as { rows: WebGpuBenchRow[]; table: string } | { error: string } | undefined;
    if (result === undefined || "error" in result) throw new Error(`the bench page failed: ${result?.error ?? "no result"}`);
    return result;
  } finally {
    await browser.close();
    server.close();
  }
}

if (process.argv[1] !== undefined && process.argv[1].endsWith("bench.ts")) {
  const args = process.argv.slice(2);
  const { rows, table } = await benchWebGpuInChromium({ quick: args.includes("--quick"), log: (m) => process.stderr.write(`${m}\n`) });
  console.log(`adapter: ${rows[0]?.adapter ?? "?"}`);
  console.log(table);
  const at = args.indexOf("--json");
  if (at >= 0) writeFileSync(args[at + 1] ?? "bench-webgpu.json", JSON.stringify(rows, null, 2));
}
