/**
 * Shared fixtures of the prepare / convert / QAT tests: small models built with GraphBuilder,
 * hand-written quantizers (the style of torch's test_quantize_pt2e.py, which annotates nodes in a
 * test-local Quantizer), seeded random data and node counting.
 */
import {
  fromArray, GraphBuilder, programFromGraph, tensor,
  type ExportedProgram, type Graph, type Tensor,
} from "@qforge/ir";
import {
  annotateGraph, validateAnnotations,
  type AnnotateContext, type FixedQParamsQuantizationSpec, type QuantizationSpec, type Quantizer,
} from "@qforge/quantizer";

/** mulberry32: a small deterministic PRNG. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Uniform float32 values in [lo, hi). */
export function randTensor(shape: readonly number[], seed: number, lo = -1, hi = 1): Tensor {
  const r = rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const d = new Float32Array(n);
  for (let i = 0; i < n; i++) d[i] = lo + (hi - lo) * r();
  return tensor("float32", shape, d);
}

/** Activations: int8 affine per tensor, MinMaxObserver (deterministic and fast). */
export const act: QuantizationSpec = {
  kind: "spec", dtype: "int8", quantMin: -128, quantMax: 127, qscheme: "per_tensor_affine",
  observerOrFakeQuant: { kind: "MinMaxObserver", options: { eps: 2 ** -12 } },
};

/** Weights: int8 symmetric per output channel. */
export const weightPerChannel: QuantizationSpec = {
  kind: "spec", dtype: "int8", quantMin: -127, quantMax: 127, qscheme: "per_channel_symmetric", chAxis: 0,
  observerOrFakeQuant: { kind: "PerChannelMinMaxObserver", options: { eps: 2 ** -12 } },
};

/** Weights: int8 symmetric per tensor. */
export const weightPerTensor: QuantizationSpec = {
  kind: "spec", dtype: "int8", quantMin: -127, quantMax: 127, qscheme: "per_tensor_symmetric",
  observerOrFakeQuant: { kind: "MinMaxObserver", options: { eps: 2 ** -12 } },
};

/** Sigmoid's fixed output qparams for int8 (scale 1/256, zero point -128). */
export const sigmoidFixed: FixedQParamsQuantizationSpec = {
  kind: "fixed", dtype: "int8", scale: 1 / 256, zeroPoint: -128, quantMin: -128, quantMax: 127, qscheme: "per_tensor_affine",
};

/** A test-local Quantizer: `annotate` runs `fn` inside annotateGraph. */
export function quantizerOf(fn: (ctx: AnnotateContext, g: Graph) => void): Quantizer {
  return {
    transformForAnnotation: (g) => g,
    annotate: (g) => annotateGraph(g, (ctx) => fn(ctx, g)),
    validate: (g) => validateAnnotations(g),
  };
}

/**
 * Annotates every conv / linear (input act, weight, output act) and every relu (input and output
 * act): torch's "conv + relu" style test quantizer, without sharing specs.
 */
export const convLinearQuantizer = (weight: QuantizationSpec = weightPerChannel): Quantizer => quantizerOf((ctx, g) => {
  for (const n of g.nodes) {
    if (n.op === "conv" || n.op === "linear") {
      ctx.annotate(n.name, { inputQSpecMap: { [n.inputs[0]!]: act, [n.inputs[1]!]: weight }, outputQSpec: act });
    }
  }
});

/** Node count per op. */
export function countOps(g: Graph): Record<string, number> {
  const out: Record<string, number> = {};
  for (const n of g.nodes) out[n.op] = (out[n.op] ?? 0) + 1;
  return out;
}

export function opCount(g: Graph, op: string): number {
  return g.nodes.filter((n) => n.op === op).length;
}

