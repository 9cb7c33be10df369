import type { Graph } from "@qforge/ir";
import { OP_TO_ANNOTATOR, type AnnotatorName } from "./annotators.js";
import type { QuantizationConfig } from "./config.js";
import { normalizeOnnxForAnnotation } from "./onnx-patterns.js";
import { annotateGraph, ConfiguredQuantizer } from "./quantizer.js";
import type { FakeQuantSpec, ObserverSpec, QuantizationSpec } from "./spec.js";

export interface SymmetricQuantizationOptions {
  /** Per-channel (axis 0) weights instead of per-tensor. Default false. */
  isPerChannel?: boolean;
  /** Fake-quant modules for QAT instead of observers. Default false. */
  isQat?: boolean;
  /** Dynamic activations (qparams chosen per batch at run time); output activations stay float. Default false. */
  isDynamic?: boolean;
  /** Activation range, default -128..127. */
  actQmin?: number;
  actQmax?: number;
  /** Weight range, default -127..127 (symmetric: -128 is never used). */
  weightQmin?: number;
  weightQmax?: number;
}

/** torch's `extra_args = {"eps": 2**-12}` for activation and weight observers. */
const EPS = 2 ** -12;

/**
 * torch's `get_symmetric_quantization_config` (xnnpack_quantizer.py), field for field:
 * - activations: int8 [actQmin, actQmax] per_tensor_affine, observed by HistogramObserver (PTQ),
 *   FusedMovingAvgObsFakeQuantize (QAT), PlaceholderObserver (dynamic PTQ) or FakeQuantize over a
 *   MovingAverageMinMaxObserver with averaging constant 1 (dynamic QAT); eps 2^-12.
 * - weights: int8 [weightQmin, weightQmax], per_tensor_symmetric with MinMaxObserver or
 *   per_channel_symmetric (axis 0) with PerChannelMinMaxObserver; for QAT FusedMovingAvgObsFakeQuantize
 *   over MovingAverageMinMaxObserver / MovingAveragePerChannelMinMaxObserver; eps 2^-12.
 * - bias: float (null). Dynamic configs have no output activation spec.
 * Observer options carry the spec's dtype/range/qscheme (what prepare passes to the constructor), so
 * `createObserver(kind, options)` builds the observer torch builds.
 */
export function getSymmetricQuantizationConfig(opts: SymmetricQuantizationOptions = {}): QuantizationConfig {
  const isPerChannel = opts.isPerChannel ?? false;
  const isQat = opts.isQat ?? false;
  const isDynamic = opts.isDynamic ?? false;
  const actQmin = opts.actQmin ?? -128;
  const actQmax = opts.actQmax ?? 127;
  const weightQmin = opts.weightQmin ?? -127;
  const weightQmax = opts.weightQmax ?? 127;

  const actObserverOptions = { dtype: "int8", qscheme: "per_tensor_affine", quantMin: actQmin, quantMax: actQmax, eps: EPS } as const;
  let actObserver: ObserverSpec | FakeQuantSpec;
  if (isQat) {
    actObserver = isDynamic
      ? { kind: "FakeQuantize", observer: { kind: "MovingAverageMinMaxObserver", options: { ...actObserverOptions, averagingConstant: 1 } } }
      : { kind: "FusedMovingAvgObsFakeQuantize", observer: { kind: "MovingAverageMinMaxObserver", options: actObserverOptions } };
  } else {
    actObserver = isDynamic
      ? { kind: "PlaceholderObserver", options: { ...actObserverOptions, isDynamic: true } }
      : { kind: "HistogramObserver", options: actObserverOptions };
  }
  const act: QuantizationSpec = {
    kind: "spec", dtype: "int8", quantMin: actQmin, quantMax: actQmax, qscheme: "per_tensor_affine", isDynamic, observerOrFakeQuant: actObserver,
  };

  const weightQScheme = isPerChannel ? "per_channel_symmetric" : "per_tensor_symmetric";
  const weightObserverOptions = {
    dtype: "int8", qscheme: weightQScheme, quantMin: weightQmin, quantMax: weightQmax, eps: EPS, ...(isPerChannel ? { chAxis: 0 } : {}),
  };
  const weightObserver: ObserverSpec | FakeQuantSpec = isQat
    ? {
      kind: "FusedMovingAvgObsFakeQuantize",
      observer: { kind: isPerChannel ? "MovingAveragePerChannelMinMaxObserver" : "MovingAverageMinMaxObserver", options: weightObserverOptions },
    }
    : { kind: isPerChannel ? "PerChannelMinMaxObserver" : "MinMaxObserver", options: weightObserverOptions };
  const weight: QuantizationSpec = {
    kind: "spec", dtype: "int8", quantMin: weightQmin, quantMax: weightQmax, qscheme: weightQScheme, chAxis: 0, isDynamic: false,
    observerOrFakeQuant: weightObserver,
  };

  return { inputActivation: act, outputActivation: isDynamic ? null : act, weight, bias: null, isQat };
}

