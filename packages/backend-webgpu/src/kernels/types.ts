/// <reference types="@webgpu/types" />
/**
 * What a WebGPU kernel is: a `supports` check the compiler runs once per node (shape-independent:
 * op, dtypes, ranks, attributes, which inputs are known at compile time) and a `build` the planner
 * runs per concrete input shape, which returns the dispatches (WGSL source, bindings, uniform
 * parameters, workgroup counts) or says that the output aliases an input (reshape & co.).
 */
import type { AttrValue, DType, Node, Tensor, ValueType } from "@qforge/ir";
import type { GpuCaps } from "../gpu/device.js";

/** A concrete tensor type (every dim a number). */
export interface TensorType {
  readonly dtype: DType;
  readonly shape: readonly number[];
}

export interface SupportQuery {
  readonly node: Node;
  /** Attributes with schema defaults resolved. */
  readonly attrs: Readonly<Record<string, AttrValue>>;
  /** Input types (undefined for omitted optional inputs); shapes may be symbolic. */
  readonly inputs: readonly (ValueType | undefined)[];
  readonly outputs: readonly ValueType[];
  /** True when input i is known on the host before the run (a constant, or folded from constants and shapes). */
  isStatic(i: number): boolean;
  /** The value of input i when it is a graph constant or folded from constants only (known at compile time). */
  constant(i: number): Tensor | undefined;
  /** Input i when it is a fused dequantized weight (its value is never materialized). */
  fusedWeight(i: number): FusedWeight | undefined;
  readonly caps: GpuCaps;
}

/**
 * A quantized constant weight whose dequantize_linear node is fused into its consumer: the consumer
 * reads the packed integers and dequantizes them in its shader (weight-only int4/int8 matmul).
 */
export interface FusedWeight {
  /** The dequantize_linear node. */
  readonly node: Node;
  /** The stored integers (int4/uint4 packed two to a byte, or int8/uint8). */
  readonly q: Tensor;
  readonly scale: Tensor;
  readonly zeroPoint: Tensor | undefined;
  readonly axis: number;
  readonly blockSize: number;
}

/** The kernel handles the node: its name (for placements) and what it does with it. */
export interface Supported {
  readonly kernel: string;
  readonly note?: string;
}

/** The kernel does not handle the node: why (shown in the placement of the CPU fallback). */
export interface Unsupported {
  readonly reason: string;
}

export type Support = Supported | Unsupported;

export function isSupported(s: Support): s is Supported {
  return (s as Supported).kernel !== undefined;
}

/** A storage binding of a dispatch, in binding order (binding i of group 0). */
export type Binding =
  /** The node's input i (uploaded by the planner when it is a host value). */
  | { readonly input: number }
  /** The node's output i. */
  | { readonly output: number }
  /** A buffer the kernel made (packed weights, tables), see BuildContext.constant. */
  | { readonly buffer: GPUBuffer }
  /** A scratch buffer of `bytes`, shared by the node's dispatches that name the same id. */
  | { readonly scratch: string; readonly bytes: number };

export interface DispatchSpec {
  /** WGSL source with `@compute fn main`; bindings 0..n-1 are `bindings`, binding n the uniform `params` if given. */
  readonly code: string;
  readonly label: string;
  readonly bindings: readonly Binding[];
  /** Uniform parameters (shapes, strides, scalars) as 32-bit words; bound after the storage bindings. */
  readonly params?: Uint32Array;
  readonly workgroups: readonly [number, number, number];
}

export type BuildResult =
  | { readonly dispatches: readonly DispatchSpec[] }
  /** Output 0 is input `alias` reinterpreted (same bytes, new shape). */
  | { readonly alias: number };

export interface BuildContext {
  readonly node: Node;
  readonly attrs: Readonly<Record<string, AttrValue>>;
  /** Concrete input types (undefined for omitted optional inputs). */
  readonly inputs: readonly (TensorType | undefined)[];
  readonly outputs: readonly TensorType[];
  /** The host value of input i when it is static (constant or folded), else undefined. */
  host(i: number): Tensor | undefined;
  /** Input i when it is a fused dequantized weight (never bind it: read `q`, `scale`, `zeroPoint`). */
  fusedWeight(i: number): FusedWeight | undefined;
  readonly caps: GpuCaps;
  /**
   * A read-only GPU buffer with `make()`'s bytes, made once per session under `key` (the key is
   * scoped to the node; include anything shape-dependent in it): packed weights, tables.
   */
  constant(key: string, make: () => ArrayBufferView): GPUBuffer;
}

export interface GpuKernel {
  /** The ops this kernel handles. */
  readonly ops: readonly string[];
  supports(q: SupportQuery): Support;
  build(ctx: BuildContext): BuildResult;
}
