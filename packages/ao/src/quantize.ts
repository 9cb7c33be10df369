/**
 * `quantize_(model, config, filter)`: torchao's one-call weight swap, for nn Modules (modified in
 * place, like torchao) and for ExportedPrograms (a new program; the input is untouched).
 */
import { Embedding, Linear, type Module } from "@qforge/export";
import {
  QforgeError, verifyGraph, type Constant, type ExportedProgram, type Graph, type Node, type Tensor, type ValueType,
} from "@qforge/ir";
import { runOp } from "@qforge/runtime";
import { produce, type Draft } from "immer";
import { activationAttrs, describeActivation } from "./activation.js";
import { ObservedLinear, QuantizedEmbedding, QuantizedLinear } from "./modules.js";
import {
  handlerFor, type AOBaseConfig, type FilterFn, type ProgramSite, type WeightHandler, type WeightSite, type WeightSwap,
} from "./registry.js";
import { affineWeightAttrs, codebookWeightAttrs, describeWeight, weightTensors } from "./tensor.js";

export interface QuantizeOptions {
  /** Called for each matched layer left in float (e.g. K not divisible by the group size). Default: console.warn. */
  onSkip?: (fqn: string, reason: string) => void;
}

function configName(c: AOBaseConfig): string {
  return (c as { constructor: { name: string } }).constructor.name;
}

function defaultOnSkip(fqn: string, reason: string): void {
  console.warn(`quantize_: left '${fqn}' in float: ${reason}`);
}

/**
 * Swaps the weights of the layers `filter` selects (default: the config's, usually Linear layers)
 * for quantized ones as `config` says. A Module is changed in place and returned (a root module that
 * matches is replaced and the replacement returned); an ExportedProgram is rewritten into a new one.
 */
export function quantize_<T extends Module | ExportedProgram>(model: T, config: AOBaseConfig, filter?: FilterFn, opts: QuantizeOptions = {}): T {
  const handler = handlerFor(config);
  const onSkip = opts.onSkip ?? defaultOnSkip;
  const f = filter ?? handler.defaultFilter;
  if (isExportedProgram(model)) {
    if (handler.kind !== "weight") {
      throw new QforgeError("UNSUPPORTED", `${configName(config)} has a module handler only; it cannot rewrite an ExportedProgram`, {
        hint: "quantize the Module before exportModel, or register a weight handler with registerQuantizeWeightHandler",
      });
    }
    return quantizeProgram(model, config, handler.fn, f, onSkip) as T;
  }
  const swap = handler.kind === "module"
    ? (m: Module, fqn: string): Module => handler.fn(m, config, fqn)
    : (m: Module, fqn: string): Module => swapModule(m, fqn, config, handler.fn, onSkip);
  return replaceMatching(model as Module, "", f, swap) as T;
}

function isExportedProgram(x: unknown): x is ExportedProgram {
  return typeof x === "object" && x !== null && "graph" in x && "inputs" in x && "outputs" in x && !(typeof (x as { forward?: unknown }).forward === "function");
}

// ---- Modules ---------------------------------------------------------------------------------

/** torchao `_replace_with_custom_fn_if_matches_filter`: pre-order; a replaced module is not descended into. */
function replaceMatching(m: Module, fqn: string, filter: FilterFn, swap: (m: Module, fqn: string) => Module): Module {
  if (filter(m, fqn)) return swap(m, fqn);
  for (const [name, child] of m.namedChildren()) {
    const childFqn = fqn === "" ? name : `${fqn}.${name}`;
    const next = replaceMatching(child, childFqn, filter, swap);
    if (next !== child) setChild(m, name, child, next, childFqn);
  }
  return m;
}

function setChild(parent: Module, name: string, old: Module, next: Module, fqn: string): void {
  const holder = parent as unknown as Record<string, unknown>;
  if (Object.prototype.hasOwnProperty.call(holder, name) && holder[name] === old) {
    holder[name] = next;
    return;
  }
  throw new QforgeError("UNSUPPORTED", `quantize_: cannot replace '${fqn}': ${parent.constructor.name} keeps its children in a container without a setter`, {
    node: fqn,
    hint: "hold the layer in a named property of a Module, or quantize the ExportedProgram instead (quantize_(exportModel(model, inputs), config))",
  });
}

