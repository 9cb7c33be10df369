import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { isQforgeError, stateDict as programStateDict, tensorsEqual, zeros } from "@qforge/ir";
import {
  BatchNorm2d, Buffer, Conv2d, Dropout, Generator, kaimingUniformTensor, Linear, manualSeed, Module, ModuleList, normalTensor, Parameter, ReLU,
  Sequential, Var, exportModel,
} from "@qforge/export";
import { f32, randTensor } from "./helpers.js";

class Block extends Module {
  conv = new Conv2d(3, 4, 3, { padding: 1, bias: false });
  bn = new BatchNorm2d(4);
  relu = new ReLU();
  forward(x: Var): Var {
    return this.relu.call(this.bn.call(this.conv.call(x)));
  }
}

class Net extends Module {
  scale = new Parameter(f32([1], [2]));
  features = new Sequential(new Block(), new ReLU());
  heads = new ModuleList([new Linear(4, 2), new Linear(4, 3, { bias: false })]);
  step = new Buffer(f32([], [0]));
  forward(x: Var): Var {
    const h = this.features.call(x).mean([2, 3]).mul(this.scale);
    return this.heads.at(0).call(h);
  }
}

describe("qualified names", () => {
  it("follow torch's state_dict: own parameters, own buffers, then children in declaration order", () => {
    expect(Object.keys(new Net().stateDict())).toEqual([
      "scale", "step",
      "features.0.conv.weight",
      "features.0.bn.weight", "features.0.bn.bias", "features.0.bn.running_mean", "features.0.bn.running_var", "features.0.bn.num_batches_tracked",
      "heads.0.weight", "heads.0.bias", "heads.1.weight",
    ]);
  });

  it("namedModules, namedParameters and namedBuffers", () => {
    const net = new Net();
    expect(net.namedModules().map(([n, m]) => `${n}:${m.constructor.name}`)).toEqual([
      ":Net", "features:Sequential", "features.0:Block", "features.0.conv:Conv2d", "features.0.bn:BatchNorm2d", "features.0.relu:ReLU",
      "features.1:ReLU", "heads:ModuleList", "heads.0:Linear", "heads.1:Linear",
    ]);
    expect(net.namedParameters().map(([n]) => n)).toEqual([
      "scale", "features.0.conv.weight", "features.0.bn.weight", "features.0.bn.bias", "heads.0.weight", "heads.0.bias", "heads.1.weight",
    ]);
    expect(net.namedBuffers().map(([n]) => n)).toEqual(["step", "features.0.bn.running_mean", "features.0.bn.running_var", "features.0.bn.num_batches_tracked"]);
    expect(net.children().map((m) => m.constructor.name)).toEqual(["Sequential", "ModuleList"]);
    expect(net.parameters()).toHaveLength(7);
    expect(net.buffers()).toHaveLength(4);
  });

  it("Sequential built from a record uses the keys", () => {
    const seq = new Sequential({ fc: new Linear(2, 2), act: new ReLU() });
    expect(Object.keys(seq.stateDict())).toEqual(["fc.weight", "fc.bias"]);
    expect(seq.namedChildren().map(([k]) => k)).toEqual(["fc", "act"]);
  });

  it("modules pushed into a ModuleList get the next index", () => {
    const list = new ModuleList<Linear>().push(new Linear(1, 1)).push(new Linear(1, 1, { bias: false }));
    expect(Object.keys(list.stateDict())).toEqual(["0.weight", "0.bias", "1.weight"]);
  });

  it("tied (shared) modules and parameters are walked once but keep every state_dict name", () => {
    class Tied extends Module {
      a = new Linear(2, 2);
      b = this.a;
      forward(x: Var): Var {
        return this.b.call(this.a.call(x));
      }
    }
    const m = new Tied();
    expect(m.namedParameters().map(([n]) => n)).toEqual(["a.weight", "a.bias"]);
    expect(Object.keys(m.stateDict())).toEqual(["a.weight", "a.bias", "b.weight", "b.bias"]);
    const ep = exportModel(m, [f32([1, 2], [1, 2])]);
    expect(Object.keys(programStateDict(ep))).toEqual(["a.weight", "a.bias"]);
    expect(ep.graph.nodes.map((n) => n.meta.moduleStack?.at(-1)?.path)).toEqual(["a", "a"]);
  });

  it("a plain array of modules is rejected instead of silently losing its parameters", () => {
    class Bad extends Module {
      layers = [new Linear(1, 1)];
      forward(x: Var): Var {
        return x;
      }
    }
    try {
      new Bad().stateDict();
      expect.fail("no error");
    } catch (e) {
      expect(isQforgeError(e, "BAD_CONFIG")).toBe(true);
      expect((e as Error).message).toMatch(/Bad\.layers/);
      expect((e as { hint?: string }).hint).toMatch(/ModuleList/);
    }
  });
});

