/**
 * Exact integer semantics on the GPU without re-deriving them: every quantized elementwise op of an
 * 8-bit input is a function of the input's 256 codes (one or two inputs), and every quantizer or
 * requantizer is a monotone step function of one number (a float, or an int32 accumulator). So:
 *
 * - lookup tables are made by running the REFERENCE kernel on all codes (op semantics live once);
 * - a monotone function with integer outputs in [lo, hi] is its thresholds: for each level q the
 *   smallest input with f(x) >= q. The shader counts the thresholds <= x (a binary search), adds
 *   lo and clamps to [f(min), f(max)] — bit-exact whatever the GPU's float rounding, because all the
 *   arithmetic happened here, in the reference's own code or formulas.
 */
import { runOp } from "@qforge/runtime";
import { getElement, numel, tensor, toNumbers, type AttrValue, type DType, type Node, type Tensor } from "@qforge/ir";

/** The 256 values of an 8-bit integer dtype in byte order: entry b is the value whose low byte is b. */
export function byteCodes(dtype: DType, shape: readonly number[] = [256]): Tensor {
  if (dtype === "int8") {
    const d = new Int8Array(256);
    for (let b = 0; b < 256; b++) d[b] = b < 128 ? b : b - 256;
    return tensor("int8", shape, d);
  }
  if (dtype === "uint8") {
    const d = new Uint8Array(256);
    for (let b = 0; b < 256; b++) d[b] = b;
    return tensor("uint8", shape, d);
  }
  throw new Error(`byteCodes: ${dtype} is not an 8-bit integer dtype`);
}

/** Runs the node's reference kernel with input 0 replaced. */
export function runWith(node: Node, attrs: Readonly<Record<string, AttrValue>>, inputs: readonly (Tensor | undefined)[]): Tensor {
  return runOp(node.op, inputs, { ...attrs }, { numOutputs: 1, node: node.name })[0]!;
}

/**
 * The node's output for each of the 256 codes of its input `at` (the other inputs are the node's
 * static values): a 256-entry table as u32 words (integer outputs: the output byte; float32 outputs:
 * the bits).
 */
export function unaryTable(node: Node, attrs: Readonly<Record<string, AttrValue>>, inputs: readonly (Tensor | undefined)[], at: number, inDType: DType): Uint32Array {
  const ins = [...inputs];
  ins[at] = byteCodes(inDType);
  return tableWords(runWith(node, attrs, ins));
}

/** A binary op's outputs over all code pairs: entry a * 256 + b (byte values). */
export function binaryTable(node: Node, attrs: Readonly<Record<string, AttrValue>>, inputs: readonly (Tensor | undefined)[], atA: number, atB: number, aType: DType, bType: DType): Uint32Array {
  const ins = [...inputs];
  ins[atA] = byteCodes(aType, [256, 1]);
  ins[atB] = byteCodes(bType, [1, 256]);
  return tableWords(runWith(node, attrs, ins));
}

/** Table entries as words: float32 bits, or integer outputs' low byte. */
function tableWords(t: Tensor): Uint32Array {
  const n = numel(t.shape);
  if (t.data instanceof Float32Array) return new Uint32Array(t.data.buffer.slice(t.data.byteOffset, t.data.byteOffset + 4 * n));
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) out[i] = getElement(t, i) & 0xff;
  return out;
}

/** Threshold table of a monotone function, ready for the shader's search (see wgsl/common.ts thresholdSearch). */
export interface Thresholds {
  /** `size` thresholds as 32-bit words (f32 bits or i32), padded with the domain maximum. */
  readonly words: Uint32Array;
  /** Power of two, >= the number of levels. */
  readonly size: number;
  readonly lo: number;
  /** f(domain minimum) and f(domain maximum): the result is clamped to them. */
  readonly fmin: number;
  readonly fmax: number;
}

