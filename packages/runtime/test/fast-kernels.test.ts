/**
 * The reorganized reference kernels (direct conv loops, row-wise matmul, strided broadcasting,
 * integer cores) against naive oracles written as the formulas read: float results must be
 * bit-identical (same products summed in the same order in float64, rounded once), integer results
 * exact. The float cases run on float64 tensors with full mantissas, where no final rounding hides a
 * changed summation order (float32 outputs are the same sums rounded once more).
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { numel, tensor, type Tensor } from "@qforge/ir";
import { runOp } from "@qforge/runtime";

/** Deterministic pseudo-random float64 values in (-2, 2) with full mantissas. */
function randomF32(shape: readonly number[], seed: number): Tensor {
  let s = seed >>> 0 || 1;
  const n = numel(shape);
  const data = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    data[i] = ((s / 2 ** 32) * 4 - 2) * (1 + (i % 7) * Math.PI * 1e-3);
  }
  return tensor("float64", [...shape], data);
}

function randomInts(dtype: "int8" | "uint8", shape: readonly number[], seed: number): Tensor {
  let s = seed >>> 0 || 1;
  const n = numel(shape);
  const data = dtype === "int8" ? new Int8Array(n) : new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 22695477) + 1) >>> 0;
    data[i] = dtype === "int8" ? (s >>> 24) - 128 : s >>> 24;
  }
  return tensor(dtype, [...shape], data);
}

function sameBits(got: Tensor, want: Float64Array): void {
  expect(got.dtype).toBe("float64");
  const g = got.data as Float64Array;
  expect(g.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    if (!Object.is(g[i], want[i])) expect.fail(`element ${i}: got ${g[i]}, oracle ${want[i]}`);
  }
}

/** ONNX Conv on 1-D/2-D NC... float64 tensors: bias first, then channels, then taps in row-major order. */
function convOracle(x: Tensor, w: Tensor, b: Tensor | undefined, a: { strides: number[]; pads: number[]; dilations: number[]; group: number }): { shape: number[]; data: Float64Array } {
  const nd = x.shape.length - 2;
  const [batch, cin] = [x.shape[0]!, x.shape[1]!];
  const m = w.shape[0]!;
  const cg = cin / a.group;
  const mg = m / a.group;
  const inSp = x.shape.slice(2);
  const kSp = w.shape.slice(2);
  const outSp = inSp.map((d, i) => Math.floor((d + a.pads[i]! + a.pads[nd + i]! - ((kSp[i]! - 1) * a.dilations[i]! + 1)) / a.strides[i]!) + 1);
  const inSize = numel(inSp);
  const outSize = numel(outSp);
  const kSize = numel(kSp);
  const vx = x.data as Float64Array;
  const vw = w.data as Float64Array;
  const out = new Float64Array(batch * m * outSize);
  for (let n = 0; n < batch; n++) {
    for (let oc = 0; oc < m; oc++) {
      const g = Math.floor(oc / mg);
      for (let o = 0; o < outSize; o++) {
        const oIdx = nd === 1 ? [o] : [Math.floor(o / outSp[1]!), o % outSp[1]!];
        let s = b === undefined ? 0 : (b.data as Float64Array)[oc]!;
        for (let ci = 0; ci < cg; ci++) {
          for (let kf = 0; kf < kSize; kf++) {
            const kIdx = nd === 1 ? [kf] : [Math.floor(kf / kSp[1]!), kf % kSp[1]!];
            let flat = 0;
            let inside = true;
            for (let d = 0; d < nd; d++) {
              const p = oIdx[d]! * a.strides[d]! - a.pads[d]! + kIdx[d]! * a.dilations[d]!;
              if (p < 0 || p >= inSp[d]!) inside = false;
              flat = flat * inSp[d]! + p;
            }
            if (!inside) continue;
            s += vx[(n * cin + g * cg + ci) * inSize + flat]! * vw[(oc * cg + ci) * kSize + kf]!;
          }
        }
        out[(n * m + oc) * outSize + o] = s;
      }
    }
  }
  return { shape: [batch, m, ...outSp], data: out };
}

const convCase = fc.record({
  nd: fc.constantFrom(1, 2),
  batch: fc.integer({ min: 1, max: 2 }),
  group: fc.constantFrom(1, 2, 3),
  cgIn: fc.integer({ min: 1, max: 6 }),
  mgOut: fc.integer({ min: 1, max: 6 }),
  size: fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 2, maxLength: 2 }),
  kernel: fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 2, maxLength: 2 }),
  stride: fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 2, maxLength: 2 }),
  dilation: fc.array(fc.integer({ min: 1, max: 2 }), { minLength: 2, maxLength: 2 }),
  pads: fc.array(fc.integer({ min: 0, max: 2 }), { minLength: 4, maxLength: 4 }),
  bias: fc.boolean(),
  seed: fc.integer(),
});

