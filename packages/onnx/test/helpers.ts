import { isQforgeError, type DType, type Dim, type Tensor } from "@qforge/ir";
import {
  encodeModel, makeGraph, makeModel, makeNode, makeTensorValueInfo, type AttributeValue, type NodeProto, type TensorProto,
} from "@qforge/onnx";

export interface TinyModel {
  nodes: NodeProto[];
  inputs: [string, DType | number, readonly Dim[] | undefined][];
  outputs: string[];
  initializers?: Record<string, Tensor> | TensorProto[];
  opset?: number;
}

/** Serializes a small model (outputs declared without a type: the importer infers them). */
export function tinyModel(m: TinyModel): Uint8Array {
  const graph = makeGraph({
    nodes: m.nodes,
    inputs: m.inputs.map(([n, d, s]) => makeTensorValueInfo(n, d, s)),
    outputs: m.outputs.map((n) => ({ name: n })),
    ...(m.initializers !== undefined ? { initializers: m.initializers } : {}),
  });
  return encodeModel(makeModel(graph, { opset: m.opset ?? 17 }));
}

export function node(op: string, inputs: string[], outputs: string[], attrs: Record<string, AttributeValue> = {}, name?: string): NodeProto {
  return makeNode(op, inputs, outputs, attrs, name !== undefined ? { name } : {});
}

/** The QforgeError code a promise rejects with ("ok" when it resolves); other errors propagate. */
export async function errorCode(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return "ok";
  } catch (e) {
    if (isQforgeError(e)) return e.code;
    throw e;
  }
}

/** The QforgeError a promise rejects with. */
export async function qforgeError(p: Promise<unknown>): Promise<{ code: string; node: string | undefined; message: string }> {
  try {
    await p;
  } catch (e) {
    if (isQforgeError(e)) return { code: e.code, node: e.node, message: e.message };
    throw e;
  }
  throw new Error("expected a QforgeError");
}
