import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { fromArray, numel } from "@qforge/ir";
import { runOp } from "../src/index.js";
import { arbTensor, expectClose, f32, i32, i64, vals } from "./helpers.js";

const eye = (n: number): number[] => Array.from({ length: n * n }, (_, i) => (i % (n + 1) === 0 ? 1 : 0));

describe("matmul", () => {
  it("2-D hand case", () => {
    const [y] = runOp("matmul", [f32([2, 3], [1, 2, 3, 4, 5, 6]), f32([3, 2], [7, 8, 9, 10, 11, 12])]);
    expectClose(y, [2, 2], [58, 64, 139, 154]);
  });

  it("1-D operands are promoted and the added dim dropped", () => {
    const m = f32([2, 2], [1, 2, 3, 4]);
    expectClose(runOp("matmul", [f32([2], [1, 2]), m])[0], [2], [7, 10]);
    expectClose(runOp("matmul", [m, f32([2], [1, 2])])[0], [2], [5, 11]);
    expectClose(runOp("matmul", [f32([2], [1, 2]), f32([2], [3, 4])])[0], [], [11]);
  });

  it("batch dims broadcast", () => {
    const a = f32([2, 1, 1, 2], [1, 2, 3, 4]);
    const b = f32([3, 2, 1], [1, 0, 0, 1, 1, 1]);
    expectClose(runOp("matmul", [a, b])[0], [2, 3, 1, 1], [1, 2, 3, 3, 4, 7]);
  });

  it("integer matmul is exact and wraps", () => {
    expect(vals(runOp("matmul", [i32([65536, 3], [1, 2]), i32([65536, 5], [2, 1])])[0])).toEqual([15]);
    expect(vals(runOp("matmul", [i32([65536], [1, 1]), i32([65536], [1, 1])])[0])).toEqual([0]);
    const [y] = runOp("matmul", [i64([3037000499], [1, 1]), i64([3037000499], [1, 1])]);
    expect((y!.data as BigInt64Array)[0]).toBe(9223372030926249001n);
  });

  it("law: A @ I = A and (A @ B)^T = B^T @ A^T", () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 }), (m, k, n) => {
      fc.assert(fc.property(arbTensor([m, k]), arbTensor([k, n]), (a, b) => {
        expect(vals(runOp("matmul", [a, f32([k, k], eye(k))])[0])).toEqual(vals(a));
        const ab = runOp("matmul", [a, b])[0]!;
        const btat = runOp("matmul", [runOp("transpose", [b])[0]!, runOp("transpose", [a])[0]!])[0]!;
        expect(vals(runOp("transpose", [ab])[0])).toEqual(vals(btat));
      }), { numRuns: 5 });
    }), { numRuns: 10 });
  });
});

describe("gemm and linear", () => {
  const a = f32([2, 3], [1, 2, 3, 4, 5, 6]);
  const b = f32([3, 2], [1, 0, 0, 1, 1, 1]);

  it("Y = alpha * A'B' + beta * C with transposes and broadcast C", () => {
    expectClose(runOp("gemm", [a, b])[0], [2, 2], [4, 5, 10, 11]);
    expectClose(runOp("gemm", [a, b, f32([2], [10, 20])], { alpha: 2, beta: 0.5 })[0], [2, 2], [13, 20, 25, 32]);
    expectClose(runOp("gemm", [a, b, f32([], [1])])[0], [2, 2], [5, 6, 11, 12]);
    const at = runOp("transpose", [a])[0]!;
    const bt = runOp("transpose", [b])[0]!;
    expectClose(runOp("gemm", [at, bt], { transA: 1, transB: 1 })[0], [2, 2], [4, 5, 10, 11]);
  });

  it("linear is x @ W^T + b, over leading batch dims", () => {
    const w = f32([2, 3], [1, 0, 1, 0, 1, 0]);
    expectClose(runOp("linear", [a, w, f32([2], [100, 200])])[0], [2, 2], [104, 202, 110, 205]);
    expectClose(runOp("linear", [f32([2, 1, 3], [1, 2, 3, 4, 5, 6]), w])[0], [2, 1, 2], [4, 2, 10, 5]);
  });

  it("law: linear(x, W, b) = gemm(x, W, b, transB=1) = matmul(x, W^T) + b", () => {
    fc.assert(fc.property(arbTensor([3, 4]), arbTensor([2, 4]), arbTensor([2]), (x, w, bias) => {
      const lin = vals(runOp("linear", [x, w, bias])[0]);
      expect(vals(runOp("gemm", [x, w, bias], { transB: 1 })[0])).toEqual(lin);
      const mm = runOp("matmul", [x, runOp("transpose", [w])[0]!])[0]!;
      expect(vals(runOp("add", [mm, bias])[0])).toEqual(lin);
    }), { numRuns: 30 });
  });
});

