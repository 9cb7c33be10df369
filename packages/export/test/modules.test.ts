import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { fromArray, isQforgeError, toFloat64 } from "@qforge/ir";
import {
  AdaptiveAvgPool2d, AvgPool2d, BatchNorm2d, Conv2d, ConvTranspose2d, Dropout, Embedding, Flatten, GELU, Hardsigmoid, Hardswish,
  Identity, LayerNorm, Linear, manualSeed, MaxPool2d, Module, ModuleList, ReLU, ReLU6, Sequential, Sigmoid, Softmax, Tanh, Var,
} from "@qforge/export";
import { arange, checkExport, expectClose, f32, randTensor } from "./helpers.js";

describe("modules compute their torch formulas eagerly", () => {
  it("Linear with and without bias", () => {
    const fc1 = new Linear(2, 3);
    fc1.loadStateDict({ weight: f32([3, 2], [1, 2, 3, 4, 5, 6]), bias: f32([3], [0.5, -1, 0]) });
    expectClose(fc1.call(Var.from(f32([2, 2], [1, 1, 0, 1]))), [3.5, 6, 11, 2.5, 3, 6], 0, [2, 3]);
    const noBias = new Linear(2, 3, { bias: false });
    expect(noBias.bias).toBeUndefined();
    expect(Object.keys(noBias.stateDict())).toEqual(["weight"]);
  });

  it("Conv2d with stride, padding, groups and bias", () => {
    const conv = new Conv2d(2, 2, 2, { groups: 2, stride: 1, padding: 0 });
    conv.loadStateDict({ weight: f32([2, 1, 2, 2], [1, 1, 1, 1, 1, 0, 0, 1]), bias: f32([2], [0, 100]) });
    const x = Var.from(arange([1, 2, 3, 3]));
    // channel 0: window sums of 0..8; channel 1: x[i][j] + x[i+1][j+1] of 9..17, plus 100.
    expectClose(conv.call(x), [8, 12, 20, 24, 122, 124, 128, 130], 0, [1, 2, 2, 2]);
    expect(new Conv2d(3, 4, 3, { padding: "same" }).call(Var.from(randTensor(1, [1, 3, 5, 5]))).shape).toEqual([1, 4, 5, 5]);
    expect(new Conv2d(3, 4, 3, { padding: "valid", stride: 2 }).call(Var.from(randTensor(1, [1, 3, 7, 7]))).shape).toEqual([1, 4, 3, 3]);
    expect(new Conv2d(1, 1, [1, 3], { dilation: [1, 2] }).call(Var.from(randTensor(1, [1, 1, 2, 5]))).shape).toEqual([1, 1, 2, 1]);
  });

  it("Conv2d validates its configuration like torch", () => {
    const bad: [() => unknown, RegExp][] = [
      [() => new Conv2d(3, 4, 3, { groups: 2 }), /in_channels \(3\) must be divisible by groups/],
      [() => new Conv2d(4, 3, 3, { groups: 2 }), /out_channels \(3\) must be divisible by groups/],
      [() => new Conv2d(3, 4, 3, { padding: "same", stride: 2 }), /strided/],
      [() => new Conv2d(3, 4, 0), /kernel_size/],
    ];
    for (const [f, re] of bad) {
      try {
        f();
        expect.fail("no error");
      } catch (e) {
        expect(isQforgeError(e, "BAD_CONFIG")).toBe(true);
        expect(String(e)).toMatch(re);
      }
    }
  });

  it("ConvTranspose2d upsamples with weight [in, out/groups, kh, kw]", () => {
    const up = new ConvTranspose2d(1, 1, 2, { stride: 2 });
    expect(up.weight.shape).toEqual([1, 1, 2, 2]);
    up.loadStateDict({ weight: f32([1, 1, 2, 2], [1, 2, 3, 4]), bias: f32([1], [0]) });
    expectClose(up.call(Var.from(f32([1, 1, 1, 2], [1, 2]))), [1, 2, 2, 4, 3, 4, 6, 8], 0, [1, 1, 2, 4]);
    expect(new ConvTranspose2d(4, 6, 3, { groups: 2, stride: 2, padding: 1, outputPadding: 1 }).weight.shape).toEqual([4, 3, 3, 3]);
  });

  it("BatchNorm2d: eval uses running stats; train uses batch stats and updates them", () => {
    const bn = new BatchNorm2d(2, { eps: 0 });
    bn.loadStateDict({
      weight: f32([2], [2, 1]), bias: f32([2], [0, 1]), running_mean: f32([2], [1, -1]), running_var: f32([2], [4, 0.25]),
      num_batches_tracked: fromArray("int64", [], [0n]),
    });
    bn.eval();
    expectClose(bn.call(Var.from(f32([1, 2, 1, 1], [3, 0]))), [2, 3], 1e-6);

    const fresh = new BatchNorm2d(1, { eps: 0 });
    expect(fresh.training).toBe(true);
    expectClose(fresh.call(Var.from(f32([2, 1, 1, 1], [1, 3]))), [-1, 1], 1e-6);
    // running = 0.9 * old + 0.1 * batch; the variance fed in is unbiased (2, not 1).
    expectClose(fresh.running_mean.data, [0.2], 1e-6);
    expectClose(fresh.running_var.data, [0.9 + 0.2], 1e-6);
    expect(fresh.num_batches_tracked.data.data[0]).toBe(1n);
    expect(() => fresh.call(Var.from(f32([2, 1], [1, 2])))).toThrow(/expected 4D input/);
  });

  it("BatchNorm2d without affine parameters has only buffers", () => {
    const bn = new BatchNorm2d(3, { affine: false });
    expect(Object.keys(bn.stateDict())).toEqual(["running_mean", "running_var", "num_batches_tracked"]);
    bn.eval();
    expectClose(bn.call(Var.from(f32([1, 3, 1, 1], [1, 2, 3]))), [1, 2, 3].map((v) => v / Math.sqrt(1 + 1e-5)), 1e-6);
  });

  it("LayerNorm normalizes the trailing dims, with affine parameters", () => {
    const ln = new LayerNorm(4, { eps: 0 });
    const s = Math.sqrt(1.25);
    expectClose(ln.call(Var.from(f32([1, 4], [1, 2, 3, 4]))), [-1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s], 1e-6);
    expect(Object.keys(new LayerNorm([2, 3], { bias: false }).stateDict())).toEqual(["weight"]);
    expect(Object.keys(new LayerNorm(3, { elementwiseAffine: false }).stateDict())).toEqual([]);
  });

  it("Embedding looks rows up and zeroes the padding row at init", () => {
    manualSeed(3);
    const emb = new Embedding(4, 3, { paddingIdx: -1 });
    expect(emb.paddingIdx).toBe(3);
    expect(Array.from(toFloat64(emb.weight.data)).slice(9)).toEqual([0, 0, 0]);
    const ids = Var.from(fromArray("int64", [2, 2], [0n, 3n, 1n, 0n]));
    const w = Array.from(toFloat64(emb.weight.data));
    expectClose(emb.call(ids), [...w.slice(0, 3), 0, 0, 0, ...w.slice(3, 6), ...w.slice(0, 3)], 0, [2, 2, 3]);
  });

  it("activations, pooling, flatten, identity and dropout modules", () => {
    const x = Var.from(f32([1, 1, 2, 2], [-4, -1, 1.5, 4]));
    expectClose(new ReLU().call(x), [0, 0, 1.5, 4], 0);
    expectClose(new ReLU6().call(F32x([-4, 7])), [0, 6], 0);
    expectClose(new Hardswish().call(x), [0, -1 / 3, 1.5 * 4.5 / 6, 4], 1e-6);
    expectClose(new Hardsigmoid().call(x), [0, 1 / 3, 0.75, 1], 1e-6);
    expectClose(new Sigmoid().call(F32x([0])), [0.5], 1e-6);
    expectClose(new Tanh().call(F32x([0])), [0], 0);
    expectClose(new GELU({ approximate: "tanh" }).call(F32x([0])), [0], 0);
    expectClose(new Softmax(1).call(Var.from(f32([1, 2], [1, 1]))), [0.5, 0.5], 1e-7);
    const grid = Var.from(arange([1, 1, 4, 4]));
    expectClose(new MaxPool2d(2).call(grid), [5, 7, 13, 15], 0);
    expectClose(new AvgPool2d(2).call(grid), [2.5, 4.5, 10.5, 12.5], 0);
    expectClose(new AdaptiveAvgPool2d([1, 2]).call(grid), [6.5, 8.5], 0, [1, 1, 1, 2]);
    expect(new Flatten().call(grid).shape).toEqual([1, 16]);
    expect(new Flatten(2).call(grid).shape).toEqual([1, 1, 16]);
    expectClose(new Identity().call(grid), Array.from({ length: 16 }, (_, i) => i), 0);
    const drop = new Dropout(0.5);
    expect(drop.call(grid).toArray().filter((v, i) => v !== 0 && v !== 2 * i)).toEqual([]);
    expect(drop.eval().call(grid).toArray()).toEqual(grid.toArray());
  });

  it("Sequential chains modules; ModuleList indexes them and has no forward", () => {
    const seq = new Sequential(new ReLU(), new Flatten(0));
    expectClose(seq.call(Var.from(f32([2, 1], [-1, 2]))), [0, 2], 0, [2]);
    expect(seq.length).toBe(2);
    expect(seq.at(-1)).toBeInstanceOf(Flatten);
    const list = new ModuleList([new ReLU(), new Tanh()]);
    expect([...list].map((m) => m.constructor.name)).toEqual(["ReLU", "Tanh"]);
    expect(() => list.call()).toThrow(/ModuleList has no forward/);
    expect(() => list.at(5)).toThrow(/out of range/);
  });
});

