/**
 * The WebGPU benchmark: each case runs on qforge's WebGPU backend and, when its ONNX model is given,
 * on onnxruntime-web's WebGPU execution provider on the same adapter and inputs, in one run
 * (a browser page, or anywhere `navigator.gpu` and onnxruntime-web exist). Like the CPU bench:
 * warm-up, then blocks of runs alternating between the implementations (a load spike on a shared
 * machine then hits both), and the median per implementation. Every run includes reading the
 * outputs back, for both.
 *
 * Rows: { case, impl, tier, adapter, median_ms, throughput, unit, speedup_vs_ort } where
 * speedup_vs_ort = ORT median / qforge median (ORT's own row: 1).
 */
import type { Graph, Tensor } from "@qforge/ir";
import { compileWebGpu, type WebGpuCompileOptions } from "./session.js";

export interface WebGpuBenchCase {
  readonly name: string;
  readonly graph: Graph;
  /** qforge feeds, in graph input order. */
  readonly feeds: readonly Tensor[];
  /** Work per run in `unit`s (GFLOP, GOP, images). */
  readonly work: number;
  readonly unit: string;
  /** The same model as ONNX bytes for onnxruntime-web (omit for qforge-only rows). */
  readonly onnx?: Uint8Array;
  /** ORT feeds by ONNX input name (default: the graph inputs' names with `feeds`). */
  readonly ortFeeds?: Readonly<Record<string, Tensor>>;
}

/** The slice of the onnxruntime-web API the bench uses. */
export interface OrtWebLike {
  readonly InferenceSession: {
    create(model: Uint8Array, options: Record<string, unknown>): Promise<OrtSessionLike>;
  };
  readonly Tensor: new (type: string, data: ArrayLike<number> | ArrayBufferView, dims: readonly number[]) => unknown;
}

export interface OrtSessionLike {
  run(feeds: Record<string, unknown>): Promise<Record<string, { getData?: () => Promise<unknown>; data?: unknown }>>;
  release?(): Promise<void>;
}

export interface WebGpuBenchRow {
  readonly case: string;
  readonly impl: "qforge" | "onnxruntime-web";
  readonly tier: "webgpu";
  readonly adapter: string;
  readonly median_ms: number;
  readonly throughput: number;
  readonly unit: string;
  readonly speedup_vs_ort?: number;
}

export interface WebGpuBenchOptions {
  /** onnxruntime-web (its webgpu build): adds the ORT rows and the ratios. */
  readonly ort?: OrtWebLike;
  /** Milliseconds of measuring per case (split over the implementations); default 3000. */
  readonly budgetMs?: number;
  readonly minRuns?: number;
  readonly compile?: WebGpuCompileOptions;
  readonly log?: (message: string) => void;
}

interface Impl {
  readonly impl: WebGpuBenchRow["impl"];
  readonly run: () => Promise<unknown>;
  readonly dispose: () => Promise<void>;
}

const now = (): number => (typeof performance !== "undefined" ? performance.now() : Date.now());

async function timeOnce(fn: () => Promise<unknown>): Promise<number> {
  const t = now();
  await fn();
  return now() - t;
}

/** Median of each implementation's times, measured in alternating blocks. */
async function measure(impls: readonly Impl[], budgetMs: number, minRuns: number): Promise<number[]> {
  const warm: number[] = [];
  for (const im of impls) {
    await timeOnce(im.run);
    warm.push(await timeOnce(im.run));
  }
  const slowest = Math.max(...warm, 1e-3);
  const reps = Math.max(minRuns, Math.min(100, Math.floor(budgetMs / slowest / impls.length)));
  const block = Math.max(1, Math.min(5, Math.floor(reps / 3)));
  const times: number[][] = impls.map(() => []);
  while (times[0]!.length < reps) {
    for (let i = 0; i < impls.length; i++) for (let b = 0; b < block; b++) times[i]!.push(await timeOnce(impls[i]!.run));
  }
  return times.map((t) => {
    t.sort((a, b) => a - b);
    return t[t.length >> 1]!;
  });
}

/** Runs the cases; see the module comment. */
export async function benchWebGpu(cases: readonly WebGpuBenchCase[], opts: WebGpuBenchOptions = {}): Promise<WebGpuBenchRow[]> {
  const log = opts.log ?? (() => {});
  const rows: WebGpuBenchRow[] = [];
  for (const c of cases) {
    log(`bench ${c.name}...`);
    const session = await compileWebGpu(c.graph, opts.compile);
    const adapter = session.caps.description;
    const impls: Impl[] = [{
      impl: "qforge",
      run: () => session.run(c.feeds),
      dispose: async () => session.dispose(),
    }];
    if (opts.ort !== undefined && c.onnx !== undefined) {
      const ort = opts.ort;
      const ortSession = await ort.InferenceSession.create(c.onnx, { executionProviders: ["webgpu"], graphOptimizationLevel: "all" });
      const named = c.ortFeeds ?? Object.fromEntries(c.graph.inputs.map((v, i) => [v, c.feeds[i]!]));
      const feeds: Record<string, unknown> = {};
      for (const [k, t] of Object.entries(named)) feeds[k] = new ort.Tensor(t.dtype, t.data as ArrayBufferView, t.shape);
      impls.push({
        impl: "onnxruntime-web",
        run: async () => {
          const out = await ortSession.run(feeds);
          // Read every output back, as qforge's run does.
          for (const v of Object.values(out)) if (typeof v.getData === "function") await v.getData();
          return out;
        },
        dispose: async () => { await ortSession.release?.(); },
      });
    }
    const med = await measure(impls, opts.budgetMs ?? 3000, opts.minRuns ?? 3);
    const ortAt = impls.findIndex((im) => im.impl === "onnxruntime-web");
    impls.forEach((im, i) => {
      const row: WebGpuBenchRow = {
        case: c.name, impl: im.impl, tier: "webgpu", adapter, median_ms: med[i]!, throughput: c.work / (med[i]! / 1e3), unit: c.unit,
        ...(ortAt >= 0 ? { speedup_vs_ort: med[ortAt]! / med[i]! } : {}),
      };
      rows.push(row);
    });
    for (const im of impls) await im.dispose();
  }
  return rows;
}

/** The rows as an aligned text table. */
export function formatBenchTable(rows: readonly WebGpuBenchRow[]): string {
  const cols = ["case", "impl", "tier", "median_ms", "throughput", "unit", "speedup_vs_ort"] as const;
  const fmt = (v: unknown): string => (typeof v === "number" ? v.toFixed(3) : String(v ?? ""));
  const table = [cols.map(String), ...rows.map((r) => cols.map((c) => fmt(r[c])))];
  const widths = cols.map((_, i) => Math.max(...table.map((r) => r[i]!.length)));
  return table.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ")).join("\n");
}
