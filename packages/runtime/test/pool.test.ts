import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { runOp } from "../src/index.js";
import { arbTensor, expectClose, f32, t, vals } from "./helpers.js";

const iota = (shape: number[]): ReturnType<typeof f32> => f32(shape, Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => i));

describe("max_pool", () => {
  it("values and Indices, row-major and column-major (storage_order)", () => {
    const x = iota([1, 2, 4, 4]);
    const [y, idx] = runOp("max_pool", [x], { kernel_shape: [2, 2], strides: [2, 2] }, { numOutputs: 2 });
    expectClose(y, [1, 2, 2, 2], [5, 7, 13, 15, 21, 23, 29, 31]);
    expect(idx!.dtype).toBe("int64");
    expect(vals(idx)).toEqual([5, 7, 13, 15, 21, 23, 29, 31]);
    const [, col] = runOp("max_pool", [x], { kernel_shape: [2, 2], strides: [2, 2], storage_order: 1 }, { numOutputs: 2 });
    expect(vals(col)).toEqual([5, 13, 7, 15, 21, 29, 23, 31]);
  });

  it("padding never wins; ties keep the first tap; NaN propagates", () => {
    expectClose(runOp("max_pool", [f32([1, 1, 2, 2], [-1, -2, -3, -4])], { kernel_shape: [2, 2], pads: [1, 1, 1, 1] })[0], [1, 1, 3, 3],
      [-1, -1, -2, -1, -1, -2, -3, -3, -4]);
    const [y, idx] = runOp("max_pool", [f32([1, 1, 3], [1, 3, 3])], { kernel_shape: [2] }, { numOutputs: 2 });
    expect(vals(y)).toEqual([3, 3]);
    expect(vals(idx)).toEqual([1, 1]);
    expect(vals(runOp("max_pool", [f32([1, 1, 3], [1, NaN, 3])], { kernel_shape: [2] })[0])).toEqual([NaN, NaN]);
  });

  it("ceil_mode, dilations, SAME padding and uint8", () => {
    const x = f32([1, 1, 5], [1, 2, 3, 4, 5]);
    expect(vals(runOp("max_pool", [x], { kernel_shape: [2], strides: [2], ceil_mode: 1 })[0])).toEqual([2, 4, 5]);
    expect(vals(runOp("max_pool", [x], { kernel_shape: [2], strides: [2] })[0])).toEqual([2, 4]);
    expect(vals(runOp("max_pool", [f32([1, 1, 5], [1, 5, 2, 4, 3])], { kernel_shape: [2], dilations: [2] })[0])).toEqual([2, 5, 3]);
    expect(vals(runOp("max_pool", [x], { kernel_shape: [2], auto_pad: "SAME_UPPER" })[0])).toEqual([2, 3, 4, 5, 5]);
    expect(vals(runOp("max_pool", [x], { kernel_shape: [2], auto_pad: "SAME_LOWER" })[0])).toEqual([1, 2, 3, 4, 5]);
    const [u] = runOp("max_pool", [t("uint8", [1, 1, 3], [200, 7, 255])], { kernel_shape: [2] });
    expect(u!.dtype).toBe("uint8");
    expect(vals(u)).toEqual([200, 255]);
  });

  it("law: a 1-wide window is the identity; max pool >= average pool", () => {
    fc.assert(fc.property(arbTensor([1, 2, 3, 4]), (x) => {
      expect(vals(runOp("max_pool", [x], { kernel_shape: [1, 1] })[0])).toEqual(vals(x));
      const mx = vals(runOp("max_pool", [x], { kernel_shape: [2, 2] })[0]);
      const av = vals(runOp("average_pool", [x], { kernel_shape: [2, 2] })[0]);
      mx.forEach((m, i) => expect(m).toBeGreaterThanOrEqual(av[i]! - 1e-6));
    }), { numRuns: 30 });
  });
});

describe("average_pool", () => {
  const x = f32([1, 1, 4], [1, 2, 3, 4]);

  it("count_include_pad decides whether padding counts in the divisor", () => {
    expectClose(runOp("average_pool", [x], { kernel_shape: [2], pads: [1, 1] })[0], [1, 1, 5], [1, 1.5, 2.5, 3.5, 4]);
    expectClose(runOp("average_pool", [x], { kernel_shape: [2], pads: [1, 1], count_include_pad: 1 })[0], [1, 1, 5], [0.5, 1.5, 2.5, 3.5, 2]);
  });

  it("a ceil_mode window hanging past the padded input is clipped", () => {
    const x5 = f32([1, 1, 5], [1, 2, 3, 4, 5]);
    expectClose(runOp("average_pool", [x5], { kernel_shape: [2], strides: [2], ceil_mode: 1 })[0], [1, 1, 3], [1.5, 3.5, 5]);
    expectClose(runOp("average_pool", [x5], { kernel_shape: [2], strides: [2], ceil_mode: 1, count_include_pad: 1 })[0], [1, 1, 3], [1.5, 3.5, 5]);
    // Last window [4, 7): the element 5, one end pad, one position past the padding -> divisor 2.
    expectClose(runOp("average_pool", [x5], { kernel_shape: [3], strides: [2], pads: [0, 1], ceil_mode: 1, count_include_pad: 1 })[0], [1, 1, 3], [2, 4, 2.5]);
  });

  it("dilations and 2-D windows", () => {
    expectClose(runOp("average_pool", [f32([1, 1, 5], [1, 2, 3, 4, 5])], { kernel_shape: [2], dilations: [2] })[0], [1, 1, 3], [2, 3, 4]);
    expectClose(runOp("average_pool", [iota([1, 1, 3, 3])], { kernel_shape: [2, 2] })[0], [1, 1, 2, 2], [2, 3, 5, 6]);
  });
});

describe("global and adaptive pooling", () => {
  it("global average and max keep spatial dims as 1", () => {
    const x = f32([1, 2, 2, 2], [1, 2, 3, 4, -1, -2, -3, 10]);
    expectClose(runOp("global_average_pool", [x])[0], [1, 2, 1, 1], [2.5, 1]);
    expectClose(runOp("global_max_pool", [x])[0], [1, 2, 1, 1], [4, 10]);
  });

  it("adaptive_avg_pool2d uses torch's floor/ceil cell bounds (overlapping cells)", () => {
    expectClose(runOp("adaptive_avg_pool2d", [iota([1, 1, 5, 5])], { output_size: [2, 2] })[0], [1, 1, 2, 2], [6, 8, 16, 18]);
    expectClose(runOp("adaptive_avg_pool2d", [iota([1, 3, 3])], { output_size: [1, 3] })[0], [1, 1, 3], [3, 4, 5]);
  });

  it("law: adaptive to 1x1 = global average; adaptive on divisible sizes = average_pool", () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 3 }), (a, b) => {
      fc.assert(fc.property(arbTensor([1, 2, 2 * a, 3 * b]), (x) => {
        expectClose(runOp("adaptive_avg_pool2d", [x], { output_size: [1, 1] })[0], [1, 2, 1, 1], vals(runOp("global_average_pool", [x])[0]));
        const ap = runOp("average_pool", [x], { kernel_shape: [a, b], strides: [a, b] })[0]!;
        expectClose(runOp("adaptive_avg_pool2d", [x], { output_size: [2, 3] })[0], [1, 2, 2, 3], vals(ap));
      }), { numRuns: 4 });
    }), { numRuns: 9 });
  });
});
