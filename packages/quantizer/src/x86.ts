import { QforgeError, type Graph, type Node, type NodeView, type ValueView } from "@qforge/ir";
import { isMatching, P } from "ts-pattern";
import { edge, sharedWith } from "./annotation.js";
import { getBiasQSpec, getInputActQSpec, getOutputActQSpec, getWeightQSpec, type QuantizationConfig } from "./config.js";
import type { PartitionFilter } from "./filters.js";
import { annotateGraph, ConfiguredQuantizer, type AnnotateContext, type AnnotationStage } from "./quantizer.js";
import type { FakeQuantSpec, ObserverSpec, QuantizationSpec, QuantizationSpecBase } from "./spec.js";
import { findChains, matchNodes, type OpChoice } from "./views.js";
import { findOnnxLinears, normalizeOnnxForAnnotation, onnxLinearInputSpecs } from "./onnx-patterns.js";

export interface X86QuantizationOptions {
  isQat?: boolean;
  isDynamic?: boolean;
  /** Activations in 0..127 instead of 0..255, for CPUs without VNNI (torch's reduce_range). Default false. */
  reduceRange?: boolean;
}

const EPS = 2 ** -12;

/**
 * torch's `get_default_x86_inductor_quantization_config` (x86_inductor_quantizer.py; the fbgemm/x86
 * default qconfig): activations uint8 affine [0, 255] ([0, 127] with reduceRange) observed by
 * HistogramObserver (PTQ), FusedMovingAvgObsFakeQuantize (QAT), PlaceholderObserver (dynamic) or
 * FakeQuantize over MovingAverageMinMaxObserver(averaging constant 1) (dynamic QAT); weights int8
 * [-128, 127] per_channel_symmetric (axis 0), PerChannelMinMaxObserver or, for QAT,
 * FusedMovingAvgObsFakeQuantize over MovingAveragePerChannelMinMaxObserver; eps 2^-12; float bias.
 */
export function getDefaultX86InductorQuantizationConfig(opts: X86QuantizationOptions = {}): QuantizationConfig {
  const isQat = opts.isQat ?? false;
  const isDynamic = opts.isDynamic ?? false;
  const quantMax = opts.reduceRange === true ? 127 : 255;
  const actOptions = { dtype: "uint8", qscheme: "per_tensor_affine", quantMin: 0, quantMax, eps: EPS } as const;
  let actObserver: ObserverSpec | FakeQuantSpec;
  if (isQat) {
    actObserver = isDynamic
      ? { kind: "FakeQuantize", observer: { kind: "MovingAverageMinMaxObserver", options: { ...actOptions, averagingConstant: 1 } } }
      : { kind: "FusedMovingAvgObsFakeQuantize", observer: { kind: "MovingAverageMinMaxObserver", options: actOptions } };
  } else {
    actObserver = isDynamic ? { kind: "PlaceholderObserver", options: { ...actOptions, isDynamic: true } } : { kind: "HistogramObserver", options: actOptions };
  }
  const act: QuantizationSpec = {
    kind: "spec", dtype: "uint8", quantMin: 0, quantMax, qscheme: "per_tensor_affine", isDynamic, observerOrFakeQuant: actObserver,
  };
  const weightOptions = { dtype: "int8", qscheme: "per_channel_symmetric", quantMin: -128, quantMax: 127, chAxis: 0, eps: EPS } as const;
  const weight: QuantizationSpec = {
    kind: "spec", dtype: "int8", quantMin: -128, quantMax: 127, qscheme: "per_channel_symmetric", chAxis: 0, isDynamic: false,
    observerOrFakeQuant: isQat
      ? { kind: "FusedMovingAvgObsFakeQuantize", observer: { kind: "MovingAveragePerChannelMinMaxObserver", options: weightOptions } }
      : { kind: "PerChannelMinMaxObserver", options: weightOptions },
  };
  return { inputActivation: act, outputActivation: act, weight, bias: null, isQat };
}

