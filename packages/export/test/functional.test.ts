import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { fromArray, isQforgeError, scalar, toFloat64 } from "@qforge/ir";
import { F, Module, Var } from "@qforge/export";
import { arange, checkExport, expectClose, f32, randTensor } from "./helpers.js";

const v = (shape: number[], values: number[]): Var => Var.from(f32(shape, values));

/** A module around a function, so functional ops can be exported on their own. */
class Fn extends Module {
  constructor(private readonly f: (...xs: Var[]) => Var) {
    super();
  }
  forward(...xs: Var[]): Var {
    return this.f(...xs);
  }
}

describe("elementwise ops, eager", () => {
  it("add/sub/mul/div with tensors, numbers on either side, and broadcasting", () => {
    const a = v([2, 2], [1, 2, 3, 4]);
    const b = v([2], [10, 20]);
    expectClose(F.add(a, b), [11, 22, 13, 24], 0, [2, 2]);
    expectClose(F.sub(a, 1), [0, 1, 2, 3], 0);
    expectClose(F.sub(1, a), [0, -1, -2, -3], 0);
    expectClose(F.mul(a, b), [10, 40, 30, 80], 0);
    expectClose(F.div(a, 2), [0.5, 1, 1.5, 2], 0);
    expectClose(a.add(b).mul(2).sub(a).div(a), [21, 21, 23 / 3, 11], 1e-6);
  });

  it("pow, maximum, minimum, neg, exp, log, sqrt, abs", () => {
    const a = v([3], [1, 4, 9]);
    expectClose(F.pow(a, 2), [1, 16, 81], 0);
    expectClose(F.maximum(a, v([3], [2, 2, 10])), [2, 4, 10], 0);
    expectClose(F.minimum(a, 3), [1, 3, 3], 0);
    expectClose(F.neg(a), [-1, -4, -9], 0);
    expectClose(F.sqrt(a), [1, 2, 3], 0);
    expectClose(F.abs(v([2], [-2, 3])), [2, 3], 0);
    expectClose(F.exp(v([2], [0, 1])), [1, Math.E], 1e-6);
    expectClose(F.log(v([2], [1, Math.E])), [0, 1], 1e-6);
  });

  it("comparisons give bool and where selects", () => {
    const a = v([4], [1, 2, 3, 4]);
    const gt = F.gt(a, 2);
    expect(gt.dtype).toBe("bool");
    expect(gt.toArray()).toEqual([0, 0, 1, 1]);
    expect(F.lt(a, 2).toArray()).toEqual([1, 0, 0, 0]);
    expect(F.eq(a, v([4], [1, 0, 3, 0])).toArray()).toEqual([1, 0, 1, 0]);
    expectClose(F.where(gt, a, 0), [0, 0, 3, 4], 0);
    expectClose(F.where(gt, -1, a), [1, 2, -1, -1], 0);
  });

  it("activations match their formulas", () => {
    expectClose(F.relu(v([3], [-1, 0, 2])), [0, 0, 2], 0);
    expectClose(F.relu6(v([3], [-1, 3, 7])), [0, 3, 6], 0);
    expectClose(F.hardswish(v([5], [-4, -1, 0, 1, 4])), [0, -1 / 3, 0, 2 / 3, 4], 1e-6);
    expectClose(F.hardsigmoid(v([4], [-4, 0, 1.5, 4])), [0, 0.5, 0.75, 1], 1e-6);
    expectClose(F.sigmoid(v([2], [0, Math.log(3)])), [0.5, 0.75], 1e-6);
    expectClose(F.tanh(v([2], [0, Math.atanh(0.5)])), [0, 0.5], 1e-6);
    // Phi(1) = 0.8413447460685429; tanh form: 0.5 (1 + tanh(sqrt(2/pi) (1 + 0.044715))).
    expectClose(F.gelu(v([3], [0, 1, -10])), [0, 0.8413447460685429, 0], 1e-6);
    expectClose(F.gelu(v([1], [1]), "tanh"), [0.5 * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * 1.044715))], 1e-6);
    expectClose(F.softmax(v([1, 3], [0, Math.log(2), Math.log(3)]), -1), [1 / 6, 2 / 6, 3 / 6], 1e-6);
    expectClose(F.softmax(v([2, 1], [0, Math.log(3)]), 0), [0.25, 0.75], 1e-6);
  });

  it("clamp takes min, max or both, but not neither", () => {
    const a = v([4], [-2, -1, 1, 2]);
    expectClose(F.clamp(a, -1, 1), [-1, -1, 1, 1], 0);
    expectClose(F.clamp(a, 0), [0, 0, 1, 2], 0);
    expectClose(F.clamp(a, undefined, 0), [-2, -1, 0, 0], 0);
    expect(() => F.clamp(a)).toThrow(/at least one of min and max/);
  });

  it("two number operands are rejected", () => {
    try {
      F.add(1, 2);
      expect.fail("no error");
    } catch (e) {
      expect(isQforgeError(e, "BAD_INPUT")).toBe(true);
    }
  });
});

