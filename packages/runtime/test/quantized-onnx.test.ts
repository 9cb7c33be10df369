import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import {
  fromArray, getElement, inferNode, isQforgeError, numel, toNumbers, type AttrValue, type Tensor,
} from "@qforge/ir";
import { decodeModelProto, int64ToNumber, readTensorProto } from "@qforge/onnx";
import { runOp } from "../src/index.js";

/** The ONNX spec's documented examples (onnx/backend/test/case/node/*.py) for the quantized ops. */

const u8 = (shape: number[], v: number[]): Tensor => fromArray("uint8", shape, v);
const f32 = (shape: number[], v: number[]): Tensor => fromArray("float32", shape, v);
const scalarU8 = (v: number): Tensor => fromArray("uint8", [], [v]);
const scalarF32 = (v: number): Tensor => fromArray("float32", [], [v]);

describe("quantize_linear", () => {
  it("per tensor: round half to even, then saturate (spec example)", () => {
    const [y] = runOp("quantize_linear", [f32([6], [0, 2, 3, 1000, -254, -1000]), scalarF32(2), scalarU8(128)]);
    expect(y!.dtype).toBe("uint8");
    expect(toNumbers(y!)).toEqual([128, 129, 130, 255, 1, 0]);
  });

  it("ties go to even: 2.5 -> 2, 3.5 -> 4, -2.5 -> -2", () => {
    const [y] = runOp("quantize_linear", [f32([4], [2.5, 3.5, -2.5, -3.5]), scalarF32(1), fromArray("int8", [], [0])]);
    expect(toNumbers(y!)).toEqual([2, 4, -2, -4]);
  });

  it("per axis (spec example quantizelinear_axis)", () => {
    const x = f32([1, 3, 3, 2], [-162, 10, -100, 232, -20, -50, -76, 0, 0, 252, 32, -44, 245, -485, -960, -270, -375, -470]);
    const [y] = runOp("quantize_linear", [x, f32([3], [2, 4, 5]), u8([3], [84, 24, 196])]);
    expect(toNumbers(y!)).toEqual([3, 89, 34, 200, 74, 59, 5, 24, 24, 87, 32, 13, 245, 99, 4, 142, 121, 102]);
  });

  it("blocked along axis 1 with block_size 2", () => {
    const x = f32([3, 4], [6, 12, 50, 5, 1, 8, 4, 5, 0, 20, 10, 4]);
    const scale = f32([3, 2], [1.5, 2.5, 3, 4.9, 5.1, 6.9]);
    const zp = u8([3, 2], [0, 1, 1, 0, 2, 3]);
    const [y] = runOp("quantize_linear", [x, scale, zp], { axis: 1, block_size: 2 });
    expect(toNumbers(y!)).toEqual([4, 8, 21, 3, 1, 4, 1, 1, 2, 6, 4, 4]);
  });

  it("int4 per axis saturates to [-8, 7] (spec example quantizelinear_int4)", () => {
    const x = f32([3, 4], [0, 2.5, 4.8, 8.6, -30, -20, 6, 9, 12, 15, 16, 40]);
    const [y] = runOp("quantize_linear", [x, f32([3], [2, 3, 4]), fromArray("int4", [3], [1, 1, 1])], { axis: 0 });
    expect(y!.dtype).toBe("int4");
    expect(toNumbers(y!)).toEqual([1, 2, 3, 5, -8, -6, 3, 4, 4, 5, 5, 7]);
  });

  it("float8 outputs: saturating cast of x / scale (spec examples e4m3fn, e5m2)", () => {
    const x = f32([5], [0, 1, 2, 100000, 200]);
    const [e4] = runOp("quantize_linear", [x, scalarF32(2), fromArray("float8_e4m3fn", [1], [0])]);
    expect(toNumbers(e4!)).toEqual([0, 0.5, 1, 448, 96]);
    const [e5] = runOp("quantize_linear", [x, scalarF32(2), fromArray("float8_e5m2", [1], [0])]);
    expect(toNumbers(e5!)).toEqual([0, 0.5, 1, 49152, 96]);
    const [nan] = runOp("quantize_linear", [x, scalarF32(2), fromArray("float8_e4m3fn", [1], [0])], { saturate: 0 });
    expect(Number.isNaN(getElement(nan!, 3))).toBe(true);
  });

  it("output dtype: zero point's, else output_dtype, else uint8", () => {
    const x = f32([2], [-3, 3]);
    expect(runOp("quantize_linear", [x, scalarF32(1)])[0]!.dtype).toBe("uint8");
    const [y] = runOp("quantize_linear", [x, scalarF32(1)], { output_dtype: "int8" });
    expect(y!.dtype).toBe("int8");
    expect(toNumbers(y!)).toEqual([-3, 3]);
    expect(() => runOp("quantize_linear", [x, scalarF32(1), scalarU8(0)], { output_dtype: "int8" })).toThrow(/output_dtype/);
  });

  it("divides by the scale (ONNX) rather than multiplying by its float32 reciprocal (PyTorch)", () => {
    // float32: 2.25 / 0.3 = 7.4999995 -> 7, whereas 2.25 * f32(1 / 0.3) = 7.5 -> 8 (PyTorch's rule).
    const [y] = runOp("quantize_linear", [f32([1], [2.25]), scalarF32(0.3), fromArray("int8", [], [0])]);
    expect(getElement(y!, 0)).toBe(7);
  });

  it("refuses a scale whose shape fits no granularity", () => {
    expect(() => runOp("quantize_linear", [f32([2, 3], [1, 2, 3, 4, 5, 6]), f32([2], [1, 1]), u8([2], [0, 0])], { axis: 1 })).toThrow(/per-axis scale/);
  });
});

