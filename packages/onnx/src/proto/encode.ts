import { QforgeError, isDType, type DType, type Dim, type Tensor } from "@qforge/ir";
import { tensorToProto } from "../tensor.js";
import { encodeMessage } from "./codec.js";
import { AttributeType, onnxFromDType } from "./enums.js";
import type {
  AttributeProto, GraphProto, ModelProto, NodeProto, OptionalProto, SequenceProto, TensorProto, ValueInfoProto,
} from "./types.js";

/**
 * A minimal ONNX writer in the spirit of onnx.helper (make_node, make_tensor_value_info, make_graph,
 * make_model): enough to write models for tests, and the base of the exporter.
 */

const utf8 = new TextEncoder();

/** Serializes a ModelProto. */
export function encodeModel(model: ModelProto): Uint8Array {
  return encodeMessage("ModelProto", model);
}

/** Serializes a tensor as a TensorProto (raw_data), e.g. a node test's input_0.pb. */
export function encodeTensor(t: Tensor, name = ""): Uint8Array {
  return encodeMessage("TensorProto", tensorToProto(t, name));
}

export function encodeSequence(seq: SequenceProto): Uint8Array {
  return encodeMessage("SequenceProto", seq);
}

export function encodeOptional(opt: OptionalProto): Uint8Array {
  return encodeMessage("OptionalProto", opt);
}

/** An attribute value: numbers are INT when integral unless `type` says "float"; Tensors are TENSOR. */
export type AttributeValue = number | string | Tensor | readonly number[] | readonly string[];

function isTensor(v: unknown): v is Tensor {
  return typeof v === "object" && v !== null && "dtype" in v && "shape" in v && "data" in v;
}

export function makeAttribute(name: string, value: AttributeValue, type?: "int" | "float"): AttributeProto {
  if (typeof value === "number") {
    const asInt = type === "int" || (type === undefined && Number.isInteger(value));
    return asInt ? { name, type: AttributeType.INT, i: value } : { name, type: AttributeType.FLOAT, f: value };
  }
  if (typeof value === "string") return { name, type: AttributeType.STRING, s: utf8.encode(value) };
  if (isTensor(value)) return { name, type: AttributeType.TENSOR, t: tensorToProto(value) };
  const list = value as readonly (number | string)[];
  if (list.every((x) => typeof x === "string")) {
    return { name, type: AttributeType.STRINGS, strings: (list as string[]).map((s) => utf8.encode(s)) };
  }
  const nums = list as readonly number[];
  const asInts = type === "int" || (type === undefined && nums.every((x) => Number.isInteger(x)));
  return asInts ? { name, type: AttributeType.INTS, ints: [...nums] } : { name, type: AttributeType.FLOATS, floats: [...nums] };
}

export function makeNode(
  opType: string, inputs: readonly string[], outputs: readonly string[],
  attrs: Readonly<Record<string, AttributeValue>> = {}, opts: { name?: string; domain?: string } = {},
): NodeProto {
  const node: NodeProto = {
    op_type: opType, input: [...inputs], output: [...outputs],
    attribute: Object.entries(attrs).map(([k, v]) => makeAttribute(k, v)),
  };
  if (opts.name !== undefined) node.name = opts.name;
  if (opts.domain !== undefined) node.domain = opts.domain;
  return node;
}

function onnxType(dtype: DType): number {
  const t = onnxFromDType(dtype);
  if (t === undefined) throw new QforgeError("UNSUPPORTED", `dtype ${dtype} has no ONNX data type`);
  return t;
}

/** A tensor ValueInfoProto; string dims become dim_param, numbers dim_value. */
export function makeTensorValueInfo(name: string, dtype: DType | number, shape: readonly Dim[] | undefined): ValueInfoProto {
  const elem = typeof dtype === "number" ? dtype : isDType(dtype) ? onnxType(dtype) : 0;
  const tensorType = shape === undefined
    ? { elem_type: elem }
    : { elem_type: elem, shape: { dim: shape.map((d) => (typeof d === "number" ? { dim_value: d } : { dim_param: d })) } };
  return { name, type: { tensor_type: tensorType } };
}

export function makeTensorProto(t: Tensor, name: string): TensorProto {
  return tensorToProto(t, name);
}

export interface GraphSpec {
  name?: string;
  nodes: readonly NodeProto[];
  inputs: readonly ValueInfoProto[];
  outputs: readonly ValueInfoProto[];
  /** Initializers: tensors by name, or TensorProtos (e.g. with external data) as they are. */
  initializers?: Readonly<Record<string, Tensor>> | readonly TensorProto[];
}

export function makeGraph(spec: GraphSpec): GraphProto {
  const inits = spec.initializers ?? [];
  const initializer = Array.isArray(inits)
    ? [...(inits as readonly TensorProto[])]
    : Object.entries(inits as Record<string, Tensor>).map(([k, t]) => tensorToProto(t, k));
  return {
    name: spec.name ?? "graph",
    node: [...spec.nodes],
    input: [...spec.inputs],
    output: [...spec.outputs],
    initializer,
  };
}

export function makeModel(graph: GraphProto, opts: { opset?: number; irVersion?: number; producer?: string } = {}): ModelProto {
  return {
    ir_version: opts.irVersion ?? 8,
    opset_import: [{ domain: "", version: opts.opset ?? 17 }],
    producer_name: opts.producer ?? "qforge",
    graph,
  };
}