describe("linear algebra and shape ops, eager", () => {
  it("matmul and linear", () => {
    const a = v([2, 2], [1, 2, 3, 4]);
    expectClose(F.matmul(a, v([2, 1], [1, 1])), [3, 7], 0, [2, 1]);
    const w = f32([3, 2], [1, 2, 3, 4, 5, 6]);
    expectClose(F.linear(v([1, 2], [1, 1]), w, f32([3], [0.5, -1, 0])), [3.5, 6, 11], 0, [1, 3]);
    expectClose(F.linear(v([1, 2], [1, 1]), w), [3, 7, 11], 0, [1, 3]);
  });

  it("reshape/view with -1, permute, transpose", () => {
    const x = Var.from(arange([2, 3]));
    expect(F.reshape(x, [3, -1]).shape).toEqual([3, 2]);
    expect(x.view([-1]).toArray()).toEqual([0, 1, 2, 3, 4, 5]);
    expectClose(F.permute(x, [1, 0]), [0, 3, 1, 4, 2, 5], 0, [3, 2]);
    expectClose(x.transpose(0, -1), [0, 3, 1, 4, 2, 5], 0, [3, 2]);
    expect(() => F.reshape(x, [-1, -1])).toThrow(/only one dimension/);
    expect(() => F.permute(x, [0, 0])).toThrow(/not a permutation/);
  });

  it("flatten follows torch.flatten's start/end dims", () => {
    const x = Var.from(arange([2, 3, 4, 5]));
    expect(F.flatten(x).shape).toEqual([120]);
    expect(F.flatten(x, 1).shape).toEqual([2, 60]);
    expect(F.flatten(x, 1, 2).shape).toEqual([2, 12, 5]);
    expect(F.flatten(x, -2, -1).shape).toEqual([2, 3, 20]);
    expect(F.flatten(x, 2, 2)).toBe(x);
    expect(F.flatten(Var.from(scalar("float32", 3))).shape).toEqual([1]);
    expect(F.flatten(x, 1).toArray()).toEqual(x.toArray());
    expect(() => F.flatten(x, 2, 1)).toThrow(/start_dim/);
  });

  it("mean and sum over dims, with keepdim", () => {
    const x = Var.from(arange([2, 3]));
    expectClose(F.mean(x), [2.5], 0, []);
    expectClose(F.sum(x, 1), [3, 12], 0, [2]);
    expectClose(x.mean(0, true), [1.5, 2.5, 3.5], 0, [1, 3]);
    expectClose(x.sum([0, 1], true), [15], 0, [1, 1]);
    expectClose(x.sum(-1), [3, 12], 0, [2]);
  });

  it("cat along a dim", () => {
    const a = Var.from(arange([1, 2]));
    const b = Var.from(arange([2, 2], 10));
    expectClose(F.cat([a, b], 0), [0, 1, 10, 11, 12, 13], 0, [3, 2]);
    expectClose(F.cat([a, a], -1), [0, 1, 0, 1], 0, [1, 4]);
    expect(() => F.cat([])).toThrow(/non-empty/);
  });

  it("out-of-range dims are BAD_SHAPE", () => {
    const x = Var.from(arange([2, 3]));
    for (const f of [() => F.softmax(x, 2), () => F.sum(x, -3), () => F.transpose(x, 0, 5)]) {
      try {
        f();
        expect.fail("no error");
      } catch (e) {
        expect(isQforgeError(e, "BAD_SHAPE")).toBe(true);
      }
    }
  });
});