/** conv(3 -> 4, 3x3, pad 1) -> relu, input [1, 3, 6, 6]. */
export function convRelu(): ExportedProgram {
  const b = new GraphBuilder();
  const x = b.input("x", "float32", [1, 3, 6, 6]);
  const w = b.constant("conv.weight", randTensor([4, 3, 3, 3], 1, -0.5, 0.5), "parameter");
  const bias = b.constant("conv.bias", randTensor([4], 2, -0.1, 0.1), "parameter");
  const c = b.node1("conv", [x, w, bias], { pads: [1, 1, 1, 1] }, { name: "conv" });
  const r = b.node1("relu", [c], {}, { name: "relu" });
  b.output(r);
  return programFromGraph(b.build(), { source: "test", model: "convRelu" });
}

/**
 * The small CNN of the convert tests: conv(3->8) -> batch_norm -> relu -> max_pool -> conv(8->8) ->
 * relu -> adaptive_avg_pool2d -> flatten -> linear(8->10); input [N=2, 3, 8, 8].
 */
export function smallCnn(opts: { bnTraining?: boolean } = {}): ExportedProgram {
  const b = new GraphBuilder();
  const x = b.input("x", "float32", [2, 3, 8, 8]);
  const w1 = b.constant("features.0.weight", randTensor([8, 3, 3, 3], 11, -0.4, 0.4), "parameter");
  const b1 = b.constant("features.0.bias", randTensor([8], 12, -0.1, 0.1), "parameter");
  const gamma = b.constant("features.1.weight", randTensor([8], 13, 0.5, 1.5), "parameter");
  const beta = b.constant("features.1.bias", randTensor([8], 14, -0.2, 0.2), "parameter");
  const mean = b.constant("features.1.running_mean", randTensor([8], 15, -0.3, 0.3), "buffer");
  const variance = b.constant("features.1.running_var", randTensor([8], 16, 0.5, 2), "buffer");
  const w2 = b.constant("features.4.weight", randTensor([8, 8, 3, 3], 17, -0.3, 0.3), "parameter");
  const b2 = b.constant("features.4.bias", randTensor([8], 18, -0.1, 0.1), "parameter");
  const wl = b.constant("fc.weight", randTensor([10, 8], 19, -0.5, 0.5), "parameter");
  const bl = b.constant("fc.bias", randTensor([10], 20, -0.1, 0.1), "parameter");
  const stack = (path: string, type: string) => ({ moduleStack: [{ path, type }] });
  const c1 = b.node1("conv", [x, w1, b1], { pads: [1, 1, 1, 1] }, { name: "conv", meta: stack("features.0", "Conv2d") });
  const bn = b.node1("batch_norm", [c1, gamma, beta, mean, variance], { epsilon: 1e-5, training_mode: opts.bnTraining === true ? 1 : 0 }, { name: "bn", meta: stack("features.1", "BatchNorm2d") });
  const r1 = b.node1("relu", [bn], {}, { name: "relu", meta: stack("features.2", "ReLU") });
  const mp = b.node1("max_pool", [r1], { kernel_shape: [2, 2], strides: [2, 2] }, { name: "max_pool", meta: stack("features.3", "MaxPool2d") });
  const c2 = b.node1("conv", [mp, w2, b2], { pads: [1, 1, 1, 1] }, { name: "conv_1", meta: stack("features.4", "Conv2d") });
  const r2 = b.node1("relu", [c2], {}, { name: "relu_1", meta: stack("features.5", "ReLU") });
  const ap = b.node1("adaptive_avg_pool2d", [r2], { output_size: [1, 1] }, { name: "pool", meta: stack("pool", "AdaptiveAvgPool2d") });
  const fl = b.node1("flatten", [ap], { axis: 1 }, { name: "flatten", meta: stack("flatten", "Flatten") });
  const fc = b.node1("linear", [fl, wl, bl], {}, { name: "fc", meta: stack("fc", "Linear") });
  b.output(fc);
  return programFromGraph(b.build(), { source: "test", model: "smallCnn" });
}

/** A scalar float32 tensor. */
export const f32 = (values: number[], shape: number[] = [values.length]): Tensor => fromArray("float32", shape, values);
