import { numel, toFloat64, type Node } from "@qforge/ir";
import { edge, nodeOutput, sharedWith } from "./annotation.js";
import { fixedQParamsSpec, getBiasQSpec, getInputActQSpec, getOutputActQSpec, getWeightQSpec, type QuantizationConfig } from "./config.js";
import type { PartitionFilter } from "./filters.js";
import type { AnnotateContext } from "./quantizer.js";
import type { QuantizationSpecBase } from "./spec.js";
import { findChains, type OpChoice } from "./views.js";
import { annotateActivationMatmuls, annotateOnnxLinears } from "./onnx-patterns.js";

/**
 * The annotators of torch's XNNPACKQuantizer (xnnpack_quantizer_utils.py `OP_TO_ANNOTATOR`), over the
 * canonical ops. Each one finds its pattern, skips partitions where a node is already annotated (the
 * first annotation wins) or that the stage's filter refuses, and annotates the rest.
 */
export type Annotator = (ctx: AnnotateContext, config: QuantizationConfig, accepts: PartitionFilter) => void;

/** Fused activations of conv/linear: relu, and clip (relu6 / hardtanh), also a clamp. */
const CLAMP_OPS: OpChoice = ["relu", "clip"];

/** May the partition be claimed: nothing in it annotated, and the stage accepts it. */
function claimable(ctx: AnnotateContext, partition: readonly Node[], accepts: PartitionFilter): boolean {
  return !ctx.anyAnnotated(partition.map((n) => n.name)) && accepts(partition);
}

/** Input activation, weight and (if present) bias specs of a conv/linear node: inputs 0, 1, 2. */
function weightedInputMap(node: Node, config: QuantizationConfig): Record<string, QuantizationSpecBase | null> {
  const map: Record<string, QuantizationSpecBase | null> = {};
  const [x, w, b] = node.inputs;
  if (x !== undefined && x !== "") map[x] = getInputActQSpec(config);
  if (w !== undefined && w !== "") map[w] = getWeightQSpec(config);
  if (b !== undefined && b !== "") map[b] = getBiasQSpec(config);
  return map;
}

/** conv/linear (+ batch_norm) (+ activation) chains: inputs on the first node, output on the last. */
function weightedChain(ops: readonly OpChoice[], singleUse: boolean): Annotator {
  return (ctx, config, accepts) => {
    for (const chain of findChains(ctx.graph, ops, { singleUse }, ctx.views)) {
      if (!claimable(ctx, chain, accepts)) continue;
      const first = chain[0]!;
      const last = chain[chain.length - 1]!;
      const output = getOutputActQSpec(config);
      if (chain.length === 1) {
        ctx.annotate(first.name, { inputQSpecMap: weightedInputMap(first, config), outputQSpec: output });
        continue;
      }
      ctx.annotate(first.name, { inputQSpecMap: weightedInputMap(first, config) });
      for (const mid of chain.slice(1, -1)) ctx.claimFloat(mid.name);
      ctx.annotate(last.name, { outputQSpec: output });
    }
  };
}

/** torch `_is_input_large_scalar`: histc (HistogramObserver) only works up to this magnitude. */
const HISTC_UPPER_BOUND = 3.4028235e15;

/**
 * Input specs of add/mul, or undefined when the node must stay float: an input that is not a float32
 * tensor (`_is_input_non_float_tensor`) or a huge scalar constant (`_is_input_large_scalar`).
 */
function binaryInputMap(ctx: AnnotateContext, node: Node, config: QuantizationConfig): Record<string, QuantizationSpecBase | null> | undefined {
  const map: Record<string, QuantizationSpecBase | null> = {};
  for (const v of node.inputs) {
    if (v === "") continue;
    if (ctx.valueType(v)?.dtype !== "float32") return undefined;
    const c = ctx.graph.constants[v];
    if (c !== undefined && numel(c.tensor.shape) === 1 && Math.abs(toFloat64(c.tensor)[0]!) > HISTC_UPPER_BOUND) return undefined;
    map[v] = getInputActQSpec(config);
  }
  return map;
}

function binary(op: string, withRelu: boolean): Annotator {
  return (ctx, config, accepts) => {
    for (const chain of findChains(ctx.graph, withRelu ? [op, "relu"] : [op], {}, ctx.views)) {
      if (!claimable(ctx, chain, accepts)) continue;
      const node = chain[0]!;
      const inputs = binaryInputMap(ctx, node, config);
      if (inputs === undefined) continue;
      const output = getOutputActQSpec(config);
      if (withRelu) {
        ctx.annotate(node.name, { inputQSpecMap: inputs });
        ctx.annotate(chain[1]!.name, { outputQSpec: output });
      } else {
        ctx.annotate(node.name, { inputQSpecMap: inputs, outputQSpec: output });
      }
    }
  };
}

/** The producer node of `value` when its output is annotated with a spec (torch's check before sharing). */
function annotatedProducer(ctx: AnnotateContext, value: string): Node | undefined {
  const v = ctx.views.view(value);
  if (v.kind !== "node" || v.outputIndex !== 0) return undefined;
  const a = ctx.annotation(v.name);
  return a?.annotated === true && a.outputQSpec !== undefined && a.outputQSpec !== null ? v.node : undefined;
}

/**
 * Nodes of the given ops whose first input is a float32 tensor: torch's annotators skip non-float
 * tensors (`_is_input_non_float_tensor`), e.g. the int64 shape arithmetic (shape -> slice -> concat
 * -> reshape) of exported graphs.
 */
