/**
 * fast-check arbitraries for IR values. `arbGraph` builds structurally valid graphs (every node input
 * is "" or an earlier value, value names are unique) with hostile names, every dtype, raw random
 * constant bytes, every AttrValue kind and arbitrary JSON meta. It does not try to satisfy op schemas.
 */
import fc from "fast-check";
import { DTYPES, allocStorage, type DType } from "../src/dtype.js";
import type { AttrValue, Constant, ConstantKind, Dim, Graph, Node, NodeMeta, ValueType } from "../src/graph.js";
import { numel, type Tensor } from "../src/tensor.js";

/** Names ONNX and users produce: plain, dotted, slashed, coloned, quoted, keywords, unicode, empty. */
export const arbString: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.stringMatching(/^[a-z_][a-z0-9_]{0,6}$/) },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      "conv1.weight", "/features/0/Conv_output_0", "onnx::Conv_3", "split:0", "a:", ":", "x y", 'q"uote', "back\\slash",
      "new\nline", "tab\t", "cr\r", "ünïcødé", "🙂", "\u2028", "\ud800", "__proto__", "constructor", "_", "%", "@", "#",
      "return", "input", "value", "nan", "inf", "-inf", "true", "null", "0", "-1", "1e3", "", "a,b", "a=b", "[x]", "{y}", "<z>",
    ),
  },
  { weight: 2, arbitrary: fc.string({ unit: "binary", maxLength: 8 }) },
);

const arbValueName = arbString.filter((s) => s !== "");

/** Numbers that stress printing: -0, NaN, infinities, extremes, shortest-repr cases. */
export const arbNumber: fc.Arbitrary<number> = fc.oneof(
  fc.double(),
  fc.integer(),
  fc.constantFrom(-0, 0, NaN, Infinity, -Infinity, 1e-300, 5e-324, Number.MAX_VALUE, -Number.MIN_VALUE, 0.1, 1e21, 123456789012345680000),
);

export const arbAttrValue: fc.Arbitrary<AttrValue> = fc.oneof(
  arbNumber,
  arbString,
  fc.boolean(),
  fc.array(arbNumber, { maxLength: 4 }),
  fc.array(arbString, { maxLength: 3 }),
  fc.constant([] as number[]),
);

export const arbDim: fc.Arbitrary<Dim> = fc.oneof(
  { weight: 4, arbitrary: fc.nat(6) },
  { weight: 2, arbitrary: arbString },
  { weight: 1, arbitrary: fc.constantFrom("N", "batch", "seq len", "2", "nan", "inf") },
);

export const arbValueType: fc.Arbitrary<ValueType> = fc.record({
  dtype: fc.constantFrom(...DTYPES),
  shape: fc.array(arbDim, { maxLength: 4 }),
});

/** A tensor of any dtype with arbitrary storage bytes (NaN payloads, padding bits, any int64). */
export const arbTensor: fc.Arbitrary<Tensor> = fc
  .record({
    dtype: fc.constantFrom(...DTYPES),
    shape: fc.oneof(fc.array(fc.nat(3), { maxLength: 3 }), fc.constant<number[]>([0]), fc.constant<number[]>([17]), fc.constant<number[]>([4, 5])),
    clean: fc.boolean(),
  })
  .chain(({ dtype, shape, clean }) => {
    const n = numel(shape);
    const bytes = allocStorage(dtype, n).byteLength;
    const raw = fc.oneof(
      fc.uint8Array({ minLength: bytes, maxLength: bytes }),
      // bytes that make NaNs with payloads, infinities, -0 and sign-bit patterns likely
      fc.array(fc.constantFrom(0x00, 0x01, 0x7f, 0x80, 0xc0, 0xf0, 0xff), { minLength: bytes, maxLength: bytes }).map((a) => Uint8Array.from(a)),
    );
    return raw.map((r) => makeTensor(dtype, shape, r, clean));
  });

