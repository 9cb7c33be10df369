/**
 * quantize_ on a small transformer: A16W8, A16W4 and 8da4w against float. For each: model bytes,
 * mean weight SQNR, logits SQNR / cosine similarity / top-1 agreement with the float logits, and
 * tokens per second on the reference runtime ("reference": the oracle kernels, which dequantize the
 * whole weight per call) and with @qforge/ao's "cpu" kernels for the quantized linears (other ops
 * stay on the reference interpreter; @qforge/backend-cpu is not used).
 */
import { exportModel } from "@qforge/export";
import { toFloat64, type ExportedProgram, type Tensor } from "@qforge/ir";
import { runProgram } from "@qforge/runtime";
import {
  Int4WeightOnlyConfig, Int8DynamicActivationInt4WeightConfig, Int8WeightOnlyConfig, quantize_, runQuantized, TilesLayout, weightReport,
  type AOBaseConfig,
} from "@qforge/ao";
import { createModel, exampleTokens, SMALL, type TransformerConfig } from "./model.js";

export interface Row {
  readonly name: string;
  readonly config: string;
  readonly modelBytes: number;
  /** Mean over the quantized layers of the weight SQNR (dB); Infinity for float. */
  readonly weightSqnrDb: number;
  readonly logitsSqnrDb: number;
  readonly cosine: number;
  /** Fraction of positions whose argmax token equals float's. */
  readonly top1: number;
  readonly tokensPerSecReference: number;
  readonly tokensPerSecCpu: number;
}

export const RECIPES: readonly [string, () => AOBaseConfig | undefined][] = [
  ["float32", () => undefined],
  ["A16W8", () => new Int8WeightOnlyConfig()],
  ["A16W4", () => new Int4WeightOnlyConfig({ groupSize: 32, layout: TilesLayout(8, 32) })],
  ["8da4w", () => new Int8DynamicActivationInt4WeightConfig({ groupSize: 32 })],
];

function compare(ref: Tensor, y: Tensor, vocab: number): { sqnr: number; cosine: number; top1: number } {
  const a = toFloat64(ref);
  const b = toFloat64(y);
  let s = 0;
  let e = 0;
  let ab = 0;
  let bb = 0;
  for (let i = 0; i < a.length; i++) {
    s += a[i]! * a[i]!;
    e += (a[i]! - b[i]!) ** 2;
    ab += a[i]! * b[i]!;
    bb += b[i]! * b[i]!;
  }
  let agree = 0;
  const positions = a.length / vocab;
  for (let p = 0; p < positions; p++) {
    let ia = 0;
    let ib = 0;
    for (let v = 1; v < vocab; v++) {
      if (a[p * vocab + v]! > a[p * vocab + ia]!) ia = v;
      if (b[p * vocab + v]! > b[p * vocab + ib]!) ib = v;
    }
    if (ia === ib) agree++;
  }
  return { sqnr: e === 0 ? Infinity : 10 * Math.log10(s / e), cosine: ab / Math.sqrt(s * bb), top1: agree / positions };
}

/**
 * Tokens/s of the fastest of `reps` forward passes after one warm-up pass (the fastest, not the
 * median: on a shared machine the other passes measure the neighbours).
 */
function throughput(run: () => unknown, tokens: number, reps: number): number {
  run();
  let best = Infinity;
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    run();
    best = Math.min(best, performance.now() - t0);
  }
  return tokens / (best / 1000);
}

export interface ExampleOptions {
  cfg?: TransformerConfig;
  batch?: number;
  /** Timed forward passes per measurement (the fastest counts). */
  reps?: number;
}

export function runTransformerExample(opts: ExampleOptions = {}): { rows: Row[]; programs: Record<string, ExportedProgram> } {
  const cfg = opts.cfg ?? SMALL;
  const ids = exampleTokens(cfg, opts.batch ?? 2);
  const tokens = ids.shape[0]! * ids.shape[1]!;
  const reps = opts.reps ?? 3;
  const floatModel = createModel(cfg);
  const ref = runProgram(exportModel(floatModel, [ids]), [ids])[0]!;
  const built = RECIPES.map(([name, make]) => {
    const config = make();
    const model = createModel(cfg);
    if (config !== undefined) quantize_(model, config);
    return { name, config, model, ep: exportModel(model, [ids]) };
  });
  // Every program once on each device before any timing, so no row pays for the JIT's first runs.
  for (const b of built) for (const device of ["reference", "cpu"]) runQuantized(b.ep, [ids], { device });
  const rows = built.map(({ name, config, model, ep }): Row => {
    const cmp = compare(ref, runQuantized(ep, [ids], { device: "reference" })[0]!, cfg.vocab);
    const report = weightReport(floatModel, model);
    const sq = report.layers.map((l) => l.sqnrDb);
    const tpsReference = throughput(() => runQuantized(ep, [ids], { device: "reference" }), tokens, reps);
    // Without quantized ops (float) both columns run the same interpreter: measure once.
    const tpsCpu = config === undefined ? tpsReference : throughput(() => runQuantized(ep, [ids], { device: "cpu" }), tokens, reps);
    return {
      name,
      config: config === undefined ? "-" : config.constructor.name,
      modelBytes: report.totalBytesAfter,
      weightSqnrDb: sq.length === 0 ? Infinity : sq.reduce((a, b) => a + b, 0) / sq.length,
      logitsSqnrDb: cmp.sqnr,
      cosine: cmp.cosine,
      top1: cmp.top1,
      tokensPerSecReference: tpsReference,
      tokensPerSecCpu: tpsCpu,
    };
  });
  return { rows, programs: Object.fromEntries(built.map((b) => [b.name, b.ep])) };
}

const fmt = (x: number, d = 1): string => (Number.isFinite(x) ? x.toFixed(d) : "inf");

export function formatRows(rows: readonly Row[], cfg: TransformerConfig = SMALL, batch = 2): string {
  const base = rows[0]!.modelBytes;
  return [
    `TinyTransformer vocab ${cfg.vocab}, dim ${cfg.dim}, ${cfg.heads} heads, ${cfg.layers} layers, mlp ${cfg.mlp}; ${batch} x ${cfg.seq} tokens`,
    "",
    "| recipe | config | model size | weight SQNR (dB) | logits SQNR (dB) | cosine | top-1 agree | tokens/s reference | tokens/s cpu kernels |",
    "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ...rows.map((r) => `| ${r.name} | ${r.config} | ${(r.modelBytes / 1024).toFixed(0)} KiB (${(base / r.modelBytes).toFixed(2)}x) | ${fmt(r.weightSqnrDb)} | ${fmt(r.logitsSqnrDb)} | ${r.cosine.toFixed(5)} | ${(r.top1 * 100).toFixed(1)}% | ${r.tokensPerSecReference.toFixed(0)} | ${r.tokensPerSecCpu.toFixed(0)} |`),
  ].join("\n");
}