describe("dequantize_linear", () => {
  it("per tensor (spec example)", () => {
    const [y] = runOp("dequantize_linear", [u8([4], [0, 3, 128, 255]), scalarF32(2), scalarU8(128)]);
    expect(y!.dtype).toBe("float32");
    expect(toNumbers(y!)).toEqual([-256, -250, 0, 254]);
  });

  it("per axis (spec example dequantizelinear_axis)", () => {
    const x = u8([1, 3, 3, 2], [3, 89, 34, 200, 74, 59, 5, 24, 24, 87, 32, 13, 245, 99, 4, 142, 121, 102]);
    const [y] = runOp("dequantize_linear", [x, f32([3], [2, 4, 5]), u8([3], [84, 24, 196])]);
    expect(toNumbers(y!)).toEqual([-162, 10, -100, 232, -20, -50, -76, 0, 0, 252, 32, -44, 245, -485, -960, -270, -375, -470]);
  });

  it("int4 and float8 inputs (spec examples)", () => {
    const [i4] = runOp("dequantize_linear", [fromArray("int4", [5], [0, 1, 7, -4, -8]), scalarF32(2), fromArray("int4", [], [1])]);
    expect(toNumbers(i4!)).toEqual([-2, 0, 12, -10, -18]);
    const [e4] = runOp("dequantize_linear", [fromArray("float8_e4m3fn", [5], [0, 0.5, 1, 448, -104]), scalarF32(2)]);
    expect(toNumbers(e4!)).toEqual([0, 1, 2, 896, -208]);
  });

  it("blocked dequantization inverts blocked quantization on representable values", () => {
    const scale = f32([2, 2], [0.5, 0.25, 2, 4]);
    const zp = fromArray("int8", [2, 2], [1, -2, 0, 3]);
    const x = f32([2, 4], [0.5, -1, 0.25, 1.5, 4, 8, -12, 20]);
    const [q] = runOp("quantize_linear", [x, scale, zp], { axis: 1, block_size: 2 });
    const [y] = runOp("dequantize_linear", [q!, scale, zp], { axis: 1, block_size: 2 });
    expect(toNumbers(y!)).toEqual(toNumbers(x));
  });

  it("output_dtype picks the float type of y", () => {
    const [y] = runOp("dequantize_linear", [u8([2], [0, 255]), scalarF32(0.5), scalarU8(0)], { output_dtype: "float16" });
    expect(y!.dtype).toBe("float16");
    expect(toNumbers(y!)).toEqual([0, 127.5]);
  });
});

describe("dynamic_quantize_linear (spec examples)", () => {
  const run = (shape: number[], x: number[]) => runOp("dynamic_quantize_linear", [f32(shape, x)], {}, { numOutputs: 3 });

  it("mixed signs", () => {
    const [y, s, z] = run([6], [0, 2, -3, -2.5, 1.34, 0.5]);
    expect(getElement(s!, 0)).toBe(Math.fround(5 / 255));
    expect(getElement(z!, 0)).toBe(153);
    expect(toNumbers(y!)).toEqual([153, 255, 0, 26, 221, 179]);
  });

  it("all negative: max adjusted to 0", () => {
    const [y, s, z] = run([6], [-1, -2.1, -1.3, -2.5, -3.34, -4]);
    expect(getElement(s!, 0)).toBe(Math.fround(4 / 255));
    expect(getElement(z!, 0)).toBe(255);
    expect(toNumbers(y!)).toEqual([191, 121, 172, 96, 42, 0]);
  });

  it("all positive: min adjusted to 0", () => {
    const [y, s, z] = run([3, 4], [1, 2.1, 1.3, 2.5, 3.34, 4, 1.5, 2.6, 3.9, 4, 3, 2.345]);
    expect(getElement(s!, 0)).toBe(Math.fround(4 / 255));
    expect(getElement(z!, 0)).toBe(0);
    expect(toNumbers(y!)).toEqual([64, 134, 83, 159, 213, 255, 96, 166, 249, 255, 191, 149]);
  });

  it("all zero: scale 1, zero point 0", () => {
    const [y, s, z] = run([3], [0, 0, 0]);
    expect([getElement(s!, 0), getElement(z!, 0), ...toNumbers(y!)]).toEqual([1, 0, 0, 0, 0]);
  });
});

