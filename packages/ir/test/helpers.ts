import { GraphBuilder, fromArray, type Graph, type Tensor } from "../src/index.js";

/** Deterministic pseudo-random floats in [-1, 1) (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296 * 2 - 1;
  };
}

export function randTensor(shape: number[], seed: number, lo = -1, hi = 1): Tensor {
  const r = rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return fromArray("float32", shape, Array.from({ length: n }, () => lo + ((r() + 1) / 2) * (hi - lo)));
}

/** x -> conv -> batch_norm -> relu -> identity -> output */
export function convBnGraph(seed = 1, cin = 3, cout = 4, withBias = true): Graph {
  const b = new GraphBuilder();
  const x = b.input("x", "float32", [1, cin, 6, 6]);
  const w = b.constant("conv.weight", randTensor([cout, cin, 3, 3], seed), "parameter");
  const bias = withBias ? b.constant("conv.bias", randTensor([cout], seed + 1), "parameter") : "";
  const gamma = b.constant("bn.weight", randTensor([cout], seed + 2, 0.5, 1.5), "parameter");
  const beta = b.constant("bn.bias", randTensor([cout], seed + 3), "parameter");
  const mean = b.constant("bn.running_mean", randTensor([cout], seed + 4), "buffer");
  const variance = b.constant("bn.running_var", randTensor([cout], seed + 5, 0.1, 2), "buffer");
  const inputs = withBias ? [x, w, bias] : [x, w];
  const c = b.node1("conv", inputs, { pads: [1, 1, 1, 1] }, { meta: { moduleStack: [{ path: "conv", type: "Conv2d" }] } });
  const n = b.node1("batch_norm", [c, gamma, beta, mean, variance], { epsilon: 1e-5 }, { meta: { moduleStack: [{ path: "bn", type: "BatchNorm2d" }] } });
  const r = b.node1("relu", [n]);
  const i = b.node1("identity", [r]);
  b.output(i);
  return b.build();
}
