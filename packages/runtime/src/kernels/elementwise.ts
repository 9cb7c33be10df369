/**
 * Elementwise reference kernels. Float inputs are read exactly as float64, each result is computed in
 * float64 and rounded once to the output dtype. For + - * / and sqrt that is exactly IEEE float32
 * (and float16/bfloat16) arithmetic, since float64 has more than 2p+2 significand bits; for
 * exp/tanh/erf/... it is the correctly rounded value up to rare ties (ORT's own float32 kernels are
 * within a few ulps of it). Scalar attributes (alpha, beta) are rounded to float32 for float32-or-
 * narrower inputs first, as ORT and PyTorch hold them in float. Integer ops wrap like C (two's
 * complement); integers of 32 bits and more compute on bigint so that products stay exact.
 */
import { QforgeError, clone, getElement, numel, zeros, type AttrValue, type DType } from "@qforge/ir";
import { registerKernel, type KernelContext } from "../kernel.js";
import { erf, erfc, roundHalfEven } from "../util/math.js";
import { broadcastPlan, forEachRow } from "./broadcast.js";
import { floatData, floatOut, floatTensor, type FloatArray } from "./float-data.js";
import {
  broadcastIndex, elementCopier, fromValues, input, isFloatDType, isWideInt, opmathRound, outShape, readBigInts, readNumbers, scalarValue,
} from "../util/tensors.js";

type Attrs = Readonly<Record<string, AttrValue>>;

function badDType(ctx: KernelContext, dtype: DType, what = "the input"): never {
  throw new QforgeError("BAD_DTYPE", `${ctx.op}: ${what} has dtype ${dtype}, which this op does not support`, { node: ctx.node });
}

// ---- unary -----------------------------------------------------------------------------------------

interface UnarySpec {
  /** The float function, built from the attributes; `r` rounds a scalar attribute to the input's compute precision. */
  readonly float: (attrs: Attrs, r: (x: number) => number) => (x: number) => number;
  /** Integer (and bool) inputs below 32 bits; absent: the op is float-only. */
  readonly int?: (x: number) => number;
  /** Integer inputs of 32 bits and more. */
  readonly big?: (x: bigint) => bigint;
}

function unary(op: string, spec: UnarySpec): void {
  registerKernel(op, (inputs, attrs, ctx) => {
    const x = input(inputs, 0, ctx);
    const n = numel(x.shape);
    if (isFloatDType(x.dtype)) {
      const f = spec.float(attrs, opmathRound(x.dtype));
      const v = floatData(x);
      const out = floatOut(x.dtype, x.shape);
      for (let i = 0; i < n; i++) out[i] = f(v[i]!);
      return [floatTensor(x.dtype, x.shape, out)];
    }
    if (isWideInt(x.dtype) && spec.big !== undefined) {
      const f = spec.big;
      return [fromValues(x.dtype, x.shape, readBigInts(x).map((v) => f(v)))];
    }
    if (!isWideInt(x.dtype) && spec.int !== undefined) {
      const f = spec.int;
      return [fromValues(x.dtype, x.shape, Array.from(readNumbers(x), (v) => f(v)))];
    }
    return badDType(ctx, x.dtype);
  });
}

const same = <T>(x: T): T => x;
const num = (a: Attrs, k: string): number => a[k] as number;