describe("integer matmul / conv", () => {
  it("matmul_integer (spec example)", () => {
    const a = u8([4, 3], [11, 7, 3, 10, 6, 2, 9, 5, 1, 8, 4, 0]);
    const b = u8([3, 2], [1, 4, 2, 5, 3, 6]);
    const [y] = runOp("matmul_integer", [a, b, scalarU8(12), scalarU8(0)]);
    expect(y!.dtype).toBe("int32");
    expect(toNumbers(y!)).toEqual([-38, -83, -44, -98, -50, -113, -56, -128]);
  });

  it("matmul_integer: per-column b zero points and broadcast batch dims", () => {
    const a = fromArray("int8", [2, 1, 2], [1, 2, 3, 4]);
    const b = fromArray("int8", [2, 2], [1, 0, 0, 1]);
    const [y] = runOp("matmul_integer", [a, b, undefined, fromArray("int8", [2], [1, -1])]);
    // b - zp = [[0, 1], [-1, 2]]
    expect(y!.shape).toEqual([2, 1, 2]);
    expect(toNumbers(y!)).toEqual([-2, 5, -4, 11]);
  });

  it("conv_integer without and with padding (spec examples)", () => {
    const x = u8([1, 1, 3, 3], [2, 3, 4, 5, 6, 7, 8, 9, 10]);
    const w = u8([1, 1, 2, 2], [1, 1, 1, 1]);
    const [y] = runOp("conv_integer", [x, w, scalarU8(1)]);
    expect(toNumbers(y!)).toEqual([12, 16, 24, 28]);
    const [yp] = runOp("conv_integer", [x, w, scalarU8(1)], { pads: [1, 1, 1, 1] });
    expect(yp!.shape).toEqual([1, 1, 4, 4]);
    expect(toNumbers(yp!)).toEqual([1, 3, 5, 3, 5, 12, 16, 9, 11, 24, 28, 15, 7, 15, 17, 9]);
  });

  it("qlinear_matmul (spec example, 2-D)", () => {
    const a = u8([2, 4], [208, 236, 0, 238, 3, 214, 255, 29]);
    const b = u8([4, 3], [152, 51, 244, 60, 26, 255, 0, 127, 246, 127, 254, 247]);
    const [y] = runOp("qlinear_matmul", [
      a, scalarF32(0.0066), scalarU8(113), b, scalarF32(0.00705), scalarU8(114), scalarF32(0.0107), scalarU8(118),
    ]);
    expect(toNumbers(y!)).toEqual([168, 115, 255, 1, 66, 151]);
  });

  it("qlinear_conv: int32 bias and per-channel weight scales", () => {
    // x - 0 = [1, 2, 3, 4]; w0 - 0 = [1, 1], w1 - 1 = [2, -1] over a 1x2 kernel; bias [10, -3].
    const x = fromArray("int8", [1, 1, 2, 2], [1, 2, 3, 4]);
    const w = fromArray("int8", [2, 1, 1, 2], [1, 1, 3, 0]);
    const [y] = runOp("qlinear_conv", [
      x, scalarF32(0.5), fromArray("int8", [], [0]), w, f32([2], [1, 2]), fromArray("int8", [2], [0, 1]),
      scalarF32(1), fromArray("int8", [], [5]), fromArray("int32", [2], [10, -3]),
    ]);
    // channel 0: (3 + 10) * 0.5 = 6.5 -> 6, (7 + 10) * 0.5 = 8.5 -> 8; channel 1: accumulators 0 and 2, (0 - 3) * 1 = -3, (2 - 3) * 1 = -1
    expect(toNumbers(y!)).toEqual([11, 13, 2, 4]);
  });

  it("shape inference agrees with the kernels (auto_pad SAME_UPPER, strides)", () => {
    const x = u8([1, 2, 5, 5], new Array(50).fill(3));
    const w = u8([4, 2, 3, 3], new Array(72).fill(1));
    const attrs = { auto_pad: "SAME_UPPER", strides: [2, 2] };
    const [t] = inferNode("conv_integer", "c", [{ dtype: "uint8", shape: [1, 2, 5, 5] }, { dtype: "uint8", shape: [4, 2, 3, 3] }], attrs, 1);
    const [y] = runOp("conv_integer", [x, w], attrs);
    expect(t!.shape).toEqual([1, 4, 3, 3]);
    expect(y!.shape).toEqual([1, 4, 3, 3]);
    // The centre output sees the full 3x3x2 window of 3s: 18 * 3.
    expect(getElement(y!, 4)).toBe(54);
  });
});

