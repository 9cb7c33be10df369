/**
 * torchao's `block_size` convention (torchao/quantization/quant_primitives.py `_get_reduction_params`,
 * torchao/quantization/utils.py `get_block_size`): `blockSize` has one entry per input dimension and
 * says how many consecutive elements along that dimension share one (scale, zero_point).
 *
 *   granularity           block size for an input of shape [3, 3, 10, 10]
 *   per tensor            [3, 3, 10, 10]   (= the shape)
 *   per axis (axis 0)     [1, 3, 10, 10]   (1 on the kept axis, full elsewhere)
 *   per group (size 2)    [1, 1, 1, 2]     (groups along the last dimension)
 *   per token             [1, 1, 1, 10]    (one block per last-dimension row)
 *
 * The qparams tensor has one element per block, in row-major order of the block grid; its shape is
 * torchao's `shape_after_reduction` with the reduced dimensions dropped (keepdim=False).
 */
import { QforgeError } from "@qforge/ir";
import { normalizeAxis } from "./tensor-io.js";

export type Granularity =
  | { readonly kind: "per_tensor" }
  | { readonly kind: "per_axis"; readonly axis: number }
  | { readonly kind: "per_group"; readonly groupSize: number }
  | { readonly kind: "per_token" };

/** One (scale, zero_point) for the whole tensor. */
export function PerTensor(): Granularity {
  return { kind: "per_tensor" };
}

/** One (scale, zero_point) per index along `axis` (torchao `PerAxis(axis)`). */
export function PerAxis(axis: number): Granularity {
  return { kind: "per_axis", axis };
}

/** One (scale, zero_point) per `groupSize` consecutive elements of the last dimension. */
export function PerGroup(groupSize: number): Granularity {
  return { kind: "per_group", groupSize };
}

/** One (scale, zero_point) per row of the last dimension (a "token" in [batch, seq, hidden]). */
export function PerToken(): Granularity {
  return { kind: "per_token" };
}

/** torchao's `get_block_size(input_shape, granularity)`. */
export function blockSizeFor(granularity: Granularity, shape: readonly number[]): number[] {
  switch (granularity.kind) {
    case "per_tensor":
      return [...shape];
    case "per_axis": {
      const axis = normalizeAxis(granularity.axis, shape.length, "blockSizeFor(PerAxis)");
      const b = [...shape];
      b[axis] = 1;
      return b;
    }
    case "per_group": {
      const g = granularity.groupSize;
      const last = shape[shape.length - 1];
      if (last === undefined) throw new QforgeError("BAD_SHAPE", "blockSizeFor(PerGroup): a scalar has no last dimension to group");
      if (!Number.isInteger(g) || g < 1 || last % g !== 0) {
        throw new QforgeError("BAD_CONFIG", `blockSizeFor(PerGroup): last dimension ${last} is not divisible by group size ${g}`);
      }
      return [...shape.slice(0, -1).map(() => 1), g];
    }
    case "per_token": {
      const last = shape[shape.length - 1];
      if (last === undefined) throw new QforgeError("BAD_SHAPE", "blockSizeFor(PerToken): a scalar has no last dimension");
      return [...shape.slice(0, -1).map(() => 1), last];
    }
  }
}

/** How a tensor splits into blocks. */
export interface BlockLayout {
  /** Number of blocks (= number of qparams). */
  readonly numBlocks: number;
  /** Shape of the qparams tensor (torchao's reduced shape, keepdim=False). */
  readonly qparamShape: number[];
  /**
   * Calls `fn(start, end, block)` for maximal runs of consecutive (row-major) elements that share a
   * block, in increasing `start` order. A per-tensor layout is one run; per-group, one run per group.
   */
  forEachRun(fn: (start: number, end: number, block: number) => void): void;
}

export function blockLayout(shape: readonly number[], blockSize: readonly number[], what: string): BlockLayout {
  const rank = shape.length;
  if (blockSize.length !== rank) {
    throw new QforgeError("BAD_CONFIG", `${what}: block size [${blockSize.join(", ")}] must have one entry per dimension of [${shape.join(", ")}]`);
  }
  const grid: number[] = [];
  const qparamShape: number[] = [];
  for (let i = 0; i < rank; i++) {
    const size = shape[i]!;
    const b = blockSize[i]!;
    if (b !== size && (!Number.isInteger(b) || b < 1 || size % b !== 0)) {
      throw new QforgeError("BAD_CONFIG", `${what}: block size ${b} does not divide dimension ${i} of size ${size}`, {
        hint: "use blockSizeFor(PerTensor() | PerAxis(axis) | PerGroup(n) | PerToken(), shape)",
      });
    }
    const blocks = size === 0 ? 0 : size / b; // a block size equal to the dimension (even 0) is one block
    grid.push(blocks);
    if (b === 1) qparamShape.push(size); // not reduced
    else if (b !== size) qparamShape.push(blocks); // split: the block count stays
    // b === size > 1: reduced away
  }
  const numBlocks = grid.reduce((a, g) => a * g, 1);

  // Trailing dimensions that lie entirely inside one block merge into the run.
  let k = rank;
  let inner = 1;
  while (k > 0 && blockSize[k - 1] === shape[k - 1]) {
    k--;
    inner *= shape[k]!;
  }
  const forEachRun = (fn: (start: number, end: number, block: number) => void): void => {
    if (numBlocks === 0 || inner === 0) return;
    if (k === 0) {
      fn(0, inner, 0);
      return;
    }
    const j = k - 1; // the innermost dimension that is split into several blocks (or has block 1)
    const bj = blockSize[j]!;
    const runLen = bj * inner;
    const gj = grid[j]!;
    let outerCount = 1;
    for (let i = 0; i < j; i++) outerCount *= shape[i]!;
    const idx = new Array<number>(j).fill(0); // odometer over dims 0..j-1
    for (let o = 0; o < outerCount; o++) {
      // Block-grid index of the outer coordinates (row-major over grid[0..j-1]).
      let ob = 0;
      for (let i = 0; i < j; i++) ob = ob * grid[i]! + Math.floor(idx[i]! / blockSize[i]!);
      const base = o * shape[j]! * inner;
      for (let g = 0; g < gj; g++) {
        const start = base + g * runLen;
        fn(start, start + runLen, ob * gj + g);
      }
      for (let i = j - 1; i >= 0; i--) {
        idx[i] = idx[i]! + 1;
        if (idx[i]! < shape[i]!) break;
        idx[i] = 0;
      }
    }
  };
  return { numBlocks, qparamShape, forEachRun };
}