unary("identity", { float: () => same, int: same, big: same });
unary("relu", { float: () => (x) => (x < 0 ? 0 : x), int: (x) => (x < 0 ? 0 : x), big: (x) => (x < 0n ? 0n : x) });
unary("neg", { float: () => (x) => -x, int: (x) => -x, big: (x) => -x });
unary("abs", { float: () => Math.abs, int: Math.abs, big: (x) => (x < 0n ? -x : x) });
unary("floor", { float: () => Math.floor, int: same, big: same });
unary("ceil", { float: () => Math.ceil, int: same, big: same });
unary("round", { float: () => roundHalfEven, int: same, big: same });
unary("leaky_relu", {
  float: (a, r) => {
    const alpha = r(num(a, "alpha"));
    return (x) => (x >= 0 ? x : alpha * x);
  },
});
unary("sigmoid", { float: () => (x) => 1 / (1 + Math.exp(-x)) });
unary("tanh", { float: () => Math.tanh });
// ONNX HardSigmoid: max(0, min(1, alpha * x + beta)).
unary("hard_sigmoid", {
  float: (a, r) => {
    const alpha = r(num(a, "alpha"));
    const beta = r(num(a, "beta"));
    return (x) => Math.max(0, Math.min(1, alpha * x + beta));
  },
});
// ONNX HardSwish: x * max(0, min(1, x/6 + 1/2)); torch: x * relu6(x + 3) / 6 (the same function).
unary("hardswish", { float: () => (x) => x * Math.max(0, Math.min(1, x / 6 + 0.5)) });
// torch.nn.functional.gelu: exact x * Phi(x) = x/2 * erfc(-x/sqrt(2)); approximate="tanh":
// x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3))).
unary("gelu", {
  float: (a) => {
    const approx = a["approximate"] as string;
    if (approx === "tanh") {
      const k = Math.sqrt(2 / Math.PI);
      return (x) => 0.5 * x * (1 + Math.tanh(k * (x + 0.044715 * x * x * x)));
    }
    if (approx !== "none") throw new QforgeError("BAD_ATTRIBUTE", `gelu: approximate must be "none" or "tanh", got "${approx}"`);
    return (x) => 0.5 * x * erfc(-x * Math.SQRT1_2);
  },
});
unary("erf", { float: () => erf });
unary("sqrt", { float: () => Math.sqrt });
unary("exp", { float: () => Math.exp });
unary("log", { float: () => Math.log });
unary("reciprocal", { float: () => (x) => 1 / x });
// log(1 + exp(x)) without overflow: x + log1p(exp(-x)) for x > 0.
unary("softplus", { float: () => (x) => (x > 0 ? x + Math.log1p(Math.exp(-x)) : Math.log1p(Math.exp(x))) });

// ---- binary (numpy broadcasting) -------------------------------------------------------------------

interface BinarySpec {
  readonly float: (a: number, b: number) => number;
  readonly int?: (a: number, b: number, ctx: KernelContext) => number;
  readonly big?: (a: bigint, b: bigint, ctx: KernelContext) => bigint;
  /**
   * The float op as a loop over one broadcast row (`a[ia + i*sa] op b[ib + i*sb]`), for the hot
   * arithmetic ops: the same IEEE operation per element as `float`, without a call per element.
   */
  readonly floatRow?: RowLoop;
}

type RowLoop = (va: FloatArray, ia: number, sa: number, vb: FloatArray, ib: number, sb: number, out: FloatArray, o: number, len: number) => void;

function binary(op: string, spec: BinarySpec): void {
  registerKernel(op, (inputs, _attrs, ctx) => {
    const a = input(inputs, 0, ctx);
    const b = input(inputs, 1, ctx);
    const shape = outShape(ctx);
    const dtype = ctx.outputTypes[0]!.dtype;
    const n = numel(shape);
    if (isWideInt(a.dtype)) {
      if (spec.big === undefined) return badDType(ctx, a.dtype);
      const f = spec.big;
      const ia = broadcastIndex(a.shape, shape);
      const ib = broadcastIndex(b.shape, shape);
      const va = readBigInts(a);
      const vb = readBigInts(b);
      return [fromValues(dtype, shape, Array.from({ length: n }, (_, i) => f(va[ia[i]!]!, vb[ib[i]!]!, ctx)))];
    }
    const isFloat = isFloatDType(a.dtype);
    const f = isFloat ? spec.float : spec.int;
    if (f === undefined) return badDType(ctx, a.dtype);
    const va = floatData(a);
    const vb = floatData(b);
    const out = floatOut(dtype, shape);
    const rowLoop = isFloat ? spec.floatRow : undefined;
    forEachRow(broadcastPlan([a.shape, b.shape], shape), (o, off, len, st) => {
      if (rowLoop !== undefined) {
        rowLoop(va, off[0]!, st[0]!, vb, off[1]!, st[1]!, out, o, len);
        return;
      }
      const sa = st[0]!;
      const sb = st[1]!;
      for (let i = 0, ia = off[0]!, ib = off[1]!; i < len; i++, ia += sa, ib += sb) out[o + i] = f(va[ia]!, vb[ib]!, ctx);
    });
    return [floatTensor(dtype, shape, out)];
  });
}