function swapModule(m: Module, fqn: string, config: AOBaseConfig, handler: WeightHandler<AOBaseConfig>, onSkip: (fqn: string, reason: string) => void): Module {
  let kind: "linear" | "embedding";
  let weight: Tensor;
  let bias: Tensor | undefined;
  if (m instanceof Linear || m instanceof ObservedLinear) {
    kind = "linear";
    weight = m.weight.data;
    bias = m.bias?.data;
  } else if (m instanceof Embedding) {
    kind = "embedding";
    weight = m.weight.data;
  } else {
    throw new QforgeError("UNSUPPORTED", `${configName(config)} quantizes Linear and Embedding weights, not ${m.constructor.name} ('${fqn}')`, {
      node: fqn, hint: "pass a filter that selects Linear (isLinear) or Embedding (isEmbedding) modules",
    });
  }
  const site: WeightSite = { kind, fqn, module: m };
  const r = handler(weight, config, site);
  if ("skip" in r) {
    onSkip(fqn, r.skip);
    return m;
  }
  if (kind === "embedding") {
    if (r.act.kind !== "none") throw new QforgeError("BAD_CONFIG", `${configName(config)}: an embedding cannot take activation quantization ('${fqn}')`, { node: fqn });
    return new QuantizedEmbedding(r.weight);
  }
  return new QuantizedLinear(r.weight, bias, r.act);
}

// ---- ExportedPrograms --------------------------------------------------------------------------

/**
 * The nodes quantize_ can rewrite: `linear` with a constant float32 [N, K] weight; `matmul` and
 * `gemm` (alpha = beta = 1, no transA, bias absent or 1-D) with a constant 2-D right operand, as
 * linear by its transpose; `gather` on axis 0 of a constant float32 table (an embedding).
 */
export function programSites(g: Graph): ProgramSite[] {
  const sites: ProgramSite[] = [];
  const constant = (v: string | undefined): Constant | undefined => (v === undefined || v === "" ? undefined : Object.prototype.hasOwnProperty.call(g.constants, v) ? g.constants[v] : undefined);
  const isWeight = (c: Constant | undefined): c is Constant => c !== undefined && c.tensor.dtype === "float32" && c.tensor.shape.length === 2;
  const attr = (n: Node, k: string, d: number): number => (n.attrs[k] as number | undefined) ?? d;
  for (const node of g.nodes) {
    const frames = node.meta.moduleStack;
    const moduleType = frames !== undefined && frames.length > 0 ? frames[frames.length - 1]!.type : undefined;
    const w = constant(node.inputs[1]);
    if (node.op === "linear") {
      if (isWeight(w)) sites.push({ kind: "program_site", type: "Linear", node, weightName: node.inputs[1]!, weight: w.tensor, moduleType });
    } else if (node.op === "matmul" || node.op === "gemm") {
      // x @ B with a constant B [K, N] (ONNX MatMul, Gemm without scaling or transposed A) is linear(x, B^T).
      const plainGemm = node.op === "matmul" || (attr(node, "alpha", 1) === 1 && attr(node, "beta", 1) === 1 && attr(node, "transA", 0) === 0);
      const c = node.op === "gemm" && node.inputs[2] !== undefined && node.inputs[2] !== "" ? g.values[node.inputs[2]] : undefined;
      const biasOk = c === undefined || (c.dtype === "float32" && c.shape.length === 1);
      const x = g.values[node.inputs[0]!];
      if (isWeight(w) && plainGemm && biasOk && x !== undefined && x.shape.length >= 1) {
        const transposed = node.op === "gemm" && attr(node, "transB", 0) === 1;
        const weight = transposed ? w.tensor : runOp("transpose", [w.tensor], { perm: [1, 0] })[0]!;
        sites.push({ kind: "program_site", type: "Linear", node, weightName: node.inputs[1]!, weight, moduleType });
      }
    } else if (node.op === "gather" && attr(node, "axis", 0) === 0) {
      const table = constant(node.inputs[0]);
      if (isWeight(table)) sites.push({ kind: "program_site", type: "Embedding", node, weightName: node.inputs[0]!, weight: table.tensor, moduleType });
    }
  }
  return sites;
}

/** The layer name of a site: the weight's qualified name without `.weight` (torch's fqn). */
export function siteFqn(site: ProgramSite): string {
  return site.weightName.endsWith(".weight") ? site.weightName.slice(0, -".weight".length) : site.weightName;
}

interface Prepared {
  readonly swap: Extract<WeightSwap, { weight: unknown }>;
  readonly names: Record<string, string>;
}

