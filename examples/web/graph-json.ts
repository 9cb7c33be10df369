/**
 * A Graph as JSON for the page: the graph is plain data already; tensors become
 * { dtype, shape, base64 } (their storage bytes), so a quantized model travels to the browser
 * exactly as it is in Node.
 */
import { allocStorage, numel, type DType, type Graph, type Tensor } from "@qforge/ir";

export interface TensorJson {
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly base64: string;
}

function toBase64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

function fromBase64(b64: string): Uint8Array {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

export function tensorToJson(t: Tensor): TensorJson {
  return { dtype: t.dtype, shape: [...t.shape], base64: toBase64(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)) };
}

export function tensorFromJson(j: TensorJson): Tensor {
  const data = allocStorage(j.dtype, numel(j.shape));
  const bytes = fromBase64(j.base64);
  if (bytes.length !== data.byteLength) throw new Error(`${j.dtype}[${j.shape.join(",")}] needs ${data.byteLength} bytes, got ${bytes.length}`);
  new Uint8Array(data.buffer, data.byteOffset, data.byteLength).set(bytes);
  return { dtype: j.dtype, shape: [...j.shape], data };
}

export interface GraphJson {
  readonly graph: Omit<Graph, "constants"> & { readonly constants: Record<string, { readonly kind: string; readonly tensor: TensorJson }> };
}

export function graphToJson(g: Graph): GraphJson {
  const constants: Record<string, { kind: string; tensor: TensorJson }> = {};
  for (const [k, c] of Object.entries(g.constants)) constants[k] = { kind: c.kind, tensor: tensorToJson(c.tensor) };
  return { graph: { inputs: g.inputs, outputs: g.outputs, nodes: g.nodes, values: g.values, constants } };
}

export function graphFromJson(j: GraphJson): Graph {
  const constants: Graph["constants"] = Object.fromEntries(
    Object.entries(j.graph.constants).map(([k, c]) => [k, { kind: c.kind as Graph["constants"][string]["kind"], tensor: tensorFromJson(c.tensor) }]),
  );
  return { inputs: j.graph.inputs, outputs: j.graph.outputs, nodes: j.graph.nodes, values: j.graph.values, constants };
}