/** torch's `int8_in_int8_out_ops`: int8 in gives int8 out, so their output shares the input's qparams. */
const INT8_IN_INT8_OUT_OPS = ["max_pool", "concat", "average_pool", "adaptive_avg_pool2d", "global_average_pool", "flatten"];
/** torch's `default_quantizable_ops`: what the global config may quantize. */
const DEFAULT_QUANTIZABLE_OPS = new Set([...INT8_IN_INT8_OUT_OPS, "conv", "linear"]);
/** torch's `quantizable_ops` (matmul only when a module-name or operator-type config asks for it). */
const QUANTIZABLE_OPS = new Set([...DEFAULT_QUANTIZABLE_OPS, "matmul"]);

const CONV_UNARY: OpChoice = ["relu", "clip", "hardswish"];
const LINEAR_UNARY: OpChoice = ["relu", "leaky_relu", "tanh", "gelu"];

/** Per-run state: which nodes end a quantized pattern (torch's `_is_output_of_quantized_pattern`). */
interface X86Run {
  readonly ctx: AnnotateContext;
  readonly quantizedOutputs: Set<string>;
}

function skip(run: X86Run, nodes: readonly Node[], accepts: PartitionFilter): boolean {
  return run.ctx.anyAnnotated(nodes.map((n) => n.name)) || !accepts(nodes);
}

function weightedInputs(node: Node, config: QuantizationConfig): Record<string, QuantizationSpecBase | null> {
  const map: Record<string, QuantizationSpecBase | null> = {};
  const [x, w, b] = node.inputs;
  if (x !== undefined && x !== "") map[x] = getInputActQSpec(config);
  if (w !== undefined && w !== "") map[w] = getWeightQSpec(config);
  if (b !== undefined && b !== "") map[b] = getBiasQSpec(config);
  return map;
}

/**
 * conv/linear [+ batch_norm] + add [+ relu] (torch `_annotate_conv2d_binary_unary` and friends): the
 * conv (through the batch norm when there is one) feeds one input of the add, used nowhere else.
 */
function annotateBinary(run: X86Run, config: QuantizationConfig | null, accepts: PartitionFilter, first: "conv" | "linear", withBn: boolean, withRelu: boolean): void {
  const { ctx } = run;
  const producer = withBn
    ? { kind: "node", op: "batch_norm", users: 1, inputs: [{ kind: "node", op: first, users: 1 }, ...P.array()] }
    : { kind: "node", op: first, users: 1 };
  const addPattern = { kind: "node", op: "add", inputs: P.union([producer, P._], [P._, producer]) };
  const root = withRelu ? { kind: "node", op: "relu", inputs: [addPattern, ...P.array()] } : addPattern;
  for (const v of matchNodes(ctx.graph, root as P.Pattern<ValueView>, ctx.views)) {
    const add = (withRelu ? v.inputs[0] : v) as NodeView;
    const idx = isMatching(producer as P.Pattern<unknown>, add.inputs[0] as unknown) ? 0 : 1;
    const bn = withBn ? (add.inputs[idx] as NodeView) : undefined;
    const conv = (withBn ? bn!.inputs[0] : add.inputs[idx]) as NodeView;
    const extra = add.node.inputs[1 - idx]!;
    const partition = [conv.node, ...(bn ? [bn.node] : []), add.node, ...(withRelu ? [v.node] : [])];
    if (skip(run, partition, accepts)) continue;
    if (config === null) {
      for (const n of partition) ctx.claimFloat(n.name);
      continue;
    }
    const last = partition[partition.length - 1]!;
    ctx.annotate(conv.name, { inputQSpecMap: weightedInputs(conv.node, config) });
    if (bn) ctx.claimFloat(bn.name);
    // QAT keeps an output spec on the pattern's end (torch's "remove ... when qat util support pattern matcher").
    const out = config.isQat ? { outputQSpec: getOutputActQSpec(config) } : {};
    ctx.annotate(add.name, { inputQSpecMap: { [extra]: getInputActQSpec(config) }, ...(withRelu ? {} : out) });
    if (withRelu) ctx.annotate(v.name, out);
    run.quantizedOutputs.add(last.name);
  }
}

