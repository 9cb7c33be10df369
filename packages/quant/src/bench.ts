/**
 * Throughput of the hot quantization loops on float32 data: `quantizePerTensor` (float32 -> quint8),
 * `dequantizePerTensor` (quint8 -> float32), `fakeQuantizePerTensorAffine` (forward, with mask) and
 * `quantizeAffine` per group (group size 32, int8). Single-threaded reference TypeScript; the median
 * of `repeats` timed runs after warm-up. Each case includes allocating its output, as callers see it;
 * two baseline rows time that allocation alone.
 */
import { tensor, type Tensor } from "@qforge/ir";
import { quantizeAffine } from "./primitives/affine.js";
import { blockSizeFor, PerGroup } from "./primitives/blocks.js";
import { dequantizePerTensor, quantizePerTensor } from "./primitives/classic.js";
import { fakeQuantizePerTensorAffine } from "./fake-quant/functional.js";

/** One benchmark measurement (the row format of `npm run bench`; benchQuant and benchObservers). */
export interface BenchRow {
  case: string;
  impl: string;
  tier: string;
  threads: number;
  median_ms: number;
  /** Elements per second at the median time. */
  throughput: number;
  unit: string;
}

export interface BenchQuantOptions {
  /** Elements per run (default 16,777,216 = 16M float32 values). */
  n?: number;
  /** Timed runs per case, after warm-up (default 5). */
  repeats?: number;
  /** Untimed warm-up runs per case (default 2). */
  warmup?: number;
}

const GROUP_SIZE = 32;

/**
 * A deterministic stream of uniform values in [0, 1) from a 32-bit LCG (Numerical Recipes'
 * constants; no Math.random, so benchmark runs are comparable).
 */
export function lcgUniform(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

/** Deterministic inputs in [-4, 4). */
function benchInput(n: number): Float32Array {
  const out = new Float32Array(n);
  const next = lcgUniform(0x9e3779b9);
  for (let i = 0; i < n; i++) out[i] = next() * 8 - 4;
  return out;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * The median wall time in ms of `repeats` timed calls `timed(setup())`, after `warmup` untimed
 * calls of the same. `setup` (untimed, once per call) prepares what the timed call works on.
 */
export function medianTimeMs<S>(timed: (state: S) => unknown, repeats: number, warmup = 0, setup?: () => S): number {
  const prepare = setup ?? ((): S => undefined as S);
  for (let i = 0; i < warmup; i++) timed(prepare());
  const times: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const state = prepare();
    const t0 = performance.now();
    timed(state);
    times.push(performance.now() - t0);
  }
  return median(times);
}

/** Runs the four cases and returns one row each. */
export function benchQuant(opts: BenchQuantOptions = {}): BenchRow[] {
  const n = opts.n ?? 16_777_216;
  const repeats = Math.max(1, opts.repeats ?? 5);
  const warmup = Math.max(0, opts.warmup ?? 2);
  if (!Number.isInteger(n) || n < GROUP_SIZE || n % GROUP_SIZE !== 0) {
    throw new RangeError(`benchQuant: n must be a positive multiple of ${GROUP_SIZE}, got ${n}`);
  }
  const x: Tensor = tensor("float32", [n / GROUP_SIZE, GROUP_SIZE], benchInput(n));
  const scale = 8 / 255;
  const zeroPoint = 128;
  const q = quantizePerTensor(x, scale, zeroPoint, "quint8");
  const block = blockSizeFor(PerGroup(GROUP_SIZE), x.shape);
  const groups = n / GROUP_SIZE;
  const groupScale = tensor("float32", [groups], new Float32Array(groups).fill(Math.fround(4 / 127.5)));
  const groupZero = tensor("int32", [groups], new Int32Array(groups));

  const cases: [string, () => Tensor][] = [
    ["quantize_per_tensor f32->quint8", () => quantizePerTensor(x, scale, zeroPoint, "quint8")],
    ["dequantize_per_tensor quint8->f32", () => dequantizePerTensor(q, scale, zeroPoint)],
    ["fake_quantize_per_tensor_affine f32 (output+mask)", () => fakeQuantizePerTensorAffine(x, scale, zeroPoint, 0, 255).output],
    [`quantize_affine per_group(${GROUP_SIZE}) f32->int8`, () => quantizeAffine(x, block, groupScale, groupZero, "int8")],
  ];
  // What allocating and first touching the outputs costs by itself: every case allocates its result,
  // and on some systems (sandboxes, small pages) the page faults of a fresh 64 MiB buffer rival the loop.
  const baselines: [string, () => Tensor][] = [
    ["baseline: allocate+fill float32 output", () => tensor("float32", [n], new Float32Array(n).fill(1))],
    ["baseline: allocate+fill uint8 output", () => tensor("uint8", [n], new Uint8Array(n).fill(1))],
  ];
  const row = (name: string, tier: string, ms: number): BenchRow => ({
    case: name,
    impl: "qforge-ts",
    tier,
    threads: 1,
    median_ms: Number(ms.toFixed(3)),
    throughput: ms > 0 ? Math.round(n / (ms / 1000)) : Infinity,
    unit: "elements/s",
  });
  return [
    ...cases.map(([name, run]) => row(name, "reference", medianTimeMs(run, repeats, warmup))),
    ...baselines.map(([name, run]) => row(name, "baseline", medianTimeMs(run, repeats, warmup))),
  ];
}
