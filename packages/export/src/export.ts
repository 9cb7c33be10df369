import { QforgeError, verifyGraph, type Dim, type ExportedProgram, type IOSpec, type Tensor } from "@qforge/ir";
import type { Module } from "./module.js";
import { isState } from "./state.js";
import { runTraced, Tracer } from "./trace.js";
import { Var } from "./var.js";

export interface ExportOptions {
  /**
   * Symbolic dimensions per input, e.g. `[{ 0: "N" }]` makes input 0's dim 0 the symbol N in the
   * graph signature. Forward may not read a symbolic size as a number (see `Var.shape`).
   */
  dynamicDims?: readonly (Readonly<Record<number, string>> | undefined)[];
}

/** What forward may return: one Var, an array of them, or a record of named outputs. */
type Outputs = unknown;

/**
 * torch.export.export for qforge modules: runs `model.forward` once on proxies shaped like
 * `exampleInputs`, recording every op into a graph. Parameters and buffers become graph constants
 * named by qualified name (kinds "parameter"/"buffer"); each node's meta has its `moduleStack`
 * (outermost first, the root as path "") and the user `source` location. Data-dependent control
 * flow fails with CONTROL_FLOW.
 */
export function exportModel(model: Module, exampleInputs: readonly Tensor[], opts: ExportOptions = {}): ExportedProgram {
  const modules = model.namedModules();
  const states = model.namedStates();
  const tracer = new Tracer(modules, states);
  const taken = new Set(tracer.stateNamesInOrder());
  const names = inputNames(model, exampleInputs.length, taken);
  const dynamic = opts.dynamicDims ?? [];
  if (dynamic.length > exampleInputs.length) {
    throw new QforgeError("BAD_CONFIG", `dynamicDims has ${dynamic.length} entries for ${exampleInputs.length} inputs`);
  }
  const inputValues = exampleInputs.map((t, i) => tracer.input(names[i]!, t.dtype, inputDims(t, dynamic[i], i)));
  tracer.declareState();
  const proxies = inputValues.map((v) => Var.traced(tracer, v));
  const result = runTraced(tracer, () => model.call(...proxies) as Outputs);
  const outputs = flattenOutputs(result).map(({ name, value }): IOSpec => ({ name, value: outputValue(tracer, value, name) }));
  for (const o of outputs) tracer.builder.output(o.value);
  const graph = tracer.builder.build();
  verifyGraph(graph);
  return {
    graph,
    inputs: names.map((name, i) => ({ name, value: inputValues[i]! })),
    outputs,
    meta: { source: "trace", model: model.constructor.name },
  };
}

function inputDims(t: Tensor, dyn: Readonly<Record<number, string>> | undefined, index: number): Dim[] {
  const dims: Dim[] = [...t.shape];
  for (const [k, sym] of Object.entries(dyn ?? {})) {
    const d = Number(k);
    if (!Number.isInteger(d) || d < 0 || d >= dims.length) {
      throw new QforgeError("BAD_CONFIG", `dynamicDims[${index}] names dim ${k}, but input ${index} has rank ${dims.length}`);
    }
    if (typeof sym !== "string" || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(sym)) {
      throw new QforgeError("BAD_CONFIG", `dynamicDims[${index}][${k}] must be an identifier, got ${JSON.stringify(sym)}`);
    }
    dims[d] = sym;
  }
  return dims;
}

/**
 * Graph input names from forward's parameter list (torch.export names placeholders after the
 * arguments too); `input_i` where a name cannot be read, suffixed where it would clash.
 */
function inputNames(model: Module, count: number, taken: Set<string>): string[] {
  const declared = forwardParamNames(model.forward);
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const base = declared[i] ?? `input_${i}`;
    let name = base;
    for (let k = 1; taken.has(name); k++) name = `${base}_${k}`;
    taken.add(name);
    out.push(name);
  }
  return out;
}

/** Parameter names of a function from its source; entries that are not plain identifiers are undefined. */
export function forwardParamNames(fn: (...args: never[]) => unknown): (string | undefined)[] {
  const src = Function.prototype.toString.call(fn);
  const open = src.indexOf("(");
  if (open < 0) return [];
  let depth = 0;
  let start = open + 1;
  const parts: string[] = [];
  for (let i = open; i < src.length; i++) {
    const c = src[i]!;
    if (c === "(" || c === "[" || c === "{") depth++;
    else if (c === ")" || c === "]" || c === "}") {
      depth--;
      if (depth === 0) {
        parts.push(src.slice(start, i));
        break;
      }
    } else if (c === "," && depth === 1) {
      parts.push(src.slice(start, i));
      start = i + 1;
    }
  }
  return parts
    .map((p) => p.replace(/\/\*[\s\S]*?\*\//g, "").split("=")[0]!.trim())
    .filter((p) => p !== "")
    .map((p) => (/^[A-Za-z_$][\w$]*$/.test(p) ? p : undefined));
}

function flattenOutputs(result: unknown): { name: string; value: unknown }[] {
  if (Array.isArray(result)) return result.map((value, i) => ({ name: `output_${i}`, value }));
  if (result instanceof Var || isState(result) || result === null || typeof result !== "object") return [{ name: "output", value: result }];
  return Object.entries(result).map(([name, value]) => ({ name, value }));
}

function outputValue(tracer: Tracer, value: unknown, name: string): string {
  if (value instanceof Var) {
    if (value.ref.kind === "eager") return tracer.liftConstant(value.ref.tensor, "tensor_constant");
    if (value.ref.tracer !== tracer) throw new QforgeError("TRACE_ERROR", `output '${name}' comes from another export`);
    return value.ref.value;
  }
  if (isState(value)) return tracer.stateValue(value);
  throw new QforgeError("TRACE_ERROR", `forward returned ${describe(value)} as output '${name}'`, {
    hint: "forward must return a Var, an array of Vars, or a record of Vars",
  });
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (typeof v === "object") return `an object (${(v as object).constructor?.name ?? "Object"})`;
  return `a ${typeof v}`;
}