function F32x(values: number[]): Var {
  return Var.from(f32([values.length], values));
}

describe("every module exports to a program equal to eager (random shapes and seeds)", () => {
  const seedArb = fc.integer({ min: 0, max: 1 << 20 });

  it("Linear over random batch dims", () => {
    fc.assert(fc.property(seedArb, fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 6 }), fc.array(fc.integer({ min: 1, max: 3 }), { maxLength: 2 }), fc.boolean(), (seed, i, o, batch, bias) => {
      manualSeed(seed);
      checkExport(new Linear(i, o, { bias }), [randTensor(seed, [...batch, i])]);
    }), { numRuns: 25 });
  });

  it("Conv2d over stride/padding/dilation/groups/bias", () => {
    fc.assert(fc.property(
      fc.record({
        seed: seedArb, groups: fc.constantFrom(1, 2), cin: fc.integer({ min: 1, max: 2 }), cout: fc.integer({ min: 1, max: 2 }),
        k: fc.integer({ min: 1, max: 3 }), stride: fc.integer({ min: 1, max: 2 }), pad: fc.constantFrom<number | "same" | "valid">(0, 1, "same", "valid"),
        dilation: fc.integer({ min: 1, max: 2 }), size: fc.integer({ min: 5, max: 8 }), bias: fc.boolean(),
      }),
      (c) => {
        manualSeed(c.seed);
        const stride = c.pad === "same" ? 1 : c.stride;
        const conv = new Conv2d(c.cin * c.groups, c.cout * c.groups, c.k, { groups: c.groups, stride, padding: c.pad, dilation: c.dilation, bias: c.bias });
        checkExport(conv, [randTensor(c.seed + 1, [2, c.cin * c.groups, c.size, c.size])]);
      },
    ), { numRuns: 30 });
  });

  it("ConvTranspose2d over stride/padding/output padding/groups", () => {
    fc.assert(fc.property(seedArb, fc.constantFrom(1, 2), fc.integer({ min: 1, max: 3 }), fc.integer({ min: 1, max: 2 }), fc.integer({ min: 0, max: 1 }), (seed, groups, k, stride, pad) => {
      manualSeed(seed);
      const outPad = stride > 1 ? 1 : 0;
      const pad2 = Math.min(pad, k - 1);
      checkExport(new ConvTranspose2d(2 * groups, 2 * groups, k, { groups, stride, padding: pad2, outputPadding: outPad }), [randTensor(seed, [1, 2 * groups, 3, 4])]);
    }), { numRuns: 20 });
  });

  it("BatchNorm2d (eval) with random statistics, LayerNorm, Embedding", () => {
    fc.assert(fc.property(seedArb, fc.integer({ min: 1, max: 4 }), fc.integer({ min: 1, max: 4 }), (seed, c, n) => {
      manualSeed(seed);
      const bn = new BatchNorm2d(c);
      bn.running_mean.assign(randTensor(seed, [c]));
      bn.running_var.assign(randTensor(seed + 1, [c], 0.1, 3));
      bn.weight!.assign(randTensor(seed + 2, [c]));
      checkExport(bn.eval(), [randTensor(seed + 3, [n, c, 3, 2])]);
      const ln = new LayerNorm([c, 3]);
      ln.weight!.assign(randTensor(seed + 4, [c, 3]));
      checkExport(ln, [randTensor(seed + 5, [n, c, 3])]);
      const emb = new Embedding(5, c);
      checkExport(emb, [fromArray("int64", [n, 2], Array.from({ length: 2 * n }, (_, i) => BigInt((seed + i) % 5)))]);
    }), { numRuns: 20 });
  });

  it("activation, pooling and shape modules", () => {
    const mods: Module[] = [
      new ReLU(), new ReLU6(), new Hardswish(), new Hardsigmoid(), new Sigmoid(), new Tanh(), new GELU(), new GELU({ approximate: "tanh" }),
      new Softmax(1), new MaxPool2d(2, { ceilMode: true }), new MaxPool2d(3, { stride: 1, padding: 1, dilation: 1 }), new AvgPool2d(2, { stride: 1 }),
      new AvgPool2d(3, { stride: 2, padding: 1, countIncludePad: false }), new AdaptiveAvgPool2d(2), new AdaptiveAvgPool2d([3, null]),
      new Flatten(), new Flatten(0, 1), new Identity(), new Dropout(0.3).eval(),
    ];
    fc.assert(fc.property(seedArb, fc.integer({ min: 3, max: 6 }), fc.integer({ min: 3, max: 6 }), (seed, h, w) => {
      for (const m of mods) checkExport(m, [randTensor(seed, [2, 3, h, w], -4, 4)]);
    }), { numRuns: 10 });
  });

  it("a composition: conv-bn-relu stacks in Sequential with a residual and a head", () => {
    class Net extends Module {
      features = new Sequential(new Conv2d(3, 4, 3, { padding: 1 }), new BatchNorm2d(4), new ReLU6());
      skip = new Conv2d(3, 4, 1);
      head = new Sequential(new AdaptiveAvgPool2d(1), new Flatten(), new Linear(4, 2), new Softmax(-1));
      forward(x: Var): Var {
        return this.head.call(this.features.call(x).add(this.skip.call(x)));
      }
    }
    fc.assert(fc.property(seedArb, fc.integer({ min: 1, max: 3 }), (seed, n) => {
      manualSeed(seed);
      const net = new Net();
      net.train();
      net.call(Var.from(randTensor(seed, [4, 3, 5, 5])));
      const { eager } = checkExport(net.eval(), [randTensor(seed + 1, [n, 3, 5, 5])]);
      const probs = Array.from(toFloat64(eager[0]!));
      for (let i = 0; i < n; i++) expect(probs[2 * i]! + probs[2 * i + 1]!).toBeCloseTo(1, 5);
    }), { numRuns: 10 });
  });
});
