import { QforgeError } from "./errors.js";
import type { Graph } from "./graph.js";
import { sameShape, type Tensor } from "./tensor.js";
import { produce } from "immer";

/** A user-facing input or output: its name in the model's signature and the graph value behind it. */
export interface IOSpec {
  readonly name: string;
  readonly value: string;
}

/**
 * What `exportModel` and `importOnnx` produce, like torch.export's ExportedProgram: the graph (whose
 * constants of kind parameter/buffer are the state_dict, keyed by qualified name such as
 * `features.0.weight`) and the input/output signature.
 */
export interface ExportedProgram {
  readonly graph: Graph;
  readonly inputs: readonly IOSpec[];
  readonly outputs: readonly IOSpec[];
  /** Free-form provenance (e.g. { source: "onnx", opset: 17 } or { source: "trace", model: "CNN" }). */
  readonly meta: Readonly<Record<string, unknown>>;
}

export type StateDict = Record<string, Tensor>;

/** Parameters and buffers by qualified name (shares storage with the program). */
export function stateDict(ep: ExportedProgram): StateDict {
  const out: StateDict = {};
  for (const [name, c] of Object.entries(ep.graph.constants)) {
    if (c.kind === "parameter" || c.kind === "buffer") out[name] = c.tensor;
  }
  return out;
}

/**
 * Replaces parameters/buffers by name. `strict` (default) requires the same key set; shapes and
 * dtypes must match. Returns a new program; the input is untouched.
 */
export function loadStateDict(ep: ExportedProgram, sd: StateDict, opts: { strict?: boolean } = {}): ExportedProgram {
  const current = stateDict(ep);
  const strict = opts.strict ?? true;
  for (const k of Object.keys(sd)) {
    if (current[k] === undefined) throw new QforgeError("BAD_INPUT", `state_dict has unexpected key '${k}'`, { node: k });
  }
  if (strict) {
    for (const k of Object.keys(current)) {
      if (sd[k] === undefined) throw new QforgeError("BAD_INPUT", `state_dict is missing key '${k}'`, { node: k });
    }
  }
  for (const [k, t] of Object.entries(sd)) {
    const c = current[k]!;
    if (c.dtype !== t.dtype || !sameShape(c.shape, t.shape)) {
      throw new QforgeError("BAD_INPUT", `state_dict '${k}' is ${t.dtype}[${t.shape.join(",")}], the model has ${c.dtype}[${c.shape.join(",")}]`, { node: k });
    }
  }
  return produce(ep, (d) => {
    for (const [k, t] of Object.entries(sd)) {
      const c = d.graph.constants[k]!;
      d.graph.constants[k] = { kind: c.kind, tensor: t as never };
    }
  });
}

/** A program around a bare graph: signature names are the value names. */
export function programFromGraph(graph: Graph, meta: Record<string, unknown> = {}): ExportedProgram {
  return {
    graph,
    inputs: graph.inputs.map((v) => ({ name: v, value: v })),
    outputs: graph.outputs.map((v) => ({ name: v, value: v })),
    meta,
  };
}