const addRow: RowLoop = (va, ia, sa, vb, ib, sb, out, o, len) => {
  for (let i = 0; i < len; i++, ia += sa, ib += sb) out[o + i] = va[ia]! + vb[ib]!;
};
const subRow: RowLoop = (va, ia, sa, vb, ib, sb, out, o, len) => {
  for (let i = 0; i < len; i++, ia += sa, ib += sb) out[o + i] = va[ia]! - vb[ib]!;
};
const mulRow: RowLoop = (va, ia, sa, vb, ib, sb, out, o, len) => {
  for (let i = 0; i < len; i++, ia += sa, ib += sb) out[o + i] = va[ia]! * vb[ib]!;
};
const divRow: RowLoop = (va, ia, sa, vb, ib, sb, out, o, len) => {
  for (let i = 0; i < len; i++, ia += sa, ib += sb) out[o + i] = va[ia]! / vb[ib]!;
};

function divByZero(ctx: KernelContext): never {
  throw new QforgeError("BAD_DATA", `${ctx.op}: integer division by zero`, { node: ctx.node });
}

const b01 = (c: boolean): number => (c ? 1 : 0);
const big01 = (c: boolean): bigint => (c ? 1n : 0n);

binary("add", { floatRow: addRow, float: (a, b) => a + b, int: (a, b) => a + b, big: (a, b) => a + b });
binary("sub", { floatRow: subRow, float: (a, b) => a - b, int: (a, b) => a - b, big: (a, b) => a - b });
binary("mul", { floatRow: mulRow, float: (a, b) => a * b, int: (a, b) => a * b, big: (a, b) => a * b });
// ONNX Div on integers truncates toward zero (C division); bigint division does the same.
binary("div", {
  floatRow: divRow,
  float: (a, b) => a / b,
  int: (a, b, ctx) => (b === 0 ? divByZero(ctx) : Math.trunc(a / b)),
  big: (a, b, ctx) => (b === 0n ? divByZero(ctx) : a / b),
});
// NaN propagates (numpy.maximum, torch.maximum).
binary("max", { float: (a, b) => (Number.isNaN(a) || Number.isNaN(b) ? NaN : Math.max(a, b)), int: (a, b) => Math.max(a, b), big: (a, b) => (a > b ? a : b) });
binary("min", { float: (a, b) => (Number.isNaN(a) || Number.isNaN(b) ? NaN : Math.min(a, b)), int: (a, b) => Math.min(a, b), big: (a, b) => (a < b ? a : b) });
binary("equal", { float: (a, b) => b01(a === b), int: (a, b) => b01(a === b), big: (a, b) => big01(a === b) });
binary("less", { float: (a, b) => b01(a < b), int: (a, b) => b01(a < b), big: (a, b) => big01(a < b) });
binary("greater", { float: (a, b) => b01(a > b), int: (a, b) => b01(a > b), big: (a, b) => big01(a > b) });

/**
 * ONNX Pow-15: the output has the base's dtype. Float base: Math.pow (float64) rounded once. Integer
 * base with integer exponent: exact integer power, wrapped; a negative exponent truncates 1/x^n
 * toward zero. Integer base with float exponent: pow in float64, then truncated like a C cast.
 */