describe("convolution, pooling, normalization, embedding, dropout: eager", () => {
  const x33 = () => Var.from(arange([1, 1, 3, 3]));
  const ones = (shape: number[]) => f32(shape, new Array<number>(shape.reduce((a, b) => a * b, 1)).fill(1));

  it("conv2d: plain, padding, same, stride, dilation, groups", () => {
    expectClose(F.conv2d(x33(), ones([1, 1, 2, 2])), [8, 12, 20, 24], 0, [1, 1, 2, 2]);
    expectClose(F.conv2d(x33(), ones([1, 1, 2, 2]), f32([1], [1])), [9, 13, 21, 25], 0);
    expect(F.conv2d(x33(), ones([1, 1, 2, 2]), undefined, { padding: 1 }).shape).toEqual([1, 1, 4, 4]);
    // 'same' with an even kernel pads 0 before and 1 after (aten _convolution_mode).
    expectClose(F.conv2d(x33(), ones([1, 1, 2, 2]), undefined, { padding: "same" }), [8, 12, 7, 20, 24, 13, 13, 15, 8], 0, [1, 1, 3, 3]);
    expectClose(F.conv2d(x33(), ones([1, 1, 1, 1]), undefined, { stride: 2 }), [0, 2, 6, 8], 0, [1, 1, 2, 2]);
    expectClose(F.conv2d(x33(), ones([1, 1, 2, 2]), undefined, { dilation: 2 }), [16], 0, [1, 1, 1, 1]);
    const two = Var.from(arange([1, 2, 1, 2]));
    expectClose(F.conv2d(two, f32([2, 1, 1, 1], [1, 2]), undefined, { groups: 2 }), [0, 1, 4, 6], 0, [1, 2, 1, 2]);
    expect(() => F.conv2d(x33(), ones([1, 1, 2, 2]), undefined, { padding: "same", stride: 2 })).toThrow(/strided/);
  });

  it("conv_transpose2d scatters each input by the kernel", () => {
    const x = Var.from(f32([1, 1, 1, 2], [1, 2]));
    const w = f32([1, 1, 2, 2], [1, 2, 3, 4]);
    expectClose(F.convTranspose2d(x, w, undefined, { stride: 2 }), [1, 2, 2, 4, 3, 4, 6, 8], 0, [1, 1, 2, 4]);
    // stride 1: overlapping windows add up.
    expectClose(F.convTranspose2d(x, w, f32([1], [1])), [2, 5, 5, 4, 11, 9], 0, [1, 1, 2, 3]);
    expect(F.convTranspose2d(x, w, undefined, { stride: 2, outputPadding: 1 }).shape).toEqual([1, 1, 3, 5]);
    expect(() => F.convTranspose2d(x, w, undefined, { outputPadding: 1 })).toThrow(/output_padding/);
  });

  it("max_pool2d and avg_pool2d, incl. ceil mode and count_include_pad", () => {
    const x = Var.from(arange([1, 1, 4, 4]));
    expectClose(F.maxPool2d(x, 2), [5, 7, 13, 15], 0, [1, 1, 2, 2]);
    expectClose(F.maxPool2d(x33(), 2, { ceilMode: true }), [4, 5, 7, 8], 0, [1, 1, 2, 2]);
    expectClose(F.maxPool2d(x33(), 2, { stride: 1, padding: 1 }).flatten(), [0, 1, 2, 2, 3, 4, 5, 5, 6, 7, 8, 8, 6, 7, 8, 8], 0);
    expectClose(F.avgPool2d(x, 2), [2.5, 4.5, 10.5, 12.5], 0, [1, 1, 2, 2]);
    const small = Var.from(f32([1, 1, 2, 2], [1, 2, 3, 4]));
    expectClose(F.avgPool2d(small, 2, { stride: 1, padding: 1 }), [0.25, 0.75, 0.5, 1, 2.5, 1.5, 0.75, 1.75, 1], 1e-6);
    expectClose(F.avgPool2d(small, 2, { stride: 1, padding: 1, countIncludePad: false }), [1, 1.5, 2, 2, 2.5, 3, 3, 3.5, 4], 1e-6);
    expect(() => F.maxPool2d(x, 2, { padding: 2 })).toThrow(/half of effective kernel/);
    expect(() => F.avgPool2d(x, 2, { padding: 2 })).toThrow(/half of kernel/);
  });

  it("adaptive_avg_pool2d uses torch's overlapping bins", () => {
    expectClose(F.adaptiveAvgPool2d(Var.from(arange([1, 1, 4, 4])), 1), [7.5], 0, [1, 1, 1, 1]);
    // bins [floor(i*3/2), ceil((i+1)*3/2)) = [0,2), [1,3).
    expectClose(F.adaptiveAvgPool2d(x33(), 2), [2, 3, 5, 6], 1e-6, [1, 1, 2, 2]);
    expect(F.adaptiveAvgPool2d(Var.from(arange([1, 1, 4, 6])), [2, null]).shape).toEqual([1, 1, 2, 6]);
  });

  it("batch_norm with running stats, and in training mode with batch stats", () => {
    const x = Var.from(f32([1, 2, 1, 1], [3, 0]));
    const mean = f32([2], [1, -1]);
    const variance = f32([2], [4, 0.25]);
    expectClose(F.batchNorm(x, mean, variance, f32([2], [2, 1]), f32([2], [0, 1]), { eps: 0 }), [2, 3], 1e-6);
    expectClose(F.batchNorm(x, mean, variance, undefined, undefined, { eps: 0 }), [1, 2], 1e-6);
    const batch = Var.from(f32([2, 1, 1, 1], [1, 3]));
    expectClose(F.batchNorm(batch, f32([1], [0]), f32([1], [1]), undefined, undefined, { eps: 0, training: true }), [-1, 1], 1e-6);
  });

  it("layer_norm over the trailing dims", () => {
    const x = Var.from(f32([1, 4], [1, 2, 3, 4]));
    const s = Math.sqrt(1.25);
    expectClose(F.layerNorm(x, 4, undefined, undefined, 0), [-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s], 1e-6);
    expectClose(F.layerNorm(x, [4], f32([4], [1, 2, 1, 2]), f32([4], [1, 1, 1, 1]), 0), [1 - 1.5 / s, 1 - 1 / s, 1 + 0.5 / s, 1 + 3 / s], 1e-6);
    // mean 1, biased var (0 + 4 + 1 + 1) / 4 = 1.5 over both trailing dims.
    const r = Math.sqrt(1.5);
    expectClose(F.layerNorm(Var.from(f32([2, 2], [1, 3, 0, 0])), [2, 2], undefined, undefined, 0), [0, 2 / r, -1 / r, -1 / r], 1e-6);
    expect(() => F.layerNorm(x, 3)).toThrow(/normalized_shape/);
  });

  it("embedding gathers rows by integer id", () => {
    const w = f32([3, 2], [0, 0, 1, 2, 3, 4]);
    const ids = Var.from(fromArray("int64", [3], [2n, 1n, 2n]));
    expectClose(F.embedding(ids, w), [3, 4, 1, 2, 3, 4], 0, [3, 2]);
    expect(() => F.embedding(Var.from(f32([1], [0])), w)).toThrow(/ids must be int64 or int32/);
  });

  it("dropout: identity in eval, zero-or-scaled in training", () => {
    const x = Var.from(f32([1000], new Array<number>(1000).fill(1)));
    expect(F.dropout(x, 0.3).toArray()).toEqual(x.toArray());
    const y = F.dropout(x, 0.5, true).toArray();
    expect(y.every((e) => e === 0 || e === 2)).toBe(true);
    const kept = y.filter((e) => e === 2).length;
    expect(kept).toBeGreaterThan(400);
    expect(kept).toBeLessThan(600);
    expect(F.dropout(x, 1, true).toArray().every((e) => e === 0)).toBe(true);
    expect(F.dropout(x, 0, true).toArray()).toEqual(x.toArray());
    expect(() => F.dropout(x, 1.5)).toThrow(/between 0 and 1/);
  });
});

