/**
 * numpy broadcasting as strided rows, for the elementwise kernels' inner loops. The output shape is
 * split into an outer odometer and one inner row; each operand steps through a row with stride 1
 * (it varies along the row) or 0 (it is broadcast along it). Adjacent dims that every operand
 * treats alike are merged first, so the common cases — equal shapes, a scalar operand, a per-channel
 * [C, 1, 1] or a trailing [K] operand — become a few long rows instead of a per-element index table.
 */
import { numel } from "@qforge/ir";

/** The strided walk of one broadcast: merged output dims and, per operand, its stride in each dim. */
export interface BroadcastPlan {
  readonly dims: readonly number[];
  /** strides[operand][dim]: how far the operand's flat index moves per step of that output dim. */
  readonly strides: readonly (readonly number[])[];
  readonly size: number;
}

/** Plans the broadcast of `inputs` (their shapes, trailing dims aligned) to `out`. */
export function broadcastPlan(inputs: readonly (readonly number[])[], out: readonly number[]): BroadcastPlan {
  const r = out.length;
  const full = inputs.map((s) => {
    const off = r - s.length;
    const strides = new Array<number>(r).fill(0);
    let acc = 1;
    for (let d = r - 1; d >= off; d--) {
      const size = s[d - off]!;
      strides[d] = size === 1 ? 0 : acc;
      acc *= size;
    }
    return strides;
  });
  // Merge dim d into the dim before it when, for every operand, stepping the outer dim once is the
  // same as stepping the inner dim out[d] times (both broadcast, or both contiguous).
  const dims: number[] = [];
  const strides: number[][] = inputs.map(() => []);
  for (let d = 0; d < r; d++) {
    const size = out[d]!;
    if (size === 1) continue; // a dim of 1 moves no index
    const last = dims.length - 1;
    const mergeable = last >= 0 && full.every((st, i) => strides[i]![last] === st[d]! * size);
    if (mergeable) {
      dims[last] = dims[last]! * size;
      full.forEach((st, i) => { strides[i]![last] = st[d]!; });
      continue;
    }
    dims.push(size);
    full.forEach((st, i) => strides[i]!.push(st[d]!));
  }
  if (dims.length === 0) {
    dims.push(1);
    strides.forEach((s) => s.push(0));
  }
  return { dims, strides, size: numel(out) };
}

/**
 * Calls `row(outOffset, offsets, length, rowStrides)` once per inner row of the plan, in row-major
 * order of the output: `offsets[i]` is operand i's flat index at the row's start, and it advances by
 * `rowStrides[i]` per element of the row.
 */
export function forEachRow(
  plan: BroadcastPlan,
  row: (outOffset: number, offsets: Int32Array, length: number, rowStrides: Int32Array) => void,
): void {
  if (plan.size === 0) return;
  const rank = plan.dims.length;
  const k = plan.strides.length;
  const len = plan.dims[rank - 1]!;
  const rowStrides = Int32Array.from(plan.strides, (s) => s[rank - 1]!);
  const offsets = new Int32Array(k);
  const idx = new Int32Array(rank);
  const rows = plan.size / len;
  for (let r = 0, o = 0; r < rows; r++, o += len) {
    row(o, offsets, len, rowStrides);
    // Odometer over the outer dims.
    for (let d = rank - 2; d >= 0; d--) {
      idx[d]!++;
      for (let i = 0; i < k; i++) offsets[i]! += plan.strides[i]![d]!;
      if (idx[d]! < plan.dims[d]!) break;
      for (let i = 0; i < k; i++) offsets[i]! -= plan.strides[i]![d]! * plan.dims[d]!;
      idx[d] = 0;
    }
  }
}
