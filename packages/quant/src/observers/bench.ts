import { tensor, type Tensor } from "@qforge/ir";
import { lcgUniform, medianTimeMs, type BenchRow } from "../bench.js";
import { HistogramObserver } from "./histogram.js";
import { MinMaxObserver } from "./minmax.js";
import { PerChannelMinMaxObserver } from "./per-channel.js";
import type { Observer } from "./types.js";

/** Deterministic roughly normal float32 data (sum of three uniforms), no allocation per value. */
function makeData(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  const next = lcgUniform(seed);
  for (let i = 0; i < n; i++) {
    let acc = 0;
    for (let k = 0; k < 3; k++) acc += next();
    out[i] = (acc - 1.5) * 2;
  }
  return out;
}

/** Times `observe` of `batch` on fresh observers after one warm-up batch (so merge paths are timed). */
function timeObserve(make: () => Observer, warm: Tensor, batch: Tensor, reps: number): number {
  const fresh = (): Observer => {
    const o = make();
    o.observe(warm);
    return o;
  };
  return medianTimeMs((o) => o.observe(batch), reps, 0, fresh);
}

/**
 * Observer throughput on `n` float32 values (default 16M = 2^24): MinMaxObserver, PerChannelMinMaxObserver
 * (channel axis inner and outermost-but-one) and HistogramObserver (the second-batch path: histc over
 * the combined range plus re-binning the previous histogram). Single-threaded JS on Float32Array.
 */
export function benchObservers(opts: { n?: number } = {}): BenchRow[] {
  const n = Math.max(4096, Math.floor((opts.n ?? 1 << 24) / 4096) * 4096);
  const reps = n >= 1 << 22 ? 5 : 9;
  const a = makeData(n, 1);
  const b = makeData(n, 2);
  for (let i = 0; i < n; i += 1024) b[i] = b[i]! * 1.5; // widen the second batch's range a little
  const flat = (d: Float32Array): Tensor => tensor("float32", [n], d);
  const rows: BenchRow[] = [];
  const add = (name: string, ms: number): void => {
    rows.push({ case: name, impl: "qforge", tier: "js", threads: 1, median_ms: ms, throughput: n / (ms / 1000), unit: "elements/s" });
  };
  add(`MinMaxObserver n=${n}`, timeObserve(() => new MinMaxObserver(), flat(a), flat(b), reps));
  const nchw = (d: Float32Array): Tensor => tensor("float32", [16, 256, n / 4096], d);
  add(
    `PerChannelMinMaxObserver [16,256,${n / 4096}] chAxis=1`,
    timeObserve(() => new PerChannelMinMaxObserver({ chAxis: 1, dtype: "qint8", qscheme: "per_channel_symmetric" }), nchw(a), nchw(b), reps),
  );
  const rowsLast = (d: Float32Array): Tensor => tensor("float32", [n / 256, 256], d);
  add(
    `PerChannelMinMaxObserver [${n / 256},256] chAxis=-1`,
    timeObserve(() => new PerChannelMinMaxObserver({ chAxis: -1, dtype: "qint8", qscheme: "per_channel_symmetric" }), rowsLast(a), rowsLast(b), reps),
  );
  add(`HistogramObserver bins=2048 n=${n}`, timeObserve(() => new HistogramObserver(), flat(a), flat(b), reps));
  return rows;
}