function quantizeProgram(
  ep: ExportedProgram, config: AOBaseConfig, handler: WeightHandler<AOBaseConfig>, filter: FilterFn, onSkip: (fqn: string, reason: string) => void,
): ExportedProgram {
  const g = ep.graph;
  const used = new Set<string>([...Object.keys(g.values), ...g.nodes.map((n) => n.name)]);
  const fresh = (base: string): string => {
    let name = base;
    for (let i = 1; used.has(name); i++) name = `${base}_${i}`;
    used.add(name);
    return name;
  };
  const plans = new Map<string, { site: ProgramSite; prepared: Prepared }>();
  const byWeight = new Map<string, Prepared>();
  const newConstants: Record<string, Tensor> = {};
  for (const site of programSites(g)) {
    const fqn = siteFqn(site);
    if (!filter(site, fqn)) continue;
    const kind = site.type === "Linear" ? "linear" : "embedding";
    const key = `${kind}:${site.weightName}`;
    let prepared = byWeight.get(key);
    if (prepared === undefined) {
      const r = handler(site.weight, config, { kind, fqn, node: site.node });
      if ("skip" in r) {
        onSkip(fqn, r.skip);
        continue;
      }
      if (kind === "embedding" && r.act.kind !== "none") {
        throw new QforgeError("BAD_CONFIG", `${configName(config)}: an embedding cannot take activation quantization ('${fqn}')`, { node: site.node.name });
      }
      const names: Record<string, string> = {};
      for (const [part, t] of Object.entries(weightTensors(r.weight))) {
        names[part] = fresh(`${site.weightName}.${part}`);
        newConstants[names[part]!] = t;
      }
      if (r.act.kind === "static") {
        names["input_scale"] = fresh(`${fqn}.input_scale`);
        newConstants[names["input_scale"]!] = { dtype: "float32", shape: [], data: Float32Array.of(r.act.scale) };
        if (!r.act.dtype.startsWith("float8")) {
          names["input_zero_point"] = fresh(`${fqn}.input_zero_point`);
          newConstants[names["input_zero_point"]!] = { dtype: "int32", shape: [], data: Int32Array.of(r.act.zeroPoint) };
        }
      }
      prepared = { swap: r, names };
      byWeight.set(key, prepared);
    }
    plans.set(site.node.name, { site, prepared });
  }
  if (plans.size === 0) return ep;

  const graph = produce(g, (d: Draft<Graph>) => {
    for (const [name, t] of Object.entries(newConstants)) {
      d.constants[name] = { kind: "buffer", tensor: t as never };
      d.values[name] = { dtype: t.dtype, shape: [...t.shape] } as Draft<ValueType>;
    }
    d.nodes = d.nodes.map((n) => {
      const plan = plans.get(n.name);
      return plan === undefined ? n : (rewriteNode(n as Node, plan.site, plan.prepared, config) as Draft<Node>);
    });
    // Float weights no node reads any more leave the program (tied weights stay while used).
    const read = new Set<string>([...d.outputs]);
    for (const n of d.nodes) for (const v of n.inputs) read.add(v);
    for (const { site } of plans.values()) {
      if (!read.has(site.weightName) && Object.prototype.hasOwnProperty.call(d.constants, site.weightName)) {
        delete d.constants[site.weightName];
        delete d.values[site.weightName];
      }
    }
  });
  verifyGraph(graph);
  return { ...ep, graph, meta: { ...ep.meta, ao: [...((ep.meta["ao"] as string[] | undefined) ?? []), configName(config)] } };
}

function trimOmitted(names: string[]): string[] {
  let n = names.length;
  while (n > 0 && names[n - 1] === "") n--;
  return names.slice(0, n);
}

function rewriteNode(n: Node, site: ProgramSite, p: Prepared, config: AOBaseConfig): Node {
  const { weight, act } = p.swap;
  const names = p.names;
  const meta = { ...n.meta, ao: { config: configName(config), weight: describeWeight(weight), activation: describeActivation(act) } };
  if (site.type === "Embedding") {
    if (weight.kind !== "affine") throw new QforgeError("BAD_CONFIG", "embedding tables take affine quantized weights", { node: n.name });
    return {
      name: n.name, op: "affine_quantized_embedding", outputs: n.outputs, meta,
      inputs: trimOmitted([n.inputs[1]!, names["qdata"]!, names["scale"]!, names["zero_point"] ?? ""]),
      attrs: affineWeightAttrs(weight),
    };
  }
  const x = n.inputs[0]!;
  const bias = n.inputs[2] ?? "";
  if (weight.kind === "codebook") {
    return {
      name: n.name, op: "codebook_quantized_linear", outputs: n.outputs, meta,
      inputs: trimOmitted([x, names["codes"]!, names["codebook"]!, bias]),
      attrs: codebookWeightAttrs(weight),
    };
  }
  return {
    name: n.name, op: "affine_quantized_linear", outputs: n.outputs, meta,
    inputs: trimOmitted([x, names["qdata"]!, names["scale"]!, names["zero_point"] ?? "", bias, names["input_scale"] ?? "", names["input_zero_point"] ?? ""]),
    attrs: { ...affineWeightAttrs(weight), ...activationAttrs(act) },
  };
}