/** conv/linear [+ batch_norm] [+ unary]: inputs on the first node; the last ends the quantized pattern. */
function annotateChain(run: X86Run, config: QuantizationConfig | null, accepts: PartitionFilter, ops: readonly OpChoice[], singleUse: boolean): void {
  const { ctx } = run;
  for (const chain of findChains(ctx.graph, ops, { singleUse }, ctx.views)) {
    if (skip(run, chain, accepts)) continue;
    if (config === null) {
      for (const n of chain) ctx.claimFloat(n.name);
      continue;
    }
    const [first, ...rest] = chain;
    ctx.annotate(first!.name, { inputQSpecMap: weightedInputs(first!, config) });
    const out = config.isQat && chain.some((n) => n.op === "batch_norm") ? { outputQSpec: getOutputActQSpec(config) } : {};
    rest.forEach((n, i) => (i === rest.length - 1 ? ctx.annotate(n.name, out) : ctx.claimFloat(n.name)));
    run.quantizedOutputs.add(chain[chain.length - 1]!.name);
  }
}

/**
 * ONNX's nn.Linear spellings (MatMul with a constant [K, N] weight + Add bias, Gemm), with relu/clip
 * when `withActivation`: inputs on the matmul / gemm (weight per channel along its output axis), the
 * bias add and activation claimed; the last node ends the quantized pattern, as torch's linear does.
 */
function annotateOnnxLinearsX86(run: X86Run, config: QuantizationConfig | null, accepts: PartitionFilter, withActivation: boolean): void {
  const { ctx } = run;
  for (const lin of findOnnxLinears(ctx, withActivation)) {
    if (skip(run, lin.nodes, accepts)) continue;
    if (config === null) {
      for (const n of lin.nodes) ctx.claimFloat(n.name);
      continue;
    }
    const { first, bias } = onnxLinearInputSpecs(lin, config);
    const [head, ...rest] = lin.nodes;
    ctx.annotate(head!.name, { inputQSpecMap: first });
    for (const n of rest) ctx.annotate(n.name, { inputQSpecMap: n.op === "add" ? bias : {} });
    run.quantizedOutputs.add(lin.nodes[lin.nodes.length - 1]!.name);
  }
}

function annotateMatmul(run: X86Run, config: QuantizationConfig | null, accepts: PartitionFilter): void {
  const { ctx } = run;
  for (const node of ctx.graph.nodes) {
    if (node.op !== "matmul" || skip(run, [node], accepts)) continue;
    if (config === null) {
      ctx.claimFloat(node.name);
      continue;
    }
    const map: Record<string, QuantizationSpecBase | null> = {};
    for (const v of node.inputs) if (v !== "") map[v] = getInputActQSpec(config);
    ctx.annotate(node.name, { inputQSpecMap: map });
    run.quantizedOutputs.add(node.name);
  }
}

/** The node producing `value` ends a quantized pattern. */
function fromQuantized(run: X86Run, value: string): boolean {
  const v = run.ctx.views.view(value);
  return v.kind === "node" && run.quantizedOutputs.has(v.name);
}

/**
 * torch `_annotate_propagation_quantizable_pattern` + `_annotate_output_for_int8_in_int8_out_pattern`:
 * pooling, concat and flatten fed by quantized patterns quantize their input(s) and share that
 * qparams on their output (int8 in, int8 out).
 */
function annotatePropagation(run: X86Run, config: QuantizationConfig | null, accepts: PartitionFilter): void {
  const { ctx } = run;
  for (const node of ctx.graph.nodes) {
    if (!INT8_IN_INT8_OUT_OPS.includes(node.op) || node.inputs[0] === undefined || node.inputs[0] === "" || skip(run, [node], accepts)) continue;
    if (config === null) {
      ctx.claimFloat(node.name);
      continue;
    }
    const act = getInputActQSpec(config);
    const first = node.inputs[0];
    const inputs = node.op === "concat" ? node.inputs.filter((v) => v !== "") : [first];
    if (!inputs.every((v) => fromQuantized(run, v)) || act === null) continue;
    if (node.op === "flatten") {
      // Recipe of flatten: only worth it when a user can take int8.
      const users = ctx.views.users(node.outputs[0]!);
      if (users.length > 0 && !users.some((u) => QUANTIZABLE_OPS.has(u.op))) continue;
    }
    const shared = sharedWith(edge(first, node.name));
    const map: Record<string, QuantizationSpecBase | null> = { [first]: act };
    for (const v of inputs.slice(1)) if (!(v in map)) map[v] = shared;
    ctx.annotate(node.name, { inputQSpecMap: map, outputQSpec: shared });
    run.quantizedOutputs.add(node.name);
  }
}

