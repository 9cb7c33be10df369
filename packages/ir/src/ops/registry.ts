import { QforgeError } from "../errors.js";
import type { DType } from "../dtype.js";
import type { AttrValue, Attrs, Dim, ValueType } from "../graph.js";
import type { Tensor } from "../tensor.js";

/** For dumps and colouring: what kind of work an op does. */
export type OpFamily = "compute" | "quantize" | "observer" | "other";

export type AttrType = "int" | "float" | "string" | "bool" | "ints" | "floats" | "strings";

export interface AttrSpec {
  readonly type: AttrType;
  /** Used when the node does not set the attribute. Absent + not required = the attribute is optional. */
  readonly default?: AttrValue;
  readonly required?: boolean;
  readonly doc?: string;
}

export interface PortSpec {
  readonly name: string;
  /** May be omitted ("" in node.inputs / trailing omission). */
  readonly optional?: boolean;
  /** Takes all remaining positions (only the last port). */
  readonly variadic?: boolean;
  /** Variadic ports: the fewest values accepted (default 1). */
  readonly min?: number;
}

/** What shape inference can see about a node. */
export interface InferContext {
  /** The node's name, for error messages. */
  readonly node: string;
  readonly op: string;
  /** Types of the node's inputs; undefined for omitted optional inputs. */
  readonly inputs: readonly (ValueType | undefined)[];
  /** Number of outputs the node declares. */
  readonly numOutputs: number;
  /** Attribute value with the schema default applied. */
  attr<T extends AttrValue>(name: string): T;
  /** Attribute value or undefined when neither set nor defaulted. */
  attrOpt<T extends AttrValue>(name: string): T | undefined;
  /** The constant value feeding input i, when known at compile time (for reshape's shape, etc.). */
  constant(i: number): Tensor | undefined;
  /** A typed error about this node. */
  fail(message: string, hint?: string): never;
}

/**
 * One declaration per op: signature, attributes with types and defaults, and the shape/dtype rule.
 * Reference kernels live in @qforge/runtime and are looked up by op name (the runtime checks that
 * every registered op has one).
 */
export interface OpSchema {
  readonly name: string;
  readonly family: OpFamily;
  readonly doc: string;
  readonly inputs: readonly PortSpec[];
  readonly outputs: readonly PortSpec[];
  readonly attrs: Readonly<Record<string, AttrSpec>>;
  /** Output types from input types and attributes. */
  infer(ctx: InferContext): ValueType[];
}

const REGISTRY = new Map<string, OpSchema>();

/** Declares an op. Declaring the same name twice is an error (one declaration per op). */
export function registerOp(schema: OpSchema): OpSchema {
  if (REGISTRY.has(schema.name)) {
    throw new QforgeError("DUPLICATE_NAME", `op '${schema.name}' is already registered`, { hint: "each op is declared once; pick another name" });
  }
  const last = schema.inputs.length - 1;
  schema.inputs.forEach((p, i) => {
    if (p.variadic && i !== last) throw new QforgeError("BAD_CONFIG", `op '${schema.name}': only the last input can be variadic`);
  });
  REGISTRY.set(schema.name, schema);
  return schema;
}

/** Replaces or adds a declaration: for tests and user plugins that deliberately override an op. */
export function registerOpOverride(schema: OpSchema): void {
  REGISTRY.set(schema.name, schema);
}

export function unregisterOp(name: string): void {
  REGISTRY.delete(name);
}

export function hasOp(name: string): boolean {
  return REGISTRY.has(name);
}

export function getOp(name: string, node?: string): OpSchema {
  const s = REGISTRY.get(name);
  if (s === undefined) {
    throw new QforgeError("UNKNOWN_OP", `unknown op '${name}'`, { node, hint: "register it with registerOp (see docs/add-an-op.md)" });
  }
  return s;
}

export function listOps(): string[] {
  return [...REGISTRY.keys()].sort();
}

export function opFamily(op: string): OpFamily {
  return REGISTRY.get(op)?.family ?? "other";
}

/** The attributes of a node with schema defaults filled in (unknown attribute names are an error). */
export function resolveAttrs(schema: OpSchema, attrs: Attrs, node?: string): Record<string, AttrValue> {
  const out: Record<string, AttrValue> = {};
  for (const [k, v] of Object.entries(attrs)) {
    const spec = schema.attrs[k];
    if (spec === undefined) {
      throw new QforgeError("BAD_ATTRIBUTE", `op '${schema.name}' has no attribute '${k}'`, {
        node, hint: `known attributes: ${Object.keys(schema.attrs).join(", ") || "(none)"}`,
      });
    }
    checkAttrType(schema.name, k, spec.type, v, node);
    out[k] = v;
  }
  for (const [k, spec] of Object.entries(schema.attrs)) {
    if (k in out) continue;
    if (spec.default !== undefined) out[k] = spec.default;
    else if (spec.required) {
      throw new QforgeError("BAD_ATTRIBUTE", `op '${schema.name}' needs attribute '${k}'`, { node });
    }
  }
  return out;
}

