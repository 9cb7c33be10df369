/**
 * Files for quantized models, in the safetensors format (8-byte little-endian header length, a JSON
 * header `{ name: { dtype, shape, data_offsets }, "__metadata__": { string: string } }`, then the raw
 * little-endian tensor bytes), so the tensors load with any safetensors reader. Like torchao's
 * safetensors support (torchao/prototype/safetensors), a quantized weight is stored flattened
 * (`fc1.weight.qdata`, `fc1.weight.scale`, ...) and its non-tensor attributes go to `__metadata__`
 * as JSON. Loading rebuilds the quantized weights from the stored codes: nothing is requantized, so a
 * round trip is bit-exact.
 *
 * qforge dtypes without a safetensors name (int1..int7, uint1..uint7: packed sub-byte storage) are
 * stored as their storage bytes ("U8", shape [bytes]) with the logical dtype and shape in
 * `__metadata__["qforge.dtypes"]`.
 */
import type { Module } from "@qforge/export";
import {
  parseGraph, printGraph, QforgeError, tensor, verifyGraph, numel, allocStorage,
  type Constant, type ConstantKind, type DType, type ExportedProgram, type IOSpec, type Tensor, type TypedArray,
} from "@qforge/ir";
import { checkActivation, type ActivationQuant } from "./activation.js";
import { QuantizedEmbedding, QuantizedLinear } from "./modules.js";
import { weightDescriptor, weightFromParts, weightTensorNames, type WeightDescriptor } from "./tensor.js";

const SAFETENSORS_DTYPE: Partial<Record<DType, string>> = {
  float64: "F64", float32: "F32", float16: "F16", bfloat16: "BF16", float8_e4m3fn: "F8_E4M3", float8_e5m2: "F8_E5M2",
  int64: "I64", int32: "I32", int16: "I16", int8: "I8", uint32: "U32", uint16: "U16", uint8: "U8", bool: "BOOL",
};
const FROM_SAFETENSORS: Record<string, DType> = Object.fromEntries(Object.entries(SAFETENSORS_DTYPE).map(([k, v]) => [v, k as DType]));

function requireLittleEndian(): void {
  if (new Uint8Array(Uint16Array.of(1).buffer)[0] !== 1) {
    throw new QforgeError("UNSUPPORTED", "safetensors files are little-endian; this platform is big-endian");
  }
}

export interface SafetensorsFile {
  readonly tensors: Record<string, Tensor>;
  readonly metadata: Record<string, string>;
}

/** Encodes tensors (in name order) and string metadata as a safetensors file. */
export function encodeSafetensors(tensors: Readonly<Record<string, Tensor>>, metadata: Readonly<Record<string, string>> = {}): Uint8Array {
  requireLittleEndian();
  const names = Object.keys(tensors).sort();
  const sub: Record<string, [DType, number[]]> = {};
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const name of names) {
    if (name === "__metadata__") throw new QforgeError("BAD_INPUT", "a tensor cannot be named __metadata__");
    const t = tensors[name]!;
    let st = SAFETENSORS_DTYPE[t.dtype];
    let shape = [...t.shape];
    if (st === undefined) {
      st = "U8";
      sub[name] = [t.dtype, [...t.shape]];
      shape = [t.data.byteLength];
    }
    header[name] = { dtype: st, shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  const meta: Record<string, string> = { ...metadata };
  if (Object.keys(sub).length > 0) meta["qforge.dtypes"] = JSON.stringify(sub);
  if (Object.keys(meta).length > 0) header["__metadata__"] = meta;
  let json = new TextEncoder().encode(JSON.stringify(header));
  const pad = (8 - (json.length % 8)) % 8;
  if (pad > 0) json = new TextEncoder().encode(JSON.stringify(header) + " ".repeat(pad));
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let at = 8 + json.length;
  for (const name of names) {
    const d = tensors[name]!.data;
    out.set(new Uint8Array(d.buffer, d.byteOffset, d.byteLength), at);
    at += d.byteLength;
  }
  return out;
}

/** Decodes a safetensors file (tensors get fresh, aligned storage). */
export function decodeSafetensors(bytes: Uint8Array): SafetensorsFile {
  requireLittleEndian();
  const bad = (msg: string): never => { throw new QforgeError("BAD_MODEL", `safetensors: ${msg}`); };
  if (bytes.length < 8) bad("file shorter than its 8-byte header length");
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
  if (8 + n > bytes.length) bad(`header length ${n} runs past the end of the file`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Record<string, unknown>;
  } catch (e) {
    return bad(`header is not JSON (${(e as Error).message})`);
  }
  const metadata = (header["__metadata__"] ?? {}) as Record<string, string>;
  const sub = JSON.parse(metadata["qforge.dtypes"] ?? "{}") as Record<string, [DType, number[]]>;
  const dataStart = 8 + n;
  const tensors: Record<string, Tensor> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const { dtype, shape, data_offsets: offs } = entry as { dtype: string; shape: number[]; data_offsets: [number, number] };
    const [a, b] = offs;
    if (!(0 <= a && a <= b && dataStart + b <= bytes.length)) bad(`tensor '${name}' has data offsets [${a}, ${b}] outside the file`);
    const raw = bytes.slice(dataStart + a, dataStart + b);
    const logical = sub[name];
    const dt: DType = logical !== undefined ? logical[0] : FROM_SAFETENSORS[dtype] ?? bad(`tensor '${name}' has unsupported dtype ${dtype}`);
    const sh = logical !== undefined ? logical[1] : shape;
    const storage = allocStorage(dt, numel(sh));
    if (storage.byteLength !== raw.byteLength) bad(`tensor '${name}': ${dt}[${sh.join(",")}] needs ${storage.byteLength} bytes, got ${raw.byteLength}`);
    new Uint8Array(storage.buffer).set(raw);
    tensors[name] = tensor(dt, sh, storage as TypedArray);
  }
  return { tensors, metadata };
}