/**
 * An X86InductorQuantizer-style quantizer (torch's x86_inductor_quantizer.py) for oneDNN/fbgemm-like
 * int8 kernels: conv/linear patterns (ONNX's MatMul + Add / Gemm linears included) quantize their
 * inputs (uint8 activations, int8 per-channel weights) and leave the output to the next quantized consumer; pooling/concat/flatten fed by
 * quantized patterns propagate int8 through. Patterns: conv+batch_norm(+add)(+relu) (QAT), conv(+add)(+relu),
 * conv+relu/clip/hardswish, conv, linear(+add)(+relu), linear+relu/leaky_relu/tanh/gelu, linear, matmul
 * (only under a module-name or operator-type config, as torch). Precedence module name > module type >
 * operator type > global; a null config claims its nodes as float (torch's
 * `_annotate_nodes_not_quantize`). Mixing QAT and non-QAT (or static and dynamic) configs is refused.
 */
export class X86InductorQuantizer extends ConfiguredQuantizer<QuantizationConfig> {
  /** Fuses ONNX's hardswish decomposition back into `hardswish` (a conv + hardswish pattern), see XnnpackQuantizer. */
  override transformForAnnotation(g: Graph): Graph {
    return normalizeOnnxForAnnotation(g);
  }

  annotate(g: Graph): Graph {
    const configs = this.configs();
    if (new Set(configs.map((c) => c.isQat)).size > 1) {
      throw new QforgeError("BAD_CONFIG", "X86InductorQuantizer: mixed QAT and non-QAT quantization configs are not supported");
    }
    const dynamicStates = new Set(configs.filter((c) => c.inputActivation !== null).map((c) => c.inputActivation!.isDynamic === true));
    if (dynamicStates.size > 1) throw new QforgeError("BAD_CONFIG", "X86InductorQuantizer: mixed dynamic and static quantization configs are not supported");
    const dynamic = dynamicStates.has(true);
    // ONNX linears (matmul / gemm with a constant weight) count as torch's linear for the global config.
    const isLinear = (n: Node): boolean => (n.op === "matmul" || n.op === "gemm") && n.inputs[1] !== undefined && g.constants[n.inputs[1]]?.tensor.shape.length === 2;
    const stages: AnnotationStage<QuantizationConfig>[] = this.stages().map((s) =>
      s.label === "global" ? { ...s, accepts: (nodes) => s.accepts(nodes) && nodes.some((n) => DEFAULT_QUANTIZABLE_OPS.has(n.op) || isLinear(n)) } : s);
    return annotateGraph(g, (ctx) => {
      const run: X86Run = { ctx, quantizedOutputs: new Set() };
      for (const { config, accepts } of stages) {
        if (dynamic) {
          annotateChain(run, config, accepts, ["linear"], false);
          annotateOnnxLinearsX86(run, config, accepts, false);
          continue;
        }
        if (config === null || config.isQat) {
          annotateBinary(run, config, accepts, "conv", true, true);
          annotateBinary(run, config, accepts, "conv", true, false);
          annotateChain(run, config, accepts, ["conv", "batch_norm", CONV_UNARY], true);
          annotateChain(run, config, accepts, ["conv", "batch_norm"], true);
        }
        annotateBinary(run, config, accepts, "conv", false, true);
        annotateBinary(run, config, accepts, "conv", false, false);
        annotateChain(run, config, accepts, ["conv", CONV_UNARY], false);
        annotateChain(run, config, accepts, ["conv"], false);
        annotateBinary(run, config, accepts, "linear", false, true);
        annotateBinary(run, config, accepts, "linear", false, false);
        annotateChain(run, config, accepts, ["linear", LINEAR_UNARY], false);
        annotateChain(run, config, accepts, ["linear"], false);
        annotateOnnxLinearsX86(run, config, accepts, true);
        annotateOnnxLinearsX86(run, config, accepts, false);
        annotateMatmul(run, config, accepts);
        annotatePropagation(run, config, accepts);
      }
    });
  }
}