function pow2AtLeast(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

const F32 = new Float32Array(1);
const U32 = new Uint32Array(F32.buffer);
const I32 = new Int32Array(F32.buffer);

/** The float32 at an order key: keys -0x7f800000..0x7f800000 run from -inf to +inf (-0 and +0 share key 0). */
function floatOfKey(k: number): number {
  I32[0] = k >= 0 ? k : (-k | 0x80000000);
  return F32[0]!;
}

const KEY_MIN = -0x7f800000;
const KEY_MAX = 0x7f800000;

/** A float threshold table may end in a drop: from `at` on, the result is `code` (see floatThresholds). */
export interface FloatThresholds extends Thresholds {
  readonly drop?: { readonly at: number; readonly code: number };
}

/**
 * Thresholds of a map from float32 to integers in [lo, hi] that is monotone non-decreasing up to
 * a possible drop near the top of the float range: PyTorch's quantizer converts rint(x / s) + zp to
 * int64 before clamping, and on x86 values past 2^63 (and +inf) become INT64_MIN, i.e. quant_min.
 * The drop is found and kept apart; below it all levels bisect the float32 order together, in
 * batches (`evaluate` gets float32 inputs and returns integer outputs), 32 rounds of one call each.
 */
export function floatThresholds(evaluate: (xs: Float32Array) => ArrayLike<number>, lo: number, hi: number): FloatThresholds {
  const levels = hi - lo;
  const size = pow2AtLeast(Math.max(1, levels));
  // The peak over a sweep of the float order, then where it is first reached and where it ends.
  const sweep = new Float32Array(257);
  for (let i = 0; i <= 256; i++) sweep[i] = floatOfKey(Math.round(KEY_MIN + ((KEY_MAX - KEY_MIN) * i) / 256));
  const sv = evaluate(sweep);
  let peak = -Infinity;
  let peakAt = 0;
  for (let i = 0; i <= 256; i++) {
    if (sv[i]! > peak) {
      peak = sv[i]!;
      peakAt = i;
    }
  }
  let top = KEY_MAX;
  let drop: { at: number; code: number } | undefined;
  const atMax = sv[256]!;
  if (atMax < peak) {
    // Smallest key past the peak's sample whose value falls below the peak.
    let a = Math.round(KEY_MIN + ((KEY_MAX - KEY_MIN) * peakAt) / 256);
    let b = KEY_MAX;
    while (b - a > 1) {
      const m = Math.floor((a + b) / 2);
      if (evaluate(Float32Array.from([floatOfKey(m)]))[0]! < peak) b = m;
      else a = m;
    }
    top = a;
    drop = { at: floatOfKey(b), code: atMax };
  }
  const fmin = sv[0]!;
  const fmax = peak;
  // Per level q = lo + 1 + j: the smallest key with f >= q lies in (low, high].
  const low = new Float64Array(levels).fill(KEY_MIN - 1);
  const high = new Float64Array(levels).fill(top);
  const never = new Uint8Array(levels);
  for (let j = 0; j < levels; j++) {
    const q = lo + 1 + j;
    if (fmax < q) never[j] = 1;
    else if (fmin >= q) high[j] = KEY_MIN;
  }
  for (let round = 0; round < 34; round++) {
    const mids = new Float32Array(levels);
    let open = false;
    for (let j = 0; j < levels; j++) {
      const m = Math.floor((low[j]! + high[j]!) / 2);
      mids[j] = floatOfKey(Math.max(KEY_MIN, m));
      if (high[j]! - low[j]! > 1 && never[j] === 0) open = true;
    }
    if (!open) break;
    const ys = evaluate(mids);
    for (let j = 0; j < levels; j++) {
      if (never[j] === 1 || high[j]! - low[j]! <= 1) continue;
      const m = Math.floor((low[j]! + high[j]!) / 2);
      if (ys[j]! >= lo + 1 + j) high[j] = m;
      else low[j] = m;
    }
  }
  const words = new Uint32Array(size);
  for (let j = 0; j < size; j++) {
    F32[0] = j < levels && never[j] === 0 ? floatOfKey(high[j]!) : Infinity;
    words[j] = U32[0]!;
  }
  return { words, size, lo, fmin, fmax, ...(drop === undefined ? {} : { drop }) };
}

const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;

/**
 * Thresholds of a monotone non-decreasing map from int32 to integers in [lo, hi] (requantization of
 * an accumulator): bisection per level over the int32 range.
 */
export function intThresholds(f: (t: number) => number, lo: number, hi: number): Thresholds {
  const levels = hi - lo;
  const size = pow2AtLeast(Math.max(1, levels));
  const fmin = f(INT32_MIN);
  const fmax = f(INT32_MAX);
  const words = new Uint32Array(size).fill(INT32_MAX >>> 0);
  let prev = INT32_MIN;
  for (let j = 0; j < levels; j++) {
    const q = lo + 1 + j;
    if (fmax < q) break;
    if (fmin >= q) {
      words[j] = INT32_MIN >>> 0;
      continue;
    }
    // Thresholds grow with the level: search (prev - 1, INT32_MAX].
    let a = prev - 1;
    let b = INT32_MAX;
    while (b - a > 1) {
      const m = Math.floor((a + b) / 2);
      if (f(m) >= q) b = m;
      else a = m;
    }
    words[j] = b >>> 0;
    prev = b;
  }
  return { words, size, lo, fmin, fmax };
}

/** Values of a small static tensor as numbers. */
export function values(t: Tensor | undefined): number[] {
  return t === undefined ? [] : toNumbers(t);
}
