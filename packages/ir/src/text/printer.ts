/**
 * printGraph: the textual dump of a Graph (syntax in docs/ir-text-format.md). One line per graph
 * input, constant, stray value, node, and a final `return`. Stable: the same graph prints the same
 * text whatever the insertion order of attribute and meta keys (they are sorted).
 *
 * Imports only ../graph, ../tensor, ../dtype, ../errors, ../convert: printing must not need the op
 * registry, so any op name prints.
 */
import { QforgeError } from "../errors.js";
import type { Constant, Dim, Graph, Node, NodeMeta, ValueType } from "../graph.js";
import { getElement, numel, type Tensor } from "../tensor.js";
import { encodeElement } from "../convert.js";
import { allocStorage, isFloat, type DType } from "../dtype.js";
import { storageBytes, tensorHash } from "./hash.js";
import {
  formatFramePart, formatKey, formatNodeName, formatNumber, formatOpName, formatValueRef, isSymbolicDimBare, quote,
} from "./lexical.js";

export interface PrintOptions {
  /**
   * "summary" (default): constants with more than `summarizeOver` elements print as
   * `summary(min=…, max=…, mean=…, fnv1a64=…)`; parse them back by passing the tensors to parseGraph.
   * "full": every constant prints its exact data, so the text alone parses back to an equal graph.
   */
  readonly constants?: "summary" | "full";
  /** Element count above which a constant is summarized (summary mode) or printed as hex (full mode). Default 16. */
  readonly summarizeOver?: number;
}

/** Meta keys printed first, in this order; the rest follow sorted. */
const LEADING_META_KEYS = ["moduleStack", "source", "debugHandle"] as const;

export function printGraph(g: Graph, opts: PrintOptions = {}): string {
  const mode = opts.constants ?? "summary";
  const limit = opts.summarizeOver ?? 16;
  const lines: string[] = [];
  const declared = new Set<string>();

  for (const name of g.inputs) {
    lines.push(`input ${typedRef(name, typeOf(g, name))}`);
    declared.add(name);
  }
  for (const [name, c] of Object.entries(g.constants)) {
    lines.push(constantLine(name, c, mode, limit));
    declared.add(name);
  }
  const produced = new Set<string>();
  for (const n of g.nodes) for (const o of n.outputs) produced.add(o);
  for (const [name, type] of Object.entries(g.values)) {
    if (!declared.has(name) && !produced.has(name)) lines.push(`value ${typedRef(name, type)}`);
  }
  for (const n of g.nodes) lines.push(nodeLine(n, g));
  lines.push(g.outputs.length === 0 ? "return" : `return ${g.outputs.map(ref).join(", ")}`);
  return lines.join("\n") + "\n";
}

/** Own-property lookup: a value may be called "__proto__" or "constructor". */
function typeOf(g: Graph, name: string): ValueType | undefined {
  return Object.prototype.hasOwnProperty.call(g.values, name) ? g.values[name] : undefined;
}

function ref(name: string): string {
  return name === "" ? "_" : formatValueRef(name);
}

export function formatDim(d: Dim): string {
  return typeof d === "number" ? formatNumber(d) : isSymbolicDimBare(d) ? d : quote(d);
}

export function formatType(t: ValueType): string {
  return `${t.dtype}[${t.shape.map(formatDim).join(",")}]`;
}

function typedRef(name: string, type: ValueType | undefined): string {
  if (name === "") return "_";
  return type === undefined ? ref(name) : `${ref(name)}: ${formatType(type)}`;
}

function constantLine(name: string, c: Constant, mode: "summary" | "full", limit: number): string {
  const t = c.tensor;
  const head = `${c.kind} ${formatValueRef(name)}: ${formatType({ dtype: t.dtype, shape: t.shape })} = `;
  const n = numel(t.shape);
  if (n <= limit) return head + (inlineValues(t) ?? hexData(t));
  return head + (mode === "full" ? hexData(t) : summary(t));
}

/**
 * The elements as a flat, row-major list, or undefined when reading that list back would not give
 * the same storage bytes (NaN payloads, padding bits of packed storage, bool bytes other than 0/1).
 * The check encodes exactly what the parser will read, element text by element text.
 */
function inlineValues(t: Tensor): string | undefined {
  const n = numel(t.shape);
  const parts: string[] = [];
  const check = allocStorage(t.dtype, n);
  for (let i = 0; i < n; i++) {
    let text: string;
    if (t.dtype === "int64") {
      text = String((t.data as BigInt64Array)[i]!);
      encodeElement(t.dtype, check, i, BigInt(text));
    } else if (t.dtype === "bool") {
      text = getElement(t, i) !== 0 ? "true" : "false";
      encodeElement(t.dtype, check, i, text === "true" ? 1 : 0);
    } else {
      text = shortestRepr(t.dtype, getElement(t, i));
      encodeElement(t.dtype, check, i, parseNumberText(text));
    }
    parts.push(text);
  }
  const a = storageBytes(t);
  const b = new Uint8Array(check.buffer, check.byteOffset, check.byteLength);
  if (a.length !== b.length) return undefined;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return undefined;
  return `[${parts.join(", ")}]`;
}