/**
 * torch's XNNPACKQuantizer: int8 static (or dynamic) quantization of the patterns XNNPACK runs in int8.
 *
 *   const q = new XnnpackQuantizer().setGlobal(getSymmetricQuantizationConfig({ isPerChannel: true }))
 *     .setModuleName("head", null);   // precedence: module name > module type > operator type > global
 *
 * Patterns, in torch's order (the first annotation of a node wins): conv+batch_norm(+relu) (QAT only:
 * for PTQ batch norm is folded into the conv before annotation), linear(+relu/clip), ONNX's linear
 * spellings MatMul(x, W[K, N]) (+Add bias) and Gemm (+relu/clip; weights per channel along N),
 * conv(+relu/clip), adaptive/global/average pooling, add(+relu), mul(+relu), concat (inputs and
 * output share qparams), hardswish, sigmoid/softmax/hardsigmoid/tanh (fixed output qparams), then
 * max_pool/flatten/reshape/... sharing their producer's qparams; with `withActivationMatmuls()`,
 * also matmuls of two activations. A dynamic global config annotates linear only, as torch's
 * DYNAMIC_OPS. A null config leaves its scope in float without claiming it. ONNX-imported graphs are
 * normalized first (`transformForAnnotation`: constant affines folded into convs, hardswish fused).
 */
export class XnnpackQuantizer extends ConfiguredQuantizer<QuantizationConfig> {
  static readonly STATIC_QAT_ONLY_OPS: readonly AnnotatorName[] = ["conv_bn_relu", "conv_bn"];
  static readonly STATIC_OPS: readonly AnnotatorName[] = [
    "linear_relu", "linear", "onnx_linear_relu", "onnx_linear", "conv_relu", "conv", "adaptive_avg_pool2d", "add_relu", "add", "mul_relu", "mul",
    "cat", "hardswish", "fixed_qparams",
  ];
  static readonly DYNAMIC_OPS: readonly AnnotatorName[] = ["linear", "onnx_linear"];
  /**
   * Annotators run after STATIC_OPS when `withActivationMatmuls` is set: matmuls of two activations
   * (attention), which torch's XNNPACKQuantizer leaves in float.
   */
  static readonly ACTIVATION_MATMUL_OPS: readonly AnnotatorName[] = ["matmul"];

  private activationMatmuls = false;

  /** Also quantize matmuls of two activations (Q @ K^T, P @ V), which torch's XNNPACKQuantizer leaves in float. */
  withActivationMatmuls(enabled = true): this {
    this.activationMatmuls = enabled;
    return this;
  }

  /**
   * torch's `transform_for_annotation`: ONNX-imported graphs spell nn.Hardswish as
   * x * Clip(x + 3, 0, 6) / 6; it is fused back into `hardswish` so that the hardswish pattern (and
   * its integer op) applies. Graphs without that pattern come back unchanged.
   */
  override transformForAnnotation(g: Graph): Graph {
    return normalizeOnnxForAnnotation(g);
  }

  annotate(g: Graph): Graph {
    const stages = this.stages();
    // torch: "hacked for handling dynamic linear quant": the global config decides static vs dynamic.
    const dynamic = stages.some((s) => s.label === "global" && s.config?.inputActivation?.isDynamic === true);
    return annotateGraph(g, (ctx) => {
      for (const stage of stages) {
        const config = stage.config;
        if (config === null) continue;
        const names = dynamic ? XnnpackQuantizer.DYNAMIC_OPS : [
          ...(config.isQat ? XnnpackQuantizer.STATIC_QAT_ONLY_OPS : []), ...XnnpackQuantizer.STATIC_OPS,
          ...(this.activationMatmuls ? XnnpackQuantizer.ACTIVATION_MATMUL_OPS : []),
        ];
        for (const name of names) OP_TO_ANNOTATOR[name](ctx, config, stage.accepts);
      }
      if (dynamic) return;
      for (const stage of stages) if (stage.config !== null) OP_TO_ANNOTATOR.propagate(ctx, stage.config, stage.accepts);
    });
  }
}