describe("every functional op exports to a program that computes what eager computed", () => {
  const unary: [string, (x: Var) => Var][] = [
    ["relu", F.relu], ["relu6", F.relu6], ["hardswish", F.hardswish], ["hardsigmoid", F.hardsigmoid],
    ["sigmoid", F.sigmoid], ["tanh", F.tanh], ["gelu", (x) => F.gelu(x)], ["gelu tanh", (x) => F.gelu(x, "tanh")],
    ["softmax", (x) => F.softmax(x, -1)], ["neg", F.neg], ["exp", F.exp], ["abs", F.abs],
    ["sqrt of abs", (x) => F.sqrt(F.abs(x))], ["log of exp", (x) => F.log(F.exp(x))],
    ["clamp", (x) => F.clamp(x, -0.5, 0.25)], ["clamp max", (x) => F.clamp(x, undefined, 0)],
    ["add number", (x) => F.add(x, 0.5)], ["rsub number", (x) => F.sub(1, x)], ["mul self", (x) => F.mul(x, x)],
    ["div number", (x) => F.div(x, 3)], ["pow", (x) => F.pow(x, 2)], ["maximum", (x) => F.maximum(x, 0.1)],
    ["where", (x) => F.where(F.gt(x, 0), x, F.mul(x, 0.1))], ["mean", (x) => F.mean(x, -1, true)], ["sum", (x) => F.sum(x)],
    ["flatten", (x) => F.flatten(x)], ["reshape", (x) => F.reshape(x, [-1])], ["transpose", (x) => F.transpose(x, 0, -1)],
    ["cat", (x) => F.cat([x, F.relu(x)], -1)], ["matmul", (x) => F.matmul(x, F.transpose(x, 0, -1))], ["identity", F.identity],
    ["dropout eval", (x) => F.dropout(x, 0.2)],
  ];
  for (const [name, f] of unary) {
    it(name, () => {
      fc.assert(
        fc.property(fc.integer({ min: 0, max: 1e6 }), fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 5 }), (seed, m, n) => {
          const { ep } = checkExport(new Fn(f), [randTensor(seed, [m, n], -3, 3)]);
          expect(ep.graph.nodes.length).toBeGreaterThan(0);
        }),
        { numRuns: 15 },
      );
    });
  }

  it("conv2d / pooling / normalization on random 4-D inputs", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1e6 }), fc.integer({ min: 3, max: 6 }), (seed, size) => {
        const x = randTensor(seed, [2, 2, size, size]);
        const w = randTensor(seed + 1, [3, 2, 3, 3]);
        const b = randTensor(seed + 2, [3]);
        const stats = [randTensor(seed + 3, [2], -1, 1), randTensor(seed + 4, [2], 0.5, 2)] as const;
        const fns: ((x: Var) => Var)[] = [
          (x) => F.conv2d(x, w, b, { padding: 1 }),
          (x) => F.convTranspose2d(x, randTensor(seed + 5, [2, 3, 2, 2]), b, { stride: 2, padding: 1 }),
          (x) => F.maxPool2d(x, 2, { stride: 1, ceilMode: true }),
          (x) => F.avgPool2d(x, 3, { stride: 2, padding: 1 }),
          (x) => F.adaptiveAvgPool2d(x, 2),
          (x) => F.batchNorm(x, stats[0], stats[1], randTensor(seed + 6, [2]), undefined, { eps: 1e-3 }),
          (x) => F.layerNorm(x, [size, size]),
        ];
        for (const f of fns) checkExport(new Fn(f), [x]);
      }),
      { numRuns: 10 },
    );
  });

  it("number operands take the tensor's dtype (int32 stays int32)", () => {
    const x = fromArray("int32", [3], [1, 2, 3]);
    const { eager, ep } = checkExport(new Fn((a) => F.add(a, 2)), [x]);
    expect(eager[0]!.dtype).toBe("int32");
    expect(Array.from(toFloat64(eager[0]!))).toEqual([3, 4, 5]);
    const lifted = Object.entries(ep.graph.constants).filter(([, c]) => c.kind === "constant");
    expect(lifted.map(([, c]) => c.tensor.dtype)).toEqual(["int32"]);
  });
});
