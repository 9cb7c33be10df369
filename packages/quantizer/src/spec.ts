import type { DType } from "@qforge/ir";
import type { ObserverKind } from "@qforge/quant";

/**
 * The Quantizer plugin contract, mirroring torch.ao.quantization.quantizer (PT2E): a quantizer
 * writes a QuantizationAnnotation into `node.meta.quantization_annotation`; preparePt2e reads it.
 * Everything here is plain JSON data so annotated graphs print and parse back (the observer is named
 * by kind + options, a derive function by its registered name).
 */

/**
 * PyTorch's qschemes. Per-group is a per-channel scheme with a `blockSize`.
 * `per_channel_affine_float_qparams` (float zero points) is what torch's EmbeddingQuantizer uses.
 */
export type QScheme =
  | "per_tensor_affine"
  | "per_tensor_symmetric"
  | "per_channel_affine"
  | "per_channel_symmetric"
  | "per_channel_affine_float_qparams";

/** An observer to construct: `createObserver(kind, options)` from @qforge/quant. */
export interface ObserverSpec {
  readonly kind: ObserverKind;
  readonly options?: Readonly<Record<string, unknown>>;
}

/** A fake-quant module to construct for QAT (from @qforge/quant), wrapping an observer. */
export interface FakeQuantSpec {
  readonly kind: "FakeQuantize" | "FusedMovingAvgObsFakeQuantize" | "FixedQParamsFakeQuantize";
  readonly observer: ObserverSpec;
  readonly options?: Readonly<Record<string, unknown>>;
}

/** torch's QuantizationSpec. */
export interface QuantizationSpec {
  readonly kind: "spec";
  /** Integer storage dtype of the quantized values (int8, uint8, int4, int16, int32, ...). */
  readonly dtype: DType;
  readonly quantMin?: number;
  readonly quantMax?: number;
  readonly qscheme: QScheme;
  /** Channel axis for per-channel schemes. */
  readonly chAxis?: number;
  /** Per-group granularity (torchao block size), e.g. [1, 32] for groups of 32 along K. */
  readonly blockSize?: readonly number[];
  /** Dynamic quantization: qparams chosen at run time (choose_qparams), no calibration. */
  readonly isDynamic?: boolean;
  /** What observes this target: an observer (PTQ) or a fake-quant (QAT). */
  readonly observerOrFakeQuant: ObserverSpec | FakeQuantSpec;
}

/** torch's FixedQParamsQuantizationSpec: qparams known up front (sigmoid, softmax, tanh outputs). */
export interface FixedQParamsQuantizationSpec {
  readonly kind: "fixed";
  readonly dtype: DType;
  readonly scale: number;
  readonly zeroPoint: number;
  readonly quantMin?: number;
  readonly quantMax?: number;
  readonly qscheme: QScheme;
  readonly isDynamic?: boolean;
}

/**
 * An edge (an input value as read by one node) or a node's output — torch's EdgeOrNode, with values
 * and nodes referred to by name.
 */
export type EdgeOrNode =
  | { readonly kind: "edge"; readonly value: string; readonly node: string }
  | { readonly kind: "node"; readonly node: string };

/** torch's SharedQuantizationSpec: use the same observer (qparams) as another edge or node output. */
export interface SharedQuantizationSpec {
  readonly kind: "shared";
  readonly edgeOrNode: EdgeOrNode;
}

/**
 * torch's DerivedQuantizationSpec: qparams computed from other targets' observers by a registered
 * function (e.g. bias scale = input scale x weight scale).
 */
export interface DerivedQuantizationSpec {
  readonly kind: "derived";
  readonly derivedFrom: readonly EdgeOrNode[];
  /** Name of a function registered with `registerDeriveQParamsFn`. */
  readonly deriveQParamsFn: string;
  readonly dtype: DType;
  readonly quantMin?: number;
  readonly quantMax?: number;
  readonly qscheme: QScheme;
  readonly chAxis?: number;
  readonly isDynamic?: boolean;
}

export type QuantizationSpecBase =
  | QuantizationSpec
  | FixedQParamsQuantizationSpec
  | SharedQuantizationSpec
  | DerivedQuantizationSpec;

/** torch's QuantizationAnnotation, kept in `node.meta.quantization_annotation`. */
export interface QuantizationAnnotation {
  /** Input value name -> how that input is quantized as this node reads it (null: left in float). */
  readonly inputQSpecMap: Readonly<Record<string, QuantizationSpecBase | null>>;
  /** How the node's (first) output is quantized; null or absent: left in float. */
  readonly outputQSpec?: QuantizationSpecBase | null;
  /** May an input share the observer of its producer's output when the specs are equal (default true). */
  readonly allowImplicitSharing: boolean;
  /** Set by the quantizer that claimed the node; a second annotation of the node is an error. */
  readonly annotated: boolean;
}

/** The meta key annotations live under. */
export const ANNOTATION_KEY = "quantization_annotation";