// ---- ONNX backend node tests (../shared/onnx-node-tests), read with @qforge/onnx ----------------

const NODE_TESTS = fileURLToPath(new URL("../../../../shared/onnx-node-tests/", import.meta.url));
const OP_NAMES: Record<string, string> = {
  QuantizeLinear: "quantize_linear",
  DequantizeLinear: "dequantize_linear",
  DynamicQuantizeLinear: "dynamic_quantize_linear",
  QLinearMatMul: "qlinear_matmul",
  QLinearConv: "qlinear_conv",
  MatMulInteger: "matmul_integer",
  ConvInteger: "conv_integer",
};

function nodeAttrs(attrs: readonly { name?: string; type?: number; i?: unknown; f?: number; ints?: unknown[]; s?: Uint8Array }[]): Record<string, AttrValue> {
  const out: Record<string, AttrValue> = {};
  for (const a of attrs) {
    const name = a.name ?? "";
    // AttributeProto.AttributeType: FLOAT 1, INT 2, STRING 3, INTS 7.
    if (a.type === 1) out[name] = a.f ?? 0;
    else if (a.type === 2) out[name] = int64ToNumber(a.i as never, name);
    else if (a.type === 3) out[name] = new TextDecoder().decode(a.s ?? new Uint8Array());
    else if (a.type === 7) out[name] = (a.ints ?? []).map((v) => int64ToNumber(v as never, name));
    else throw new Error(`attribute ${name} of type ${a.type} is not used by these tests`);
  }
  return out;
}

describe("ONNX backend node tests of the quantized ops", () => {
  const dirs = existsSync(NODE_TESTS)
    ? readdirSync(NODE_TESTS).filter((d) => /^test_(quantizelinear|dequantizelinear|dynamicquantizelinear|qlinearmatmul|qlinearconv|matmulinteger|convinteger)/.test(d) && !d.endsWith("_expanded"))
    : [];

  it("finds the node tests", () => {
    expect(dirs.length).toBeGreaterThanOrEqual(10);
  });

  for (const dir of dirs) {
    it(dir, () => {
      const model = decodeModelProto(readFileSync(join(NODE_TESTS, dir, "model.onnx")));
      const graph = model.graph!;
      const node = graph.node![0]!;
      const op = OP_NAMES[node.op_type ?? ""];
      expect(op, `op ${node.op_type}`).toBeDefined();
      const sets = readdirSync(join(NODE_TESTS, dir)).filter((d) => d.startsWith("test_data_set_"));
      expect(sets.length).toBeGreaterThan(0);
      for (const set of sets) {
        const read = (f: string): Tensor => readTensorProto(readFileSync(join(NODE_TESTS, dir, set, f)));
        const feeds = new Map<string, Tensor>((graph.input ?? []).map((v, i) => [v.name ?? "", read(`input_${i}.pb`)]));
        const inputs = (node.input ?? []).map((n) => (n === "" ? undefined : feeds.get(n)));
        const outputs = runOp(op!, inputs, nodeAttrs(node.attribute ?? []), { numOutputs: node.output!.length });
        outputs.forEach((got, k) => {
          const want = read(`output_${k}.pb`);
          expect(got.dtype).toBe(want.dtype);
          expect(got.shape).toEqual(want.shape);
          const g = toNumbers(got);
          const e = toNumbers(want);
          for (let i = 0; i < numel(want.shape); i++) {
            // Integers exactly; floats within the ONNX backend runner's rtol 1e-3 / atol 1e-7.
            const tol = want.dtype.startsWith("float") ? 1e-7 + 1e-3 * Math.abs(e[i]!) : 0;
            expect(Math.abs(g[i]! - e[i]!), `${dir} output ${k} element ${i}: ${g[i]} vs ${e[i]}`).toBeLessThanOrEqual(tol);
          }
        });
      }
    });
  }
});

describe("errors name the node", () => {
  it("a missing required qparam is a typed error", () => {
    try {
      runOp("qlinear_matmul", [u8([1, 1], [1]), scalarF32(1), scalarU8(0), u8([1, 1], [1]), scalarF32(1), scalarU8(0), scalarF32(1)], {}, { node: "mm" });
      expect.unreachable();
    } catch (e) {
      expect(isQforgeError(e)).toBe(true);
      expect(String(e)).toMatch(/mm/);
    }
  });
});