/**
 * float32 and narrower floats print the shortest decimal that reads back to the same float32
 * (0.01 for the float32 nearest to 0.01, not its exact double 0.009999999776482582). Every float16,
 * bfloat16 and fp8 value is a float32, so this shows the stored value itself (fp8 448 prints 448,
 * never a shorter neighbour such as 450 that would round to it). float64 and integers use String(v).
 */
function shortestRepr(dtype: DType, v: number): string {
  if (dtype === "float64" || !Number.isFinite(v) || v === 0 || !isFloat(dtype)) return formatNumber(v);
  for (let p = 1; p <= 9; p++) {
    const candidate = Number(v.toPrecision(p));
    if (Math.fround(candidate) === v) return formatNumber(candidate);
  }
  return formatNumber(v);
}

function parseNumberText(s: string): number {
  return s === "nan" ? NaN : s === "inf" ? Infinity : s === "-inf" ? -Infinity : Number(s);
}

function hexData(t: Tensor): string {
  const bytes = storageBytes(t);
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += bytes[i]!.toString(16).padStart(2, "0");
  return `hex"${s}"`;
}

/** Informational statistics (6 significant digits) plus the content hash the parser checks. */
function summary(t: Tensor): string {
  const n = numel(t.shape);
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  let count = 0;
  for (let i = 0; i < n; i++) {
    const v = getElement(t, i);
    if (Number.isNaN(v)) continue;
    if (v < min) min = v;
    if (v > max) max = v;
    sum += v;
    count++;
  }
  const stat = (x: number): string => formatNumber(Number.isFinite(x) ? Number(x.toPrecision(6)) : x);
  const stats = count === 0
    ? "min=nan, max=nan, mean=nan"
    : `min=${stat(min)}, max=${stat(max)}, mean=${stat(sum / count)}`;
  return `summary(${stats}, fnv1a64=${tensorHash(t)})`;
}

function nodeLine(n: Node, g: Graph): string {
  const outs = n.outputs.length === 0 ? "()" : n.outputs.map((o) => typedRef(o, typeOf(g, o))).join(", ");
  let line = `${outs} = ${formatOpName(n.op)}(${n.inputs.map(ref).join(", ")})`;
  const attrKeys = Object.keys(n.attrs).sort();
  if (attrKeys.length > 0) {
    line += ` {${attrKeys.map((k) => `${formatKey(k)}=${formatData(n.attrs[k], n.name)}`).join(", ")}}`;
  }
  if (n.outputs.length === 0 || n.name !== n.outputs[0]) line += ` ${formatNodeName(n.name)}`;
  const meta = formatMeta(n.meta, n.name);
  if (meta !== "") line += ` # ${meta}`;
  return line;
}

function formatMeta(meta: NodeMeta, node: string): string {
  const keys = Object.keys(meta).filter((k) => meta[k] !== undefined);
  const leading = LEADING_META_KEYS.filter((k) => keys.includes(k));
  const rest = keys.filter((k) => !(LEADING_META_KEYS as readonly string[]).includes(k)).sort();
  return [...leading, ...rest].map((k) => {
    const v = meta[k];
    const text = k === "moduleStack" && isFrameList(v)
      ? `<${v.map((f) => `${formatFramePart(f.path)}:${formatFramePart(f.type)}`).join(", ")}>`
      : formatData(v, node);
    return `${formatKey(k)}=${text}`;
  }).join(", ");
}

/** A non-empty list of exactly-{path, type} string frames prints in the short `<path:Type, ...>` form. */
function isFrameList(v: unknown): v is { path: string; type: string }[] {
  return Array.isArray(v) && v.length > 0 && v.every((f) =>
    isPlainObject(f) && Object.keys(f).length === 2 && typeof f.path === "string" && typeof f.type === "string");
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== "object" || v === null) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

/** JSON with sorted keys, `, ` / `: ` separators, and nan/inf/-0 number words (attrs and meta). */
function formatData(v: unknown, node: string): string {
  if (v === null) return "null";
  switch (typeof v) {
    case "number": return formatNumber(v);
    case "string": return quote(v);
    case "boolean": return v ? "true" : "false";
    default: break;
  }
  if (Array.isArray(v)) {
    const items: string[] = [];
    for (let i = 0; i < v.length; i++) {
      if (!(i in v) || v[i] === undefined) throw notJson(node, "an array hole or undefined element");
      items.push(formatData(v[i], node));
    }
    return `[${items.join(", ")}]`;
  }
  if (isPlainObject(v)) {
    const keys = Object.keys(v).filter((k) => v[k] !== undefined).sort();
    return `{${keys.map((k) => `${quote(k)}: ${formatData(v[k], node)}`).join(", ")}}`;
  }
  throw notJson(node, `a ${typeof v === "object" ? (v.constructor?.name ?? "object") : typeof v}`);
}

function notJson(node: string, what: string): QforgeError {
  return new QforgeError("BAD_DATA", `attrs/meta hold ${what}, which the text format cannot print`, {
    node,
    hint: "attributes are numbers, strings, booleans or lists of them; meta values must be JSON-compatible",
  });
}