function makeTensor(dtype: DType, shape: readonly number[], raw: Uint8Array, clean: boolean): Tensor {
  const data = allocStorage(dtype, numel(shape));
  const view = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  view.set(raw);
  // "clean" bools hold 0/1 so that they print as a true/false list rather than hex.
  if (clean && dtype === "bool") for (let i = 0; i < view.length; i++) view[i]! &= 1;
  return { dtype, shape, data };
}

export const arbConstant: fc.Arbitrary<Constant> = fc.record({
  kind: fc.constantFrom<ConstantKind>("parameter", "buffer", "constant"),
  tensor: arbTensor,
});

const arbKey = arbString;

function entriesToObject<T>(entries: [string, T][]): Record<string, T> {
  return Object.fromEntries(entries); // own data properties, "__proto__" included
}

export const arbAttrs: fc.Arbitrary<Record<string, AttrValue>> = fc
  .uniqueArray(fc.tuple(arbKey, arbAttrValue), { maxLength: 4, selector: ([k]) => k })
  .map(entriesToObject);

const arbFrame = fc.record({ path: arbString, type: arbString });

export const arbMeta: fc.Arbitrary<NodeMeta> = fc
  .record(
    {
      moduleStack: fc.oneof(
        { weight: 4, arbitrary: fc.array(arbFrame, { maxLength: 3 }) },
        { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) }, // not frames: printed as plain JSON
      ),
      source: fc.oneof(arbString, fc.constant("model.ts:12:5")),
      debugHandle: fc.oneof(fc.nat(), arbNumber),
      extra: fc.uniqueArray(fc.tuple(arbKey, fc.jsonValue({ maxDepth: 3 })), { maxLength: 3, selector: ([k]) => k }),
    },
    { requiredKeys: [] },
  )
  .map(({ extra, ...known }) => {
    const meta: Record<string, unknown> = entriesToObject(extra ?? []);
    for (const [k, v] of Object.entries(known)) Object.defineProperty(meta, k, { value: v, enumerable: true, writable: true, configurable: true });
    return meta as NodeMeta;
  });

const OPS = ["conv2d", "linear", "relu", "add", "quantized_decomposed.quantize_per_tensor", "aten::mul.Tensor", "Custom Op", "return", "_"];

interface NodeSpec {
  op: string;
  inputs: { omit: boolean; pick: number }[];
  outputs: { omit: boolean; type: ValueType; untyped: boolean }[];
  sameName: boolean;
  otherName: string;
  attrs: Record<string, AttrValue>;
  meta: NodeMeta;
}

const arbNodeSpec: fc.Arbitrary<NodeSpec> = fc.record({
  op: fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...OPS) }, { weight: 1, arbitrary: arbString }),
  inputs: fc.array(fc.record({ omit: fc.integer({ min: 0, max: 4 }).map((x) => x === 0), pick: fc.nat(1000) }), { maxLength: 4 }),
  outputs: fc.array(fc.record({ omit: fc.integer({ min: 0, max: 9 }).map((x) => x === 0), type: arbValueType, untyped: fc.integer({ min: 0, max: 9 }).map((x) => x === 0) }), { maxLength: 3 }),
  sameName: fc.boolean(),
  otherName: arbString,
  attrs: arbAttrs,
  meta: arbMeta,
});