describe("conv", () => {
  const x55 = f32([1, 1, 5, 5], Array.from({ length: 25 }, (_, i) => i));
  const ones33 = f32([1, 1, 3, 3], new Array(9).fill(1));

  it("matches ONNX's basic_conv examples (with and without padding)", () => {
    expectClose(runOp("conv", [x55, ones33])[0], [1, 1, 3, 3], [54, 63, 72, 99, 108, 117, 144, 153, 162]);
    expectClose(runOp("conv", [x55, ones33], { pads: [1, 1, 1, 1] })[0], [1, 1, 5, 5],
      [12, 21, 27, 33, 24, 33, 54, 63, 72, 51, 63, 99, 108, 117, 81, 93, 144, 153, 162, 111, 72, 111, 117, 123, 84]);
    expectClose(runOp("conv", [x55, ones33], { strides: [2, 2], pads: [1, 1, 1, 1] })[0], [1, 1, 3, 3], [12, 27, 24, 63, 108, 81, 72, 117, 84]);
  });

  it("auto_pad SAME_UPPER pads the odd unit at the end, SAME_LOWER at the beginning", () => {
    const x = f32([1, 1, 4], [1, 2, 3, 4]);
    const w = f32([1, 1, 2], [1, 1]);
    expectClose(runOp("conv", [x, w], { auto_pad: "SAME_UPPER" })[0], [1, 1, 4], [3, 5, 7, 4]);
    expectClose(runOp("conv", [x, w], { auto_pad: "SAME_LOWER" })[0], [1, 1, 4], [1, 3, 5, 7]);
    expectClose(runOp("conv", [x, w], { dilations: [3] })[0], [1, 1, 1], [5]);
  });

  it("groups, bias and several output channels", () => {
    const x = f32([1, 2, 1, 2], [1, 2, 10, 20]);
    // depthwise: channel 0 scaled by 1, channel 1 by -1; bias [0.5, 1]
    expectClose(runOp("conv", [x, f32([2, 1, 1, 1], [1, -1]), f32([2], [0.5, 1])], { group: 2 })[0], [1, 2, 1, 2], [1.5, 2.5, -9, -19]);
    // full: out0 = c0 + c1, out1 = c0 - c1
    expectClose(runOp("conv", [x, f32([2, 2, 1, 1], [1, 1, 1, -1])])[0], [1, 2, 1, 2], [11, 22, -9, -18]);
  });

  it("law: a 1x1 identity kernel is the identity", () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 }), (c, h, w) => {
      fc.assert(fc.property(arbTensor([2, c, h, w]), (x) => {
        expect(vals(runOp("conv", [x, f32([c, c, 1, 1], eye(c))])[0])).toEqual(vals(x));
      }), { numRuns: 3 });
    }), { numRuns: 15 });
  });

  it("refuses integer tensors", () => {
    expect(() => runOp("conv", [fromArray("int8", [1, 1, 2], [1, 2]), fromArray("int8", [1, 1, 1], [1])])).toThrow(/BAD_DTYPE/);
  });
});

describe("conv_transpose", () => {
  it("hand cases: stride 1 and 2, pads, output_padding, output_shape", () => {
    const x = f32([1, 1, 2], [1, 2]);
    const w = f32([1, 1, 2], [1, 1]);
    expectClose(runOp("conv_transpose", [x, w])[0], [1, 1, 3], [1, 3, 2]);
    expectClose(runOp("conv_transpose", [x, w], { strides: [2] })[0], [1, 1, 4], [1, 1, 2, 2]);
    expectClose(runOp("conv_transpose", [x, w], { strides: [2], pads: [1, 0] })[0], [1, 1, 3], [1, 2, 2]);
    expectClose(runOp("conv_transpose", [x, w], { strides: [2], output_padding: [1] })[0], [1, 1, 5], [1, 1, 2, 2, 0]);
    expectClose(runOp("conv_transpose", [x, w], { strides: [2], output_shape: [5] })[0], [1, 1, 5], [1, 1, 2, 2, 0]);
    expectClose(runOp("conv_transpose", [x, w, f32([1], [10])])[0], [1, 1, 3], [11, 13, 12]);
  });

  it("groups map input channel groups to output channel groups", () => {
    const x = f32([1, 2, 1], [1, 2]);
    const w = f32([2, 1, 1], [3, 5]);
    expectClose(runOp("conv_transpose", [x, w], { group: 2 })[0], [1, 2, 1], [3, 10]);
  });

  it("law: conv_transpose is the adjoint of conv: <conv(x, w), y> = <x, conv_transpose(y, w)>", () => {
    const arb = fc.record({
      h: fc.integer({ min: 3, max: 7 }), k: fc.integer({ min: 1, max: 3 }), s: fc.integer({ min: 1, max: 3 }),
      p: fc.integer({ min: 0, max: 1 }), d: fc.integer({ min: 1, max: 2 }), c: fc.integer({ min: 1, max: 2 }), m: fc.integer({ min: 1, max: 2 }),
    }).filter(({ h, k, p, d }) => h + 2 * p >= (k - 1) * d + 1);
    fc.assert(fc.property(arb, fc.integer(), ({ h, k, s, p, d, c, m }, seed) => {
      const rnd = (n: number, salt: number): number[] => Array.from({ length: n }, (_, i) => ((Math.imul(seed ^ salt, 2654435761) + i * 7919) % 9) - 4);
      const eff = (k - 1) * d + 1;
      const o = Math.floor((h + 2 * p - eff) / s) + 1;
      const outPad = h - (s * (o - 1) + eff - 2 * p);
      const x = f32([1, c, h], rnd(c * h, 1));
      const w = f32([m, c, k], rnd(m * c * k, 2));
      const y = f32([1, m, o], rnd(m * o, 3));
      const attrs = { strides: [s], pads: [p, p], dilations: [d] };
      const cx = runOp("conv", [x, w], attrs)[0]!;
      const ty = runOp("conv_transpose", [y, w], { ...attrs, output_padding: [outPad] })[0]!;
      expect(ty.shape).toEqual(x.shape);
      const dot = (a: number[], b: number[]): number => a.reduce((acc, v, i) => acc + v * b[i]!, 0);
      expect(dot(vals(cx), vals(y))).toBe(dot(vals(x), vals(ty)));
      expect(numel(cx.shape)).toBe(m * o);
    }), { numRuns: 60 });
  });
});