describe("fast float kernels are bit-identical to the naive formulas", () => {
  it("conv (1-D, 2-D, grouped, depthwise, pointwise, strided, dilated, padded)", () => {
    fc.assert(fc.property(convCase, (c) => {
      const nd = c.nd;
      const kSp = c.kernel.slice(0, nd);
      const inSp = c.size.slice(0, nd).map((d, i) => d + (kSp[i]! - 1) * c.dilation[i]!);
      const cin = c.cgIn * c.group;
      const m = c.mgOut * c.group;
      const x = randomF32([c.batch, cin, ...inSp], c.seed);
      const w = randomF32([m, c.cgIn, ...kSp], c.seed + 1);
      const b = c.bias ? randomF32([m], c.seed + 2) : undefined;
      const pads = nd === 1 ? [c.pads[0]!, c.pads[1]!] : c.pads;
      const attrs = { strides: c.stride.slice(0, nd), pads, dilations: c.dilation.slice(0, nd), group: c.group, kernel_shape: kSp };
      const want = convOracle(x, w, b, attrs);
      const [got] = runOp("conv", b === undefined ? [x, w] : [x, w, b], attrs);
      expect(got!.shape).toEqual(want.shape);
      sameBits(got!, want.data);
    }), { numRuns: 150 });
  });

  it("conv with 1x1 kernels over many channels (the channels-last pointwise path)", () => {
    for (const [cin, m, hw] of [[17, 9, 7], [32, 5, 1], [4, 4, 13]] as const) {
      const x = randomF32([2, cin, hw, 3], cin);
      const w = randomF32([m, cin, 1, 1], m);
      const b = randomF32([m], 7);
      const attrs = { strides: [1, 1], pads: [0, 0, 0, 0], dilations: [1, 1], group: 1 };
      sameBits(runOp("conv", [x, w, b], attrs)[0]!, convOracle(x, w, b, attrs).data);
    }
  });

  it("float32 conv and matmul are the float64 sums rounded once", () => {
    const x = randomF32([1, 12, 5, 6], 11);
    const w = randomF32([7, 12, 3, 3], 12);
    const attrs = { strides: [1, 1], pads: [1, 1, 1, 1], dilations: [1, 1], group: 1 };
    const to32 = (t: Tensor): Tensor => tensor("float32", t.shape, Float32Array.from(t.data as Float64Array));
    // Float32 operands are exact doubles: the oracle on the same (rounded) values, rounded once.
    const x32 = to32(x);
    const w32 = to32(w);
    const want = convOracle(tensor("float64", x.shape, Float64Array.from(x32.data as Float32Array)), tensor("float64", w.shape, Float64Array.from(w32.data as Float32Array)), undefined, attrs);
    const [got] = runOp("conv", [x32, w32], attrs);
    expect(got!.dtype).toBe("float32");
    expect(Array.from(got!.data as Float32Array)).toEqual(Array.from(Float32Array.from(want.data)));
    const a32 = to32(randomF32([3, 40], 5));
    const b32 = to32(randomF32([40, 6], 6));
    const [mm] = runOp("matmul", [a32, b32]);
    const va = a32.data as Float32Array;
    const vb = b32.data as Float32Array;
    const wantMm = Float32Array.from({ length: 18 }, (_, f) => {
      let s = 0;
      for (let p = 0; p < 40; p++) s += va[Math.floor(f / 6) * 40 + p]! * vb[p * 6 + (f % 6)]!;
      return s;
    });
    expect(Array.from(mm!.data as Float32Array)).toEqual(Array.from(wantMm));
  });

  it("matmul with broadcast batch dims and 1-D operands", () => {
    const shapes = fc.record({
      m: fc.integer({ min: 1, max: 5 }), k: fc.integer({ min: 1, max: 11 }), n: fc.integer({ min: 1, max: 6 }),
      batchA: fc.constantFrom([], [2], [1], [3, 2], [1, 2]), batchB: fc.constantFrom([], [2], [1], [3, 1]),
      aVec: fc.boolean(), bVec: fc.boolean(), seed: fc.integer(),
    });
    fc.assert(fc.property(shapes, (s) => {
      const aShape = s.aVec ? [s.k] : [...s.batchA, s.m, s.k];
      const bShape = s.bVec ? [s.k] : [...s.batchB, s.k, s.n];
      const a = randomF32(aShape, s.seed);
      const b = randomF32(bShape, s.seed + 3);
      const [got] = runOp("matmul", [a, b]);
      // Oracle: numpy.matmul by definition (batch broadcast; 1-D operands promoted then squeezed).
      const a2 = s.aVec ? [1, s.k] : aShape;
      const b2 = s.bVec ? [s.k, 1] : bShape;
      const m = a2[a2.length - 2]!;
      const n = b2[b2.length - 1]!;
      const ba = a2.slice(0, -2);
      const bb = b2.slice(0, -2);
      const rank = Math.max(ba.length, bb.length);
      const batch = Array.from({ length: rank }, (_, i) => Math.max(ba[i - rank + ba.length] ?? 1, bb[i - rank + bb.length] ?? 1));
      const offset = (dims: number[], t: number): number => {
        let off = 0;
        let stride = 1;
        const idx: number[] = [];
        let rem = t;
        for (let i = rank - 1; i >= 0; i--) { idx[i] = rem % batch[i]!; rem = Math.floor(rem / batch[i]!); }
        for (let i = dims.length - 1; i >= 0; i--) { off += (dims[i] === 1 ? 0 : idx[i + rank - dims.length]!) * stride; stride *= dims[i]!; }
        return off;
      };
      const va = a.data as Float64Array;
      const vb = b.data as Float64Array;
      const want = new Float64Array(numel(batch) * m * n);
      for (let t = 0; t < numel(batch); t++) {
        for (let i = 0; i < m; i++) {
          for (let j = 0; j < n; j++) {
            let acc = 0;
            for (let p = 0; p < s.k; p++) acc += va[offset(ba, t) * m * s.k + i * s.k + p]! * vb[offset(bb, t) * s.k * n + p * n + j]!;
            want[(t * m + i) * n + j] = acc;
          }
        }
      }
      sameBits(got!, want);
    }), { numRuns: 120 });
  });

  it("gemm with transposes, alpha/beta and a broadcast C", () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 9 }), fc.integer({ min: 1, max: 5 }),
      fc.boolean(), fc.boolean(), fc.constantFrom("none", "row", "full"), fc.integer(), (m, k, n, transA, transB, cKind, seed) => {
        const a = randomF32(transA ? [k, m] : [m, k], seed);
        const b = randomF32(transB ? [n, k] : [k, n], seed + 1);
        const c = cKind === "none" ? undefined : randomF32(cKind === "row" ? [n] : [m, n], seed + 2);
        const alpha = 0.7;
        const beta = 1.3;
        const [got] = runOp("gemm", c === undefined ? [a, b] : [a, b, c], { transA: transA ? 1 : 0, transB: transB ? 1 : 0, alpha, beta });
        const va = a.data as Float64Array;
        const vb = b.data as Float64Array;
        const want = new Float64Array(m * n);
        for (let i = 0; i < m; i++) {
          for (let j = 0; j < n; j++) {
            let s = 0;
            for (let p = 0; p < k; p++) s += (transA ? va[p * m + i]! : va[i * k + p]!) * (transB ? vb[j * k + p]! : vb[p * n + j]!);
            const cv = c === undefined ? 0 : beta * (c.data as Float64Array)[cKind === "row" ? j : i * n + j]!;
            want[i * n + j] = alpha * s + cv;
          }
        }
        sameBits(got!, want);
      }), { numRuns: 80 });
  });

  it("add/sub/mul/div/pow broadcast like numpy", () => {
    const pair = fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 0, maxLength: 4 }).chain((out) =>
      fc.tuple(fc.constant(out), fc.array(fc.boolean(), { minLength: out.length, maxLength: out.length }), fc.integer({ min: 0, max: out.length }),
        fc.array(fc.boolean(), { minLength: out.length, maxLength: out.length }), fc.integer({ min: 0, max: out.length }), fc.integer()));
    fc.assert(fc.property(pair, fc.constantFrom("add", "sub", "mul", "div", "pow"), ([out, onesA, dropA, onesB, dropB, seed], op) => {
      const aShape = out.map((d, i) => (onesA[i] ? 1 : d)).slice(dropA);
      const bShape = out.map((d, i) => (onesB[i] ? 1 : d)).slice(dropB);
      const a = randomF32(aShape, seed);
      const b = op === "pow" ? tensor("float64", bShape, Float64Array.from({ length: numel(bShape) }, (_, i) => (i % 3) + 0.5)) : randomF32(bShape, seed + 9);
      const [got] = runOp(op, [a, b]);
      const outShape = got!.shape;
      const idx = (shape: readonly number[], flat: number): number => {
        let off = 0;
        let stride = 1;
        let rem = flat;
        const coords: number[] = [];
        for (let d = outShape.length - 1; d >= 0; d--) { coords[d] = rem % outShape[d]!; rem = Math.floor(rem / outShape[d]!); }
        for (let d = shape.length - 1; d >= 0; d--) {
          const c = shape[d] === 1 ? 0 : coords[d + outShape.length - shape.length]!;
          off += c * stride;
          stride *= shape[d]!;
        }
        return off;
      };
      const f = { add: (x: number, y: number) => x + y, sub: (x: number, y: number) => x - y, mul: (x: number, y: number) => x * y, div: (x: number, y: number) => x / y, pow: Math.pow }[op];
      const want = Float64Array.from({ length: numel(outShape) }, (_, i) => f((a.data as Float64Array)[idx(aShape, i)]!, (b.data as Float64Array)[idx(bShape, i)]!));
      sameBits(got!, want);
    }), { numRuns: 200 });
  });
});