/** Structurally valid graphs (not schema-valid). */
export const arbGraph: fc.Arbitrary<Graph> = fc
  .record({
    names: fc.uniqueArray(arbValueName, { minLength: 40, maxLength: 40 }),
    inputs: fc.array(arbValueType, { maxLength: 3 }),
    constants: fc.array(arbConstant, { maxLength: 4 }),
    nodes: fc.array(arbNodeSpec, { maxLength: 8 }),
    orphans: fc.array(arbValueType, { maxLength: 2 }),
    outputs: fc.array(fc.nat(1000), { maxLength: 3 }),
  })
  .map(({ names, inputs, constants, nodes, orphans, outputs }) => {
    let next = 0;
    const fresh = (): string => names[next++]!;
    const values: Record<string, ValueType> = {};
    const setValue = (n: string, t: ValueType): void => {
      Object.defineProperty(values, n, { value: t, enumerable: true, writable: true, configurable: true });
    };
    const available: string[] = [];
    const g = { inputs: [] as string[], outputs: [] as string[], constants: {} as Record<string, Constant>, nodes: [] as Node[], values };
    for (const t of inputs) {
      const n = fresh();
      g.inputs.push(n);
      setValue(n, t);
      available.push(n);
    }
    for (const c of constants) {
      const n = fresh();
      Object.defineProperty(g.constants, n, { value: c, enumerable: true, writable: true, configurable: true });
      setValue(n, { dtype: c.tensor.dtype, shape: [...c.tensor.shape] });
      available.push(n);
    }
    for (const t of orphans) setValue(fresh(), t);
    for (const spec of nodes) {
      const ins = spec.inputs.map((i) => (i.omit || available.length === 0 ? "" : available[i.pick % available.length]!));
      const outs: string[] = [];
      for (const o of spec.outputs) {
        if (o.omit) {
          outs.push("");
          continue;
        }
        const n = fresh();
        outs.push(n);
        if (!o.untyped) setValue(n, o.type);
      }
      const name = spec.sameName && outs.length > 0 ? outs[0]! : spec.otherName;
      g.nodes.push({ name, op: spec.op, inputs: ins, outputs: outs, attrs: spec.attrs, meta: spec.meta });
      for (const o of outs) if (o !== "") available.push(o);
    }
    g.outputs = available.length === 0 ? [] : outputs.map((p) => available[p % available.length]!);
    return g as Graph;
  });

function isTypedArray(v: unknown): v is ArrayBufferView {
  return ArrayBuffer.isView(v) && !(v instanceof DataView);
}

/**
 * The first difference between two IR values, or undefined when they are equal: numbers compare with
 * Object.is (-0 differs from 0, NaN equals NaN), typed arrays by type and bytes, objects by own
 * enumerable keys in any order (prototype ignored).
 */
export function graphDiff(a: unknown, b: unknown, path = "graph"): string | undefined {
  if (typeof a !== "object" || a === null || typeof b !== "object" || b === null) {
    return Object.is(a, b) ? undefined : `${path}: ${describe(a)} vs ${describe(b)}`;
  }
  if (isTypedArray(a) || isTypedArray(b)) {
    if (!isTypedArray(a) || !isTypedArray(b)) return `${path}: typed array vs ${isTypedArray(a) ? describe(b) : describe(a)}`;
    if (a.constructor !== b.constructor) return `${path}: ${a.constructor.name} vs ${b.constructor.name}`;
    const x = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    const y = new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    if (x.length !== y.length) return `${path}: ${x.length} vs ${y.length} bytes`;
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return `${path}: byte ${i} ${x[i]} vs ${y[i]}`;
    return undefined;
  }
  if (Array.isArray(a) !== Array.isArray(b)) return `${path}: array vs object`;
  if (Array.isArray(a) && Array.isArray(b)) {
    if (a.length !== b.length) return `${path}: length ${a.length} vs ${b.length}`;
    for (let i = 0; i < a.length; i++) {
      const d = graphDiff(a[i], b[i], `${path}[${i}]`);
      if (d !== undefined) return d;
    }
    return undefined;
  }
  const ka = Object.keys(a).sort();
  const kb = Object.keys(b).sort();
  if (ka.length !== kb.length || ka.some((k, i) => k !== kb[i])) {
    return `${path}: keys ${JSON.stringify(ka)} vs ${JSON.stringify(kb)}`;
  }
  for (const k of ka) {
    const d = graphDiff((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], `${path}[${JSON.stringify(k)}]`);
    if (d !== undefined) return d;
  }
  return undefined;
}

function describe(v: unknown): string {
  if (typeof v === "number") return Object.is(v, -0) ? "-0" : String(v);
  if (typeof v === "string") return JSON.stringify(v);
  if (typeof v === "bigint") return `${v}n`;
  return v === null ? "null" : Array.isArray(v) ? "array" : typeof v;
}
