/**
 * The QDQ ops of PT2E's converted graph (schemas: @qforge/ir ops/pt2e.ts, kernels: @qforge/runtime
 * src/pt2e): hand-computed values, the golden README rules, and agreement with @qforge/quant's
 * primitives.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  fromArray, getElement, GraphBuilder, inferNode, isQforgeError, tensor, toNumbers,
  type Tensor,
} from "@qforge/ir";
import {
  createObserver, dequantizePerChannel, dequantizePerTensor, quantizePerChannel, quantizeValue,
} from "@qforge/quant";
import { runGraph, runOp } from "@qforge/runtime";

const f32 = (shape: number[], v: number[]): Tensor => fromArray("float32", shape, v);
const scale0d = (s: number): Tensor => tensor("float32", [], Float32Array.of(s));
const zp0d = (z: number): Tensor => tensor("int32", [], Int32Array.of(z));
const q8 = { quant_min: -128, quant_max: 127, dtype: "int8" };

function quant(x: Tensor, s: number, z: number, attrs: Record<string, number | string> = q8): Tensor {
  return runOp("quantize_per_tensor", [x, scale0d(s), zp0d(z)], attrs)[0]!;
}

describe("quantize_per_tensor / dequantize_per_tensor", () => {
  it("matches hand-computed values: x * f32(1/scale), half-to-even, zero point added after rounding, clamp", () => {
    // 0.5 * f32(1/0.1) = 5.0000001 -> 5 (+3); -1.25 * 10 = -12.5 -> -12 (tie to even) (+3);
    // 1000 clamps to 127; 0.25 * 10 = 2.5 -> 2 (+3); -100 clamps to -128.
    const q = quant(f32([5], [0.5, -1.25, 100, 0.25, -100]), 0.1, 3);
    expect(q.dtype).toBe("int8");
    expect(Array.from(q.data as Int8Array)).toEqual([8, -9, 127, 5, -128]);
    const y = runOp("dequantize_per_tensor", [q, scale0d(0.1), zp0d(3)], q8)[0]!;
    expect(y.dtype).toBe("float32");
    // f32(f32(q - zp) * f32(0.1))
    expect(Array.from(y.data as Float32Array)).toEqual([5, -12, 124, 2, -131].map((v) => Math.fround(v * Math.fround(0.1))));
  });

  it("clamps to quant_min/quant_max inside the dtype (symmetric -127..127 weights, uint8 0..15)", () => {
    expect(toNumbers(quant(f32([3], [-200, 0, 200]), 1, 0, { quant_min: -127, quant_max: 127, dtype: "int8" }))).toEqual([-127, 0, 127]);
    const u = quant(f32([3], [-3, 7.5, 40]), 1, 2, { quant_min: 0, quant_max: 15, dtype: "uint8" });
    expect(u.dtype).toBe("uint8");
    expect(toNumbers(u)).toEqual([0, 10, 15]);
  });

  it("produces sub-byte dtypes (int4 packed) and int32", () => {
    const q4 = quant(f32([4], [-100, 0.5, 1.5, 100]), 1, 0, { quant_min: -8, quant_max: 7, dtype: "int4" });
    expect(q4.dtype).toBe("int4");
    expect(toNumbers(q4)).toEqual([-8, 0, 2, 7]);
    expect(toNumbers(runOp("dequantize_per_tensor", [q4, scale0d(0.5), zp0d(1)], { quant_min: -8, quant_max: 7, dtype: "int4" })[0]!)).toEqual([-4.5, -0.5, 0.5, 3]);
    const q32 = quant(f32([2], [1e6, -3.5]), 0.001, 0, { quant_min: -(2 ** 31), quant_max: 2 ** 31 - 1, dtype: "int32" });
    // f32(1e6 * f32(1 / f32(0.001))) is 999999936 (the product rounds to float32 before rint).
    expect(toNumbers(q32)).toEqual([Math.fround(1e6 * Math.fround(1 / Math.fround(0.001))), -3500]);
    expect(toNumbers(q32)[0]).toBe(999999936);
  });

  it("agrees with quant's quantizeValue / dequantizePerTensor for any input and range (property)", () => {
    fc.assert(fc.property(
      fc.array(fc.float({ noNaN: true, min: -1e4, max: 1e4 }), { minLength: 1, maxLength: 40 }),
      fc.float({ min: Math.fround(1e-4), max: 10, noNaN: true }),
      fc.integer({ min: -20, max: 20 }),
      fc.integer({ min: -128, max: 0 }),
      fc.integer({ min: 0, max: 127 }),
      (xs, s, z, qmin, qmax) => {
        const x = f32([xs.length], xs);
        const q = quant(x, s, z, { quant_min: qmin, quant_max: qmax, dtype: "int8" });
        const want = xs.map((v) => quantizeValue(v, s, z, qmin, qmax));
        expect(toNumbers(q)).toEqual(want);
        const y = runOp("dequantize_per_tensor", [q, scale0d(s), zp0d(z)], { quant_min: qmin, quant_max: qmax, dtype: "int8" })[0]!;
        expect(toNumbers(y)).toEqual(toNumbers(dequantizePerTensor(q, s, z)));
      },
    ), { numRuns: 200 });
  });

  it("refuses malformed nodes at inference: per-tensor qparams with several elements, dtype/range, input dtype", () => {
    const x = { dtype: "float32" as const, shape: [2, 3] };
    const s1 = { dtype: "float32" as const, shape: [] };
    const z1 = { dtype: "int32" as const, shape: [] };
    expect(() => inferNode("quantize_per_tensor", "q", [x, { dtype: "float32", shape: [3] }, z1], q8, 1)).toThrow(/one element/);
    expect(() => inferNode("quantize_per_tensor", "q", [x, s1, z1], { ...q8, dtype: "float32" }, 1)).toThrow(/BAD_ATTRIBUTE/);
    expect(() => inferNode("quantize_per_tensor", "q", [x, s1, z1], { ...q8, quant_min: -200 }, 1)).toThrow(/inside int8/);
    expect(() => inferNode("quantize_per_tensor", "q", [x, s1, z1], { quant_min: -128, quant_max: 127 }, 1)).toThrow(/needs attribute 'dtype'/);
    expect(() => inferNode("dequantize_per_tensor", "dq", [{ dtype: "uint8", shape: [2] }, s1, z1], q8, 1)).toThrow(/DTYPE_MISMATCH/);
    expect(inferNode("quantize_per_tensor", "q", [{ dtype: "float32", shape: ["N", 3] }, s1, z1], q8, 1)[0]).toEqual({ dtype: "int8", shape: ["N", 3] });
  });

  it("a non-positive scale is a typed error naming the node", () => {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [2]);
    const s = b.constant("s", scale0d(0));
    const z = b.constant("z", zp0d(0));
    b.output(b.node1("quantize_per_tensor", [x, s, z], q8, { name: "bad_q" }));
    try {
      runGraph(b.build(), [f32([2], [1, 2])]);
      expect.unreachable();
    } catch (e) {
      expect(isQforgeError(e, "BAD_CONFIG")).toBe(true);
      expect((e as Error).message).toContain("bad_q");
    }
  });
});

describe("quantize_per_channel / dequantize_per_channel", () => {
  it("matches hand-computed values along axis 1", () => {
    // x [2, 2, 2]; channel 0 scale 0.5 zp 0, channel 1 scale 0.25 zp 1.
    const x = f32([2, 2, 2], [1, -1.25, 2, 0.3, 0.75, 3, -0.2, 100]);
    const scales = fromArray("float64", [2], [0.5, 0.25]);
    const zps = fromArray("int32", [2], [0, 1]);
    const attrs = { axis: 1, ...q8 };
    const q = runOp("quantize_per_channel", [x, scales, zps], attrs)[0]!;
    // ch0: 1/0.5=2, -1.25/0.5=-2.5->-2, 0.75/0.5=1.5->2, 3/0.5=6; ch1: 2*4=8+1, 0.3*4=1.2->1+1, -0.2*4=-0.8->-1+1, 400->127
    expect(toNumbers(q)).toEqual([2, -2, 9, 2, 2, 6, 0, 127]);
    const y = runOp("dequantize_per_channel", [q, scales, zps], attrs)[0]!;
    expect(toNumbers(y)).toEqual([1, -1, 2, 0.25, 1, 3, -0.25, 31.5]);
  });

  it("agrees with quant's quantizePerChannel / dequantizePerChannel (property, any axis)", () => {
    fc.assert(fc.property(
      fc.integer({ min: 0, max: 2 }),
      fc.array(fc.float({ noNaN: true, min: -50, max: 50 }), { minLength: 24, maxLength: 24 }),
      fc.array(fc.float({ min: Math.fround(0.01), max: 4, noNaN: true }), { minLength: 4, maxLength: 4 }),
      fc.array(fc.integer({ min: -10, max: 10 }), { minLength: 4, maxLength: 4 }),
      (axis, xs, ss, zs) => {
        const shape = [2, 3, 4];
        const c = shape[axis]!;
        const x = f32(shape, xs);
        const scales = fromArray("float64", [c], ss.slice(0, c));
        const zps = fromArray("int32", [c], zs.slice(0, c));
        const q = runOp("quantize_per_channel", [x, scales, zps], { axis, ...q8 })[0]!;
        expect(toNumbers(q)).toEqual(toNumbers(quantizePerChannel(x, scales, zps, axis, "int8")));
        const y = runOp("dequantize_per_channel", [q, scales, zps], { axis, ...q8 })[0]!;
        expect(toNumbers(y)).toEqual(toNumbers(dequantizePerChannel(q, scales, zps, axis)));
      },
    ), { numRuns: 100 });
  });

  it("accepts float32 zero points (per_channel_affine_float_qparams): added after rounding, then truncated", () => {
    const x = f32([2, 2], [1, 2, 3, 4]);
    const scales = fromArray("float64", [2], [0.5, 1]);
    const zps = fromArray("float32", [2], [0.7, 10.25]);
    const attrs = { axis: 0, quant_min: 0, quant_max: 255, dtype: "uint8" };
    const q = runOp("quantize_per_channel", [x, scales, zps], attrs)[0]!;
    // row 0: 2 + 0.7 = 2.7 -> 2, 4 + 0.7 -> 4; row 1: 3 + 10.25 -> 13, 4 + 10.25 -> 14
    expect(toNumbers(q)).toEqual([2, 4, 13, 14]);
    const y = runOp("dequantize_per_channel", [q, scales, zps], attrs)[0]!;
    expect(toNumbers(y)).toEqual([2 - 0.7, 4 - 0.7, 13 - 10.25, 14 - 10.25].map((v, i) => Math.fround(v * (i < 2 ? 0.5 : 1))));
  });

  it("refuses scales that do not match the channel count", () => {
    expect(() => inferNode("quantize_per_channel", "q", [
      { dtype: "float32", shape: [4, 3] }, { dtype: "float64", shape: [3] }, { dtype: "int32", shape: [3] },
    ], { axis: 0, ...q8 }, 1)).toThrow(/4 entries/);
  });
});

describe("choose_qparams_per_tensor", () => {
  const attrs = { quant_min: -128, quant_max: 127, eps: 1.1920928955078125e-7, dtype: "int8" };

  it("gives the observer formula's qparams over the input's min/max (hand-computed)", () => {
    const [s, z] = runOp("choose_qparams_per_tensor", [f32([3], [-1, 0.5, 2])], attrs, { numOutputs: 2 });
    expect(s!.shape).toEqual([]);
    expect(s!.dtype).toBe("float32");
    expect(z!.dtype).toBe("int32");
    const scale = Math.fround(3 / 255);
    expect(getElement(s!, 0)).toBe(scale);
    // zp = -128 - rint(f32(-1 / scale)) = -128 + 85
    expect(getElement(z!, 0)).toBe(-128 - Math.round(Math.fround(-1 / scale)));
    expect(getElement(z!, 0)).toBe(-43);
  });

  it("equals a MinMaxObserver fed the same tensor (property)", () => {
    fc.assert(fc.property(
      fc.array(fc.float({ noNaN: true, noDefaultInfinity: true, min: -1e3, max: 1e3 }), { minLength: 1, maxLength: 30 }),
      (xs) => {
        const x = f32([xs.length], xs);
        const [s, z] = runOp("choose_qparams_per_tensor", [x], attrs, { numOutputs: 2 });
        const o = createObserver("MinMaxObserver", { dtype: "qint8" });
        o.observe(x);
        const want = o.calculateQParams();
        expect(getElement(s!, 0)).toBe(getElement(want.scale, 0));
        expect(getElement(z!, 0)).toBe(getElement(want.zeroPoint, 0));
      },
    ), { numRuns: 200 });
  });

  it("symmetric uint8 puts the zero point at 128; empty and non-finite inputs are BAD_DATA", () => {
    const [, z] = runOp("choose_qparams_per_tensor", [f32([2], [-1, 3])], { ...attrs, quant_min: 0, quant_max: 255, dtype: "uint8", qscheme: "per_tensor_symmetric" }, { numOutputs: 2 });
    expect(getElement(z!, 0)).toBe(128);
    expect(() => runOp("choose_qparams_per_tensor", [f32([0], [])], attrs, { numOutputs: 2 })).toThrow(/BAD_DATA/);
    expect(() => runOp("choose_qparams_per_tensor", [f32([2], [1, NaN])], attrs, { numOutputs: 2 })).toThrow(/BAD_DATA/);
  });
});

describe("observer / fake_quantize nodes", () => {
  function graphWith(op: "observer" | "fake_quantize") {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [3]);
    const o = b.node1(op, [x], { id: "m0" }, { name: "obs" });
    b.output(b.node1("relu", [o], {}, { name: "r" }));
    return b.build();
  }

  it("observer is the identity in the plain interpreter", () => {
    const x = f32([3], [-1, 2, 3]);
    expect(toNumbers(runGraph(graphWith("observer"), [x]).outputs[0]!)).toEqual([0, 2, 3]);
  });

  it("fake_quantize needs its module: UNSUPPORTED without a kernel override, the override runs otherwise", () => {
    const g = graphWith("fake_quantize");
    const x = f32([3], [-1, 2, 3]);
    try {
      runGraph(g, [x]);
      expect.unreachable();
    } catch (e) {
      expect(isQforgeError(e, "UNSUPPORTED")).toBe(true);
      expect((e as Error).message).toContain("obs");
    }
    const seen: string[] = [];
    const out = runGraph(g, [x], {
      kernels: {
        fake_quantize: (inputs, attrs, ctx) => {
          seen.push(`${ctx.node}:${String(attrs["id"])}`);
          return [fromArray("float32", [3], toNumbers(inputs[0]!).map((v) => v * 2))];
        },
      },
    }).outputs[0]!;
    expect(seen).toEqual(["obs:m0"]);
    expect(toNumbers(out)).toEqual([0, 4, 6]);
  });

  it("a kernel override still gets its output checked against the schema", () => {
    expect(() => runGraph(graphWith("observer"), [f32([3], [1, 2, 3])], {
      kernels: { observer: () => [fromArray("float32", [2], [1, 2])] },
    })).toThrow(/SHAPE_MISMATCH/);
  });
});