registerKernel("pow", (inputs, _attrs, ctx) => {
  const x = input(inputs, 0, ctx);
  const y = input(inputs, 1, ctx);
  const shape = outShape(ctx);
  const n = numel(shape);
  if (isFloatDType(x.dtype) || isFloatDType(y.dtype)) {
    const vx = readNumbers(x);
    const vy = readNumbers(y);
    const out = new Float64Array(n);
    forEachRow(broadcastPlan([x.shape, y.shape], shape), (o, off, len, st) => {
      for (let i = 0, ix = off[0]!, iy = off[1]!; i < len; i++, ix += st[0]!, iy += st[1]!) out[o + i] = Math.pow(vx[ix]!, vy[iy]!);
    });
    return [fromValues(x.dtype, shape, out)]; // an integer base truncates on store
  }
  const ix = broadcastIndex(x.shape, shape);
  const iy = broadcastIndex(y.shape, shape);
  const vx = readBigInts(x);
  const vy = readBigInts(y);
  const ipow = (b: bigint, e: bigint): bigint => {
    if (e >= 0n) return b ** e;
    if (b === 1n) return 1n;
    if (b === -1n) return e % 2n === 0n ? 1n : -1n;
    if (b === 0n) throw new QforgeError("BAD_DATA", "pow: 0 to a negative integer power", { node: ctx.node });
    return 0n;
  };
  return [fromValues(x.dtype, shape, Array.from({ length: n }, (_, i) => ipow(vx[ix[i]!]!, vy[iy[i]!]!)))];
});

registerKernel("where", (inputs, _attrs, ctx) => {
  const c = input(inputs, 0, ctx);
  const x = input(inputs, 1, ctx);
  const y = input(inputs, 2, ctx);
  const shape = outShape(ctx);
  const ic = broadcastIndex(c.shape, shape);
  const ix = broadcastIndex(x.shape, shape);
  const iy = broadcastIndex(y.shape, shape);
  const out = zeros(x.dtype, shape);
  const n = numel(shape);
  const fromX = elementCopier(x, out);
  const fromY = elementCopier(y, out);
  for (let i = 0; i < n; i++) {
    if (getElement(c, ic[i]!) !== 0) fromX(ix[i]!, i);
    else fromY(iy[i]!, i);
  }
  return [out];
});

/**
 * ONNX Clip-13: y = min(max(x, min), max) with optional scalar bounds; when min > max every value
 * becomes max (the order of the two steps). NaN inputs stay NaN.
 */
registerKernel("clip", (inputs, _attrs, ctx) => {
  const x = input(inputs, 0, ctx);
  const lo = inputs[1];
  const hi = inputs[2];
  for (const b of [lo, hi]) if (b !== undefined && b.dtype !== x.dtype) badDType(ctx, b.dtype, "a bound");
  if (isWideInt(x.dtype)) {
    const l = lo === undefined ? undefined : readBigInts(lo)[0];
    const h = hi === undefined ? undefined : readBigInts(hi)[0];
    if (lo !== undefined) scalarValue(lo, "min", ctx);
    if (hi !== undefined) scalarValue(hi, "max", ctx);
    return [fromValues(x.dtype, x.shape, readBigInts(x).map((v) => {
      let r = l !== undefined && v < l ? l : v;
      r = h !== undefined && r > h ? h : r;
      return r;
    }))];
  }
  const l = lo === undefined ? -Infinity : scalarValue(lo, "min", ctx);
  const h = hi === undefined ? Infinity : scalarValue(hi, "max", ctx);
  const v = floatData(x);
  const out = floatOut(x.dtype, x.shape);
  for (let i = 0; i < out.length; i++) {
    const r = v[i]! < l ? l : v[i]!;
    out[i] = r > h ? h : r;
  }
  return [floatTensor(x.dtype, x.shape, out)];
});

/**
 * ONNX Dropout-13 in inference: output = input, mask all true. training_mode=true with ratio 0 is the
 * same (nothing is dropped); any other training run needs random masks no one else's RNG would
 * reproduce, so it is refused.
 */
registerKernel("dropout", (inputs, _attrs, ctx) => {
  const x = input(inputs, 0, ctx);
  const ratioT = inputs[1];
  const training = inputs[2] !== undefined && scalarValue(inputs[2], "training_mode", ctx) !== 0;
  const ratio = ratioT === undefined ? 0.5 : scalarValue(ratioT, "ratio", ctx);
  if (training && ratio !== 0) {
    throw new QforgeError("UNSUPPORTED", `dropout in training mode (ratio ${ratio}) needs a random mask; the reference runtime only runs inference`, {
      node: ctx.node, hint: "set training_mode to false (or remove the dropout) before running",
    });
  }
  const out = clone(x);
  const mask = zeros("bool", x.shape);
  (mask.data as Uint8Array).fill(1);
  return [out, mask];
});