function nodesWithOp(ctx: AnnotateContext, ops: readonly string[]): Node[] {
  return ctx.graph.nodes.filter((n) => ops.includes(n.op) && n.inputs.length > 0 && n.inputs[0] !== "" && ctx.valueType(n.inputs[0]!)?.dtype === "float32");
}

/**
 * torch `_annotate_adaptive_avg_pool2d` (here also for average_pool and global_average_pool): the
 * input shares its producer's qparams when that is annotated, else gets the activation spec; the
 * output shares the input edge's.
 */
const averagePools: Annotator = (ctx, config, accepts) => {
  for (const node of nodesWithOp(ctx, ["adaptive_avg_pool2d", "global_average_pool", "average_pool"])) {
    if (!claimable(ctx, [node], accepts)) continue;
    const x = node.inputs[0]!;
    const producer = annotatedProducer(ctx, x);
    const act = getInputActQSpec(config);
    if (producer === undefined && act === null) continue;
    ctx.annotate(node.name, {
      inputQSpecMap: { [x]: producer !== undefined ? sharedWith(nodeOutput(producer.name)) : act },
      outputQSpec: sharedWith(edge(x, node.name)),
    });
  }
};

/**
 * torch `_annotate_cat`: input 0 gets the activation spec, every other input and the output share it
 * (the edge input0 -> cat), so one scale covers the concatenation.
 */
const concat: Annotator = (ctx, config, accepts) => {
  const act = getInputActQSpec(config);
  if (act === null) return;
  for (const node of nodesWithOp(ctx, ["concat"])) {
    if (!claimable(ctx, [node], accepts) || node.inputs.some((v) => v !== "" && ctx.valueType(v)?.dtype !== "float32")) continue;
    const first = node.inputs[0]!;
    const shared = sharedWith(edge(first, node.name));
    const map: Record<string, QuantizationSpecBase | null> = { [first]: act };
    for (const v of node.inputs.slice(1)) if (v !== "" && !(v in map)) map[v] = shared;
    ctx.annotate(node.name, { inputQSpecMap: map, outputQSpec: shared });
  }
};

/** hardswish: quantized in and out with the activation specs (quantized::hardswish takes output qparams). */
const hardswish: Annotator = (ctx, config, accepts) => {
  for (const node of nodesWithOp(ctx, ["hardswish"])) {
    if (!claimable(ctx, [node], accepts)) continue;
    ctx.annotate(node.name, { inputQSpecMap: { [node.inputs[0]!]: getInputActQSpec(config) }, outputQSpec: getOutputActQSpec(config) });
  }
};

/**
 * Ops with a known output range get fixed output qparams, as torch's default qconfig mapping
 * (`_FIXED_QPARAMS_OP_TO_OBSERVER`) does and ATen's quantized kernels assume: sigmoid, softmax and
 * hardsigmoid [0, 1], tanh [-1, 1].
 */
const fixedQParamsOps: Annotator = (ctx, config, accepts) => {
  const out = getOutputActQSpec(config);
  if (out === null) return;
  const ranges: Record<string, "0to1" | "neg1to1"> = { sigmoid: "0to1", softmax: "0to1", hard_sigmoid: "0to1", tanh: "neg1to1" };
  for (const node of nodesWithOp(ctx, Object.keys(ranges))) {
    if (!claimable(ctx, [node], accepts)) continue;
    ctx.annotate(node.name, {
      inputQSpecMap: { [node.inputs[0]!]: getInputActQSpec(config) },
      outputQSpec: fixedQParamsSpec(ranges[node.op]!, out),
    });
  }
};

/**
 * torch `propagate_annotation` and `_annotate_max_pool2d`: ops that only move or select values
 * (max_pool, flatten, reshape, transpose, squeeze, slice, clip, reduce_mean) share their producer's
 * output qparams on input and output — when the producer's output is annotated; otherwise they stay float.
 */
export const SHARE_QPARAMS_OPS: readonly string[] = ["max_pool", "flatten", "reshape", "transpose", "squeeze", "slice", "clip", "reduce_mean"];

const propagate: Annotator = (ctx, _config, accepts) => {
  for (const node of nodesWithOp(ctx, SHARE_QPARAMS_OPS)) {
    if (!claimable(ctx, [node], accepts)) continue;
    const x = node.inputs[0]!;
    const producer = annotatedProducer(ctx, x);
    if (producer === undefined) continue;
    const shared = sharedWith(nodeOutput(producer.name));
    ctx.annotate(node.name, { inputQSpecMap: { [x]: shared }, outputQSpec: shared });
  }
};

/** Annotators by name, like torch's OP_TO_ANNOTATOR; custom quantizers may reuse them. */
export const OP_TO_ANNOTATOR = {
  conv_bn_relu: weightedChain(["conv", "batch_norm", CLAMP_OPS], true),
  conv_bn: weightedChain(["conv", "batch_norm"], true),
  linear_relu: weightedChain(["linear", CLAMP_OPS], false),
  linear: weightedChain(["linear"], false),
  onnx_linear_relu: (ctx, config, accepts) => annotateOnnxLinears(ctx, config, accepts, true),
  onnx_linear: (ctx, config, accepts) => annotateOnnxLinears(ctx, config, accepts, false),
  matmul: annotateActivationMatmuls,
  conv_relu: weightedChain(["conv", CLAMP_OPS], false),
  conv: weightedChain(["conv"], false),
  adaptive_avg_pool2d: averagePools,
  add_relu: binary("add", true),
  add: binary("add", false),
  mul_relu: binary("mul", true),
  mul: binary("mul", false),
  cat: concat,
  hardswish,
  fixed_qparams: fixedQParamsOps,
  propagate,
} as const satisfies Record<string, Annotator>;

export type AnnotatorName = keyof typeof OP_TO_ANNOTATOR;
