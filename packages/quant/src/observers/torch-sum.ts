import { f32 } from "../primitives/float32.js";

/**
 * Emulations of ATen's CPU reductions over a contiguous float32 vector, so that sums match PyTorch
 * bit for bit (aten/src/ATen/native/cpu/SumKernel.cpp `cascade_sum`, x86-64 AVX2 build:
 * `Vectorized<float>::size() == 8`). The summation order is what makes them exact:
 *
 *  - `vectorized_inner_sum`: the row is read as 8-lane vectors; `row_sum` over the vectors with
 *    `ilp_factor = 4` independent accumulators (`multi_row_sum` with 4 cascade levels, level
 *    step 2^max(4, ceil_log2(n)/4)); leftover vectors go into accumulator 0; accumulators 1..3 are
 *    added to 0; the scalar tail (n % 8) is summed first, then the 8 lanes in order.
 *  - fewer than 8 elements: `scalar_inner_sum`, the same cascade on scalars.
 *
 * Every addition is a float32 addition (acc_type<float, /*is_cuda=*\/true> is float).
 */

const LANES = 8;
const ILP = 4;
const LEVELS = 4;

function ceilLog2(x: number): number {
  if (x <= 2) return 1;
  // floor(log2(x - 1)) + 1
  return 32 - Math.clz32(x - 1);
}

/**
 * multi_row_sum over `size` rows of `nrows` columns of `width`-lane vectors. Row r, column k,
 * lane l is `load(r, k, l)`. Writes column sums (lane-wise) into `out[k * width + l]`.
 */
function multiRowSum(
  size: number,
  nrows: number,
  width: number,
  load: (row: number, col: number, lane: number) => number,
  out: Float64Array,
): void {
  const levelPower = Math.max(4, Math.floor(ceilLog2(size) / LEVELS));
  const levelStep = 2 ** levelPower;
  const cols = nrows * width;
  const acc: Float64Array[] = [];
  for (let j = 0; j < LEVELS; j++) acc.push(new Float64Array(cols));
  const acc0 = acc[0]!;
  let i = 0;
  while (i + levelStep <= size) {
    for (let j = 0; j < levelStep; j++, i++) {
      for (let k = 0; k < nrows; k++) {
        for (let l = 0; l < width; l++) {
          const idx = k * width + l;
          acc0[idx] = f32(acc0[idx]! + load(i, k, l));
        }
      }
    }
    for (let j = 1; j < LEVELS; j++) {
      const hi = acc[j]!;
      const lo = acc[j - 1]!;
      for (let idx = 0; idx < cols; idx++) {
        hi[idx] = f32(hi[idx]! + lo[idx]!);
        lo[idx] = 0;
      }
      // `(i & (level_mask << (j * level_power))) != 0`, written without 32-bit overflow
      if (Math.floor(i / 2 ** (j * levelPower)) % levelStep !== 0) break;
    }
  }
  for (; i < size; i++) {
    for (let k = 0; k < nrows; k++) {
      for (let l = 0; l < width; l++) {
        const idx = k * width + l;
        acc0[idx] = f32(acc0[idx]! + load(i, k, l));
      }
    }
  }
  for (let j = 1; j < LEVELS; j++) {
    const a = acc[j]!;
    for (let idx = 0; idx < cols; idx++) acc0[idx] = f32(acc0[idx]! + a[idx]!);
  }
  out.set(acc0);
}

/** row_sum: `size` items of `width` lanes, item i lane l = `item(i, l)`; returns the lane sums. */
function rowSum(size: number, width: number, item: (i: number, lane: number) => number): Float64Array {
  const sizeIlp = Math.floor(size / ILP);
  const partial = new Float64Array(ILP * width);
  multiRowSum(sizeIlp, ILP, width, (row, col, lane) => item(row * ILP + col, lane), partial);
  for (let i = sizeIlp * ILP; i < size; i++) {
    for (let l = 0; l < width; l++) partial[l] = f32(partial[l]! + item(i, l));
  }
  for (let k = 1; k < ILP; k++) {
    for (let l = 0; l < width; l++) partial[l] = f32(partial[l]! + partial[k * width + l]!);
  }
  return partial.subarray(0, width);
}

/** `torch.sum(x)` of a contiguous float32 vector on CPU, as a float32 value. */
export function torchSumF32(x: ArrayLike<number>): number {
  const n = x.length;
  if (n < LANES) {
    // scalar_inner_sum: row_sum on scalars
    return rowSum(n, 1, (i) => x[i]!)[0]!;
  }
  const vecSize = Math.floor(n / LANES);
  const lanes = rowSum(vecSize, LANES, (i, l) => x[i * LANES + l]!);
  let acc = 0;
  for (let k = vecSize * LANES; k < n; k++) acc = f32(acc + x[k]!);
  for (let l = 0; l < LANES; l++) acc = f32(acc + lanes[l]!);
  return acc;
}

/**
 * `torch.cumsum(x, 0)` of a float32 vector on CPU: ATen accumulates in `acc_type<float, false>`
 * (double) and stores each running sum rounded to float32 (ReduceOpsKernel.cpp cumsum_cpu_kernel).
 */
export function torchCumsumF32(x: ArrayLike<number>, out: Float32Array): void {
  let acc = 0;
  for (let i = 0; i < x.length; i++) {
    acc += x[i]!;
    out[i] = acc;
  }
}