describe("stateDict / loadStateDict", () => {
  it("round-trips: a model loaded with another's state computes the same outputs", () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 1e6 }), (seed) => {
      manualSeed(seed);
      const a = new Net();
      a.train();
      a.call(Var.from(randTensor(seed, [2, 3, 4, 4])));
      a.eval();
      manualSeed(seed + 1);
      const b = new Net().eval();
      const x = Var.from(randTensor(seed + 2, [1, 3, 4, 4]));
      const result = b.loadStateDict(a.stateDict());
      expect(result).toEqual({ missingKeys: [], unexpectedKeys: [] });
      for (const [k, t] of Object.entries(a.stateDict())) expect(tensorsEqual(b.stateDict()[k]!, t)).toBe(true);
      expect(tensorsEqual(b.call(x).toTensor(), a.call(x).toTensor())).toBe(true);
    }), { numRuns: 10 });
  });

  it("copies: changing the source dict afterwards does not change the module", () => {
    const lin = new Linear(2, 1);
    const sd = { weight: f32([1, 2], [1, 2]), bias: f32([1], [3]) };
    lin.loadStateDict(sd);
    (sd.weight.data as Float32Array)[0] = 100;
    expect(Array.from(lin.weight.data.data as Float32Array)).toEqual([1, 2]);
  });

  it("strict mode reports missing and unexpected keys; non-strict returns them", () => {
    const lin = new Linear(2, 1);
    const sd = { weight: f32([1, 2], [1, 2]), extra: f32([1], [0]) };
    try {
      lin.loadStateDict(sd);
      expect.fail("no error");
    } catch (e) {
      expect(isQforgeError(e, "BAD_INPUT")).toBe(true);
      expect((e as Error).message).toMatch(/missing keys: bias; unexpected keys: extra/);
    }
    expect(lin.loadStateDict(sd, { strict: false })).toEqual({ missingKeys: ["bias"], unexpectedKeys: ["extra"] });
    expect(Array.from(lin.weight.data.data as Float32Array)).toEqual([1, 2]);
  });

  it("a shape or dtype mismatch fails and leaves the module unchanged", () => {
    const lin = new Linear(2, 1);
    const before = lin.stateDict();
    expect(() => lin.loadStateDict({ weight: f32([1, 2], [1, 2]), bias: f32([2], [0, 0]) })).toThrow(/'bias' has shape \[1\], got \[2\]/);
    expect(() => lin.loadStateDict({ weight: f32([1, 2], [1, 2]), bias: zeros("float64", [1]) })).toThrow(/'bias' is float32, got float64/);
    expect(lin.stateDict()).toEqual(before);
  });
});

describe("train / eval", () => {
  it("sets the flag recursively; modules start in training mode", () => {
    const net = new Net();
    expect(net.modules().every((m) => m.training)).toBe(true);
    expect(net.eval()).toBe(net);
    expect(net.modules().every((m) => !m.training)).toBe(true);
    net.train();
    expect(net.modules().every((m) => m.training)).toBe(true);
    net.train(false);
    expect(net.modules().some((m) => m.training)).toBe(false);
  });

  it("train mode changes batch norm and dropout behaviour", () => {
    manualSeed(0);
    const seq = new Sequential(new BatchNorm2d(1), new Dropout(0.5));
    const x = Var.from(randTensor(4, [3, 1, 2, 2], -2, 2));
    const evalOut = seq.eval().call(x).toArray();
    const trainOut = seq.train().call(x).toArray();
    expect(trainOut).not.toEqual(evalOut);
    // Training: batch statistics, then dropout zeroes about half (12 elements, seeded).
    expect(trainOut.some((v) => v === 0)).toBe(true);
    // Eval: fresh running stats (mean 0, var 1) and no dropout.
    const xs = x.toArray();
    evalOut.forEach((v, i) => expect(Math.abs(v - xs[i]! / Math.sqrt(1 + 1e-5))).toBeLessThan(1e-6));
  });
});

describe("seeded initialization", () => {
  it("the same seed builds the same weights; another seed does not", () => {
    fc.assert(fc.property(fc.integer({ min: 0, max: 2 ** 31 }), (seed) => {
      manualSeed(seed);
      const a = new Net().stateDict();
      manualSeed(seed);
      const b = new Net().stateDict();
      manualSeed(seed + 1);
      const c = new Net().stateDict();
      for (const k of Object.keys(a)) expect(tensorsEqual(a[k]!, b[k]!)).toBe(true);
      expect(tensorsEqual(a["features.0.conv.weight"]!, c["features.0.conv.weight"]!)).toBe(false);
    }), { numRuns: 20 });
  });

  it("Linear and Conv2d weights and biases lie within torch's kaiming bound 1/sqrt(fan_in)", () => {
    manualSeed(7);
    const lin = new Linear(50, 40);
    const conv = new Conv2d(6, 8, 3, { groups: 2 });
    const check = (t: { data: ArrayLike<number> }, fanIn: number): void => {
      const bound = 1 / Math.sqrt(fanIn);
      const values = Array.from(t.data);
      expect(Math.max(...values.map(Math.abs))).toBeLessThanOrEqual(bound);
      // Uniform over [-b, b]: the largest magnitude of many draws is close to b.
      expect(Math.max(...values.map(Math.abs))).toBeGreaterThan(0.9 * bound);
    };
    check(lin.weight.data as never, 50);
    check(lin.bias!.data as never, 50);
    check(conv.weight.data as never, 27);
    expect(conv.weight.shape).toEqual([8, 3, 3, 3]);
  });

  it("normal draws have mean ~0 and std ~1; generators are independent streams", () => {
    const t = normalTensor([20000], 0, 1, new Generator(5));
    const v = Array.from(t.data as Float32Array);
    const mean = v.reduce((a, b) => a + b, 0) / v.length;
    const std = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length);
    expect(Math.abs(mean)).toBeLessThan(0.03);
    expect(Math.abs(std - 1)).toBeLessThan(0.03);
    const g1 = new Generator(9);
    const g2 = new Generator(9);
    expect(tensorsEqual(kaimingUniformTensor([10], 4, g1), kaimingUniformTensor([10], 4, g2))).toBe(true);
    g2.manualSeed(9);
    expect(g2.random()).toBe(new Generator(9).random());
  });
});