function checkAttrType(op: string, name: string, type: AttrType, v: AttrValue, node?: string): void {
  const ok = (() => {
    switch (type) {
      case "int": return typeof v === "number" && Number.isInteger(v);
      case "float": return typeof v === "number";
      case "string": return typeof v === "string";
      case "bool": return typeof v === "boolean";
      case "ints": return Array.isArray(v) && v.every((x) => typeof x === "number" && Number.isInteger(x));
      case "floats": return Array.isArray(v) && v.every((x) => typeof x === "number");
      case "strings": return Array.isArray(v) && v.every((x) => typeof x === "string");
    }
  })();
  if (!ok) {
    throw new QforgeError("BAD_ATTRIBUTE", `op '${op}': attribute '${name}' must be ${type}, got ${JSON.stringify(v)}`, { node });
  }
}

/** Checks the number of inputs/outputs of a node against its schema. */
export function checkArity(schema: OpSchema, numInputs: number, numOutputs: number, node?: string): void {
  const range = (ports: readonly PortSpec[]): [number, number] => {
    let min = 0;
    let max = 0;
    for (const p of ports) {
      if (p.variadic) {
        min += p.min ?? 1;
        max = Infinity;
        continue;
      }
      max += 1;
      if (!p.optional) min = max;
    }
    return [min, max];
  };
  const [imin, imax] = range(schema.inputs);
  if (numInputs < imin || numInputs > imax) {
    throw new QforgeError("BAD_ARITY", `op '${schema.name}' takes ${imin === imax ? imin : `${imin}..${imax === Infinity ? "n" : imax}`} inputs, got ${numInputs}`, { node });
  }
  const [omin, omax] = range(schema.outputs);
  if (numOutputs < Math.max(1, omin) || numOutputs > omax) {
    throw new QforgeError("BAD_ARITY", `op '${schema.name}' has ${omin === omax ? omin : `${omin}..${omax === Infinity ? "n" : omax}`} outputs, node declares ${numOutputs}`, { node });
  }
}

/** Builds the context `infer` sees. */
export function makeInferContext(
  schema: OpSchema,
  node: string,
  inputs: readonly (ValueType | undefined)[],
  attrs: Attrs,
  numOutputs: number,
  constant: (i: number) => Tensor | undefined,
): InferContext {
  const resolved = resolveAttrs(schema, attrs, node);
  return {
    node,
    op: schema.name,
    inputs,
    numOutputs,
    attr<T extends AttrValue>(name: string): T {
      const v = resolved[name];
      if (v === undefined) throw new QforgeError("BAD_ATTRIBUTE", `op '${schema.name}' needs attribute '${name}'`, { node });
      return v as T;
    },
    attrOpt<T extends AttrValue>(name: string): T | undefined {
      return resolved[name] as T | undefined;
    },
    constant,
    fail(message: string, hint?: string): never {
      throw new QforgeError("SHAPE_MISMATCH", `${schema.name}: ${message}`, { node, hint });
    },
  };
}

/** Infers a node's output types through its schema. */
export function inferNode(
  op: string,
  node: string,
  inputs: readonly (ValueType | undefined)[],
  attrs: Attrs,
  numOutputs: number,
  constant: (i: number) => Tensor | undefined = () => undefined,
): ValueType[] {
  const schema = getOp(op, node);
  checkArity(schema, inputs.length, numOutputs, node);
  schema.inputs.forEach((p, i) => {
    if (!p.optional && !p.variadic && inputs[i] === undefined && i < inputs.length) {
      throw new QforgeError("BAD_ARITY", `op '${op}': input '${p.name}' (#${i}) is required`, { node });
    }
  });
  const out = schema.infer(makeInferContext(schema, node, inputs, attrs, numOutputs, constant));
  return out.slice(0, numOutputs);
}

// ---- helpers for schemas -------------------------------------------------------------------

/** True when two dims are known to be equal, or at least one is symbolic (cannot be refuted). */
export function dimsCompatible(a: Dim, b: Dim): boolean {
  return typeof a === "string" || typeof b === "string" || a === b;
}

/** numpy-style broadcasting with symbolic dims; fails through ctx on a definite mismatch. */
export function broadcastShapes(ctx: Pick<InferContext, "fail">, ...shapes: (readonly Dim[])[]): Dim[] {
  const rank = Math.max(0, ...shapes.map((s) => s.length));
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    let d: Dim = 1;
    for (const s of shapes) {
      const k = s.length - rank + i;
      if (k < 0) continue;
      const e = s[k]!;
      if (e === 1) continue;
      if (d === 1) d = e;
      else if (typeof d === "number" && typeof e === "number" && d !== e) {
        ctx.fail(`cannot broadcast shapes ${shapes.map((x) => `[${x.join(",")}]`).join(" and ")}`);
      } else if (typeof d === "string" && typeof e === "number") d = e;
    }
    out.push(d);
  }
  return out;
}

/** Normalizes a possibly negative axis for a given rank. */
export function normAxis(ctx: Pick<InferContext, "fail">, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) ctx.fail(`axis ${axis} out of range for rank ${rank}`);
  return a;
}

/** The type of input i, failing if omitted. */
export function req(ctx: InferContext, i: number): ValueType {
  const t = ctx.inputs[i];
  if (t === undefined) ctx.fail(`input #${i} is required`);
  return t;
}

export function sameDType(ctx: InferContext, ...idx: number[]): DType {
  const ts = idx.map((i) => req(ctx, i));
  const d = ts[0]!.dtype;
  for (const t of ts) {
    if (t.dtype !== d) {
      throw new QforgeError("DTYPE_MISMATCH", `${ctx.op}: inputs have dtypes ${ts.map((x) => x.dtype).join(", ")}`, { node: ctx.node });
    }
  }
  return d;
}