describe("fast integer kernels are exact", () => {
  it("conv_integer (1-D, 2-D, grouped, padded, per-channel zero points) equals the naive integer sum", () => {
    fc.assert(fc.property(convCase, fc.constantFrom<"int8" | "uint8">("int8", "uint8"), (c, dtype) => {
      const nd = c.nd;
      const kSp = c.kernel.slice(0, nd);
      const inSp = c.size.slice(0, nd).map((d, i) => d + (kSp[i]! - 1) * c.dilation[i]!);
      const cin = c.cgIn * c.group;
      const m = c.mgOut * c.group;
      const x = randomInts(dtype, [c.batch, cin, ...inSp], c.seed);
      const w = randomInts(dtype, [m, c.cgIn, ...kSp], c.seed + 1);
      const xZp = tensor(dtype, [], dtype === "int8" ? new Int8Array([3]) : new Uint8Array([128]));
      const wZpData = Array.from({ length: m }, (_, i) => (i % 3) - 1);
      const wZp = dtype === "int8" ? tensor("int8", [m], Int8Array.from(wZpData)) : tensor("uint8", [m], Uint8Array.from(wZpData, (v) => v + 1));
      const pads = nd === 1 ? [c.pads[0]!, c.pads[1]!] : c.pads;
      const attrs = { strides: c.stride.slice(0, nd), pads, dilations: c.dilation.slice(0, nd), group: c.group };
      const [got] = runOp("conv_integer", [x, w, xZp, wZp], attrs);
      // The integer oracle: the float oracle on centered values is exact (small integers).
      const xc = tensor("float64", x.shape, Float64Array.from(x.data as Int8Array, (v) => v - (xZp.data as Int8Array)[0]!));
      const wz = wZp.data as Int8Array;
      const per = c.cgIn * numel(kSp);
      const wc = tensor("float64", w.shape, Float64Array.from(w.data as Int8Array, (v, i) => v - wz[Math.floor(i / per)]!));
      const want = convOracle(xc, wc, undefined, attrs);
      expect(got!.shape).toEqual(want.shape);
      expect(Array.from(got!.data as Int32Array)).toEqual(Array.from(want.data));
    }), { numRuns: 100 });
  });

  it("matmul_integer with per-row and per-column zero points equals the naive integer sum", () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 7 }), fc.integer(), (m, k, n, seed) => {
      const a = randomInts("uint8", [2, m, k], seed);
      const b = randomInts("int8", [k, n], seed + 1);
      const aZp = tensor("uint8", [m], Uint8Array.from({ length: m }, (_, i) => 120 + i));
      const bZp = tensor("int8", [n], Int8Array.from({ length: n }, (_, j) => (j % 5) - 2));
      const [got] = runOp("matmul_integer", [a, b, aZp, bZp]);
      const va = a.data as Uint8Array;
      const vb = b.data as Int8Array;
      const want: number[] = [];
      for (let t = 0; t < 2; t++) {
        for (let i = 0; i < m; i++) {
          for (let j = 0; j < n; j++) {
            let s = 0;
            for (let p = 0; p < k; p++) s += (va[(t * m + i) * k + p]! - (120 + i)) * (vb[p * n + j]! - ((j % 5) - 2));
            want.push(s);
          }
        }
      }
      expect(Array.from(got!.data as Int32Array)).toEqual(want);
    }), { numRuns: 100 });
  });
});