// ---- quantized Modules ------------------------------------------------------------------------

interface ModuleEntry {
  readonly type: "QuantizedLinear" | "QuantizedEmbedding";
  readonly weight: WeightDescriptor;
  readonly act?: ActivationQuant;
  readonly bias?: boolean;
}

const MODULES_KEY = "qforge.ao.modules";

/**
 * The state_dict of a quantized Module as a safetensors file: every parameter and buffer (quantized
 * weights flattened), and the quantized layers' attributes in `__metadata__`.
 */
export function saveQuantizedModule(model: Module): Uint8Array {
  const modules: Record<string, ModuleEntry> = {};
  for (const [fqn, m] of model.namedModules()) {
    if (m instanceof QuantizedLinear) modules[fqn] = { type: "QuantizedLinear", weight: weightDescriptor(m.weight), act: m.act, bias: m.bias !== undefined };
    else if (m instanceof QuantizedEmbedding) modules[fqn] = { type: "QuantizedEmbedding", weight: weightDescriptor(m.weight) };
  }
  return encodeSafetensors(model.stateDict(), { format: "pt", [MODULES_KEY]: JSON.stringify(modules) });
}

/**
 * Loads a file from saveQuantizedModule into a model of the same architecture, in place: layers that
 * are float Linear/Embedding in `model` but quantized in the file are swapped for quantized modules
 * built from the stored tensors (no requantization); then every tensor is loaded by name
 * (loadStateDict, strict by default). Returns the model (a replaced root is returned instead).
 */
export function loadQuantizedModule<M extends Module>(model: M, bytes: Uint8Array, opts: { strict?: boolean } = {}): M {
  const { tensors, metadata } = decodeSafetensors(bytes);
  const modules = JSON.parse(metadata[MODULES_KEY] ?? "{}") as Record<string, ModuleEntry>;
  let root: Module = model;
  const byName = new Map(model.namedModules());
  for (const [fqn, e] of Object.entries(modules)) {
    const prefix = fqn === "" ? "" : `${fqn}.`;
    const parts = Object.fromEntries(weightTensorNames(e.weight).map((p) => [p, tensors[`${prefix}weight.${p}`]]));
    const w = weightFromParts(e.weight, parts, `${prefix}weight`);
    const current = byName.get(fqn);
    if (current === undefined) throw new QforgeError("BAD_INPUT", `the file quantizes '${fqn}', which the model does not have`, { node: fqn });
    if (current instanceof QuantizedLinear || current instanceof QuantizedEmbedding) continue; // loadStateDict fills it
    const next = e.type === "QuantizedLinear"
      ? new QuantizedLinear(w, e.bias === true ? tensors[`${prefix}bias`] : undefined, checkActivation(e.act ?? { kind: "none" }))
      : new QuantizedEmbedding(w);
    if (fqn === "") {
      root = next;
      continue;
    }
    const dot = fqn.lastIndexOf(".");
    const parent = byName.get(dot < 0 ? "" : fqn.slice(0, dot))!;
    const holder = parent as unknown as Record<string, unknown>;
    const name = fqn.slice(dot + 1);
    if (!Object.prototype.hasOwnProperty.call(holder, name) || holder[name] !== current) {
      throw new QforgeError("UNSUPPORTED", `cannot replace '${fqn}' inside ${parent.constructor.name}`, { node: fqn, hint: "hold the layer in a named property of a Module" });
    }
    holder[name] = next;
  }
  root.loadStateDict(tensors, { strict: opts.strict ?? true });
  return root as M;
}

// ---- ExportedPrograms ---------------------------------------------------------------------------

const GRAPH_KEY = "qforge.graph";
const PROGRAM_KEY = "qforge.program";

/**
 * An ExportedProgram as a safetensors file: every graph constant as a tensor, the graph as its
 * textual dump (printGraph) and the signature in `__metadata__`. loadProgram parses the dump back with
 * the stored tensors, checked against the content hashes the dump prints.
 */
export function saveProgram(ep: ExportedProgram): Uint8Array {
  const tensors: Record<string, Tensor> = {};
  const kinds: Record<string, ConstantKind> = {};
  for (const [name, c] of Object.entries(ep.graph.constants)) {
    tensors[name] = c.tensor;
    kinds[name] = c.kind;
  }
  return encodeSafetensors(tensors, {
    format: "qforge",
    [GRAPH_KEY]: printGraph(ep.graph),
    [PROGRAM_KEY]: JSON.stringify({ inputs: ep.inputs, outputs: ep.outputs, meta: ep.meta, kinds }),
  });
}

export function loadProgram(bytes: Uint8Array): ExportedProgram {
  const { tensors, metadata } = decodeSafetensors(bytes);
  const text = metadata[GRAPH_KEY];
  const prog = metadata[PROGRAM_KEY];
  if (text === undefined || prog === undefined) {
    throw new QforgeError("BAD_MODEL", "not a qforge program file: __metadata__ lacks qforge.graph / qforge.program", { hint: "write it with saveProgram" });
  }
  const p = JSON.parse(prog) as { inputs: IOSpec[]; outputs: IOSpec[]; meta: Record<string, unknown>; kinds: Record<string, ConstantKind> };
  const constants: Record<string, Constant> = {};
  for (const [name, t] of Object.entries(tensors)) constants[name] = { kind: p.kinds[name] ?? "constant", tensor: t };
  const graph = parseGraph(text, { constants });
  verifyGraph(graph);
  return { graph, inputs: p.inputs, outputs: p.outputs, meta: p.meta };
}
