import {
  GraphBuilder, QforgeError, fromArray, inferNode, numel,
  type AttrValue, type Attrs, type ConstantKind, type DType, type Dim, type Graph, type NodeMeta,
  type QforgeErrorCode, type Tensor, type ValueType,
} from "@qforge/ir";
import type { TensorProto } from "../proto/types.js";
import { DEFAULT_MAX_TENSOR_BYTES, declaredBytes, tensorFromProto, type TensorReadOptions } from "../tensor.js";
import type { OnnxAttrs } from "./attrs.js";

/**
 * Evaluates one op on constant inputs (the runtime's `runOp`, injected so that @qforge/onnx depends on
 * @qforge/ir only). `numOutputs` is the node's output count (for ops with variadic outputs such as
 * split). Returning undefined, or throwing, leaves the node in the graph.
 */
export type FoldFn = (op: string, inputs: readonly Tensor[], attrs: Attrs, numOutputs: number) => readonly Tensor[] | undefined;

/** Folded outputs larger than this stay as nodes: folding is for shape arithmetic, not for weights. */
export const FOLD_MAX_ELEMENTS = 4096;

/**
 * Ops cheap enough to evaluate at import when every input is a known constant: the shape
 * arithmetic exporters emit (Shape -> Gather -> Concat -> Reshape chains) and small elementwise math.
 */
export const FOLDABLE_OPS: ReadonlySet<string> = new Set([
  "shape", "size", "constant_of_shape", "gather", "concat", "unsqueeze", "squeeze", "slice", "cast", "cast_like",
  "reshape", "flatten", "range", "expand", "identity", "transpose", "tile", "split",
  "add", "sub", "mul", "div", "neg", "abs", "mod", "floor", "ceil", "sqrt", "reciprocal", "max", "min",
  "equal", "less", "greater", "less_or_equal", "greater_or_equal", "not", "and", "or", "where",
  "reduce_prod", "reduce_sum", "reduce_max", "reduce_min",
]);

/**
 * Refuses a statically sized value over the byte cap (a graph input, or a node output whose inferred
 * shape is static): an absurd declared size is the model's error at import, not an allocation
 * failure (RangeError / out of memory) when the graph later runs.
 */
export function checkValueSize(shape: readonly Dim[], dtype: DType, maxBytes: number, what: string, node: string): void {
  if (shape.some((d) => typeof d !== "number")) return;
  const bytes = declaredBytes(dtype, shape as number[]);
  if (bytes > maxBytes) {
    throw new QforgeError("BAD_MODEL", `${what} is ${dtype}[${shape.join(", ")}]: ${bytes} bytes, over the ${maxBytes}-byte limit`, {
      node, hint: "raise opts.maxTensorBytes if the model really is this large",
    });
  }
}

/** Names: ONNX value names are kept exactly; everything qforge adds gets a fresh name that no ONNX value uses. */
export class NameScope {
  private readonly taken = new Set<string>();
  /** The next suffix to try per base: 20000 unnamed Relu nodes must not retry relu_1..relu_k each time. */
  private readonly nextSuffix = new Map<string, number>();

  constructor(private readonly reserved: ReadonlySet<string>) {}

  /** Takes an ONNX value name as is. */
  claim(name: string): string {
    this.taken.add(name);
    return name;
  }

  /** `base`, or `base_1`, `base_2`, ... : unused so far and not an ONNX value name. */
  fresh(base: string): string {
    const clean = base === "" ? "v" : base;
    const free = (n: string): boolean => !this.taken.has(n) && !this.reserved.has(n);
    let name = clean;
    let i = this.nextSuffix.get(clean) ?? 1;
    if (!free(name)) {
      do name = `${clean}_${i++}`; while (!free(name));
    }
    this.nextSuffix.set(clean, i);
    this.taken.add(name);
    return name;
  }
}

interface Known {
  readonly tensor: Tensor;
  readonly kind: ConstantKind;
}

/**
 * The graph under construction. Constants (initializers, Constant nodes, folded values) are kept
 * aside and added to the graph only when a node or a graph output reads them, so that shape
 * arithmetic folded away leaves no dead constants behind.
 */
export class ImportState {
  readonly names: NameScope;
  private readonly b = new GraphBuilder();
  private readonly known = new Map<string, Known>();
  private readonly materialized = new Set<string>();
  folded = 0;

  constructor(reserved: ReadonlySet<string>, private readonly fold: FoldFn | undefined, readonly tensorOptions: TensorReadOptions = {}) {
    this.names = new NameScope(reserved);
  }

  isDefined(v: string): boolean {
    return this.known.has(v) || this.hasValue(v);
  }

  private hasValue(v: string): boolean {
    try {
      this.b.typeOf(v);
      return true;
    } catch {
      return false;
    }
  }

  typeOf(v: string, node?: string): ValueType {
    const k = this.known.get(v);
    if (k !== undefined) return { dtype: k.tensor.dtype, shape: [...k.tensor.shape] };
    if (!this.hasValue(v)) {
      throw new QforgeError("BAD_MODEL", `value '${v}' is used before it is defined`, { node });
    }
    return this.b.typeOf(v);
  }

  /** The value's tensor when it is known at import time. */
  constValue(v: string): Tensor | undefined {
    return this.known.get(v)?.tensor;
  }

  input(name: string, dtype: DType, shape: readonly Dim[]): void {
    this.b.input(this.names.claim(name), dtype, shape);
  }

  /** Records a constant under `name` (an ONNX value name, or one from names.fresh). */
  addConstant(name: string, tensor: Tensor, kind: ConstantKind = "constant"): string {
    this.known.set(this.names.claim(name), { tensor, kind });
    return name;
  }

  /** Puts a known constant into the graph on first use; returns the value name. */
  ref(v: string, node?: string): string {
    if (v === "") return v;
    const k = this.known.get(v);
    if (k !== undefined && !this.materialized.has(v)) {
      this.b.constant(v, k.tensor, k.kind);
      this.materialized.add(v);
      return v;
    }
    this.typeOf(v, node);
    return v;
  }

  output(v: string): void {
    this.b.output(this.ref(v));
  }

  build(): Graph {
    return this.b.build();
  }

  /**
   * Adds a node computing `outputs` ("" = output not wanted). When every input is known and the op
   * is foldable, the node is evaluated instead (Shape/Size of a static shape always; the others
   * through the injected fold function, only for small outputs).
   */
  node(op: string, inputs: readonly string[], attrs: Record<string, AttrValue>, outputs: readonly string[], name: string, meta: NodeMeta): void {
    if (this.tryFold(op, inputs, attrs, outputs, name)) return;
    const refs = inputs.map((v) => this.ref(v, name));
    this.b.node(op, refs, attrs, { name, outputs: [...outputs], meta });
    const maxBytes = this.tensorOptions.maxTensorBytes ?? DEFAULT_MAX_TENSOR_BYTES;
    for (const o of outputs) {
      if (o === "") continue;
      const t = this.b.typeOf(o);
      checkValueSize(t.shape, t.dtype, maxBytes, `output '${o}' of ${op}`, name);
    }
  }

  private tryFold(op: string, inputs: readonly string[], attrs: Record<string, AttrValue>, outputs: readonly string[], name: string): boolean {
    if (!FOLDABLE_OPS.has(op) || outputs.some((o) => o === "")) return false;
    if ((op === "shape" || op === "size") && outputs.length === 1) {
      const t = inputs[0] !== undefined && inputs[0] !== "" ? this.typeOf(inputs[0], name) : undefined;
      const r = t !== undefined ? staticShapeOp(op, t, attrs) : undefined;
      if (r === undefined) return false;
      this.addConstant(outputs[0]!, r);
      this.folded++;
      return true;
    }
    if (op === "identity" && inputs.length === 1 && outputs.length === 1) {
      const t = this.constValue(inputs[0]!);
      if (t === undefined) return false;
      this.addConstant(outputs[0]!, t);
      this.folded++;
      return true;
    }
    if (this.fold === undefined) return false;
    const ins = trimTrailingEmpty(inputs);
    if (ins.length === 0 || ins.some((v) => v === "")) return false;
    const tensors = ins.map((v) => this.constValue(v));
    if (tensors.some((t) => t === undefined || numel(t.shape) > FOLD_MAX_ELEMENTS)) return false;
    const types = ins.map((v) => this.typeOf(v, name));
    const inferred = inferNode(op, name, types, attrs, outputs.length, (i) => tensors[i]);
    for (const t of inferred) {
      if (t.shape.some((d) => typeof d !== "number") || numel(t.shape as number[]) > FOLD_MAX_ELEMENTS) return false;
    }
    let result: readonly Tensor[] | undefined;
    try {
      result = this.fold(op, tensors as Tensor[], attrs, outputs.length);
    } catch {
      // The node stays; running it will report the problem where it belongs.
      return false;
    }
    if (result === undefined || result.length < outputs.length) return false;
    for (let i = 0; i < outputs.length; i++) {
      const r = result[i]!;
      const want = inferred[i]!;
      if (r.dtype !== want.dtype || r.shape.length !== want.shape.length || r.shape.some((d, j) => d !== want.shape[j])) return false;
    }
    outputs.forEach((o, i) => this.addConstant(o, result[i]!));
    this.folded++;
    return true;
  }
}

function trimTrailingEmpty(xs: readonly string[]): readonly string[] {
  let n = xs.length;
  while (n > 0 && xs[n - 1] === "") n--;
  return xs.slice(0, n);
}

/**
 * ONNX Shape-15 (start/end clamp to [0, rank], negatives count from the back) and Size, evaluated
 * from a fully static input shape; undefined when a dim is symbolic.
 */
export function staticShapeOp(op: "shape" | "size", t: ValueType, attrs: Record<string, AttrValue>): Tensor | undefined {
  if (t.shape.some((d) => typeof d !== "number")) return undefined;
  const dims = t.shape as number[];
  if (op === "size") return fromArray("int64", [], [numel(dims)]);
  const rank = dims.length;
  const clamp = (v: number): number => Math.min(Math.max(v < 0 ? v + rank : v, 0), rank);
  const start = clamp(typeof attrs.start === "number" ? attrs.start : 0);
  const end = clamp(typeof attrs.end === "number" ? attrs.end : rank);
  const picked = dims.slice(start, Math.max(start, end));
  return fromArray("int64", [picked.length], picked);
}

/** What a converter sees: one ONNX node and the means to emit qforge nodes for it. */
export interface NodeContext {
  readonly opType: string;
  /** The model's default-domain opset version. */
  readonly opset: number;
  /** The qforge name of the node (the ONNX name when it has one). */
  readonly name: string;
  /** ONNX input names; "" = omitted; trailing omitted inputs are trimmed. */
  readonly inputs: readonly string[];
  /** ONNX output names; "" = not produced. */
  readonly outputs: readonly string[];
  readonly attrs: OnnxAttrs;
  /** Input i, or "" when absent. */
  input(i: number): string;
  /** Emits a qforge node. `outputs` are value names ("" = not wanted) or a count of fresh names. */
  emit(op: string, inputs: readonly string[], attrs?: Record<string, AttrValue>, outputs?: readonly string[] | number): string[];
  /** Reads a tensor attribute (with the model's folder and size limit, like initializers). */
  tensor(p: TensorProto, name: string): Tensor;
  /** A fresh value name (for intermediate outputs mixed with ONNX-named ones). */
  fresh(hint: string): string;
  /** Defines an ONNX output as a known constant (Constant nodes). */
  defineConstant(output: string, t: Tensor): void;
  /** A constant with a fresh name. */
  constant(t: Tensor, hint?: string): string;
  /** A 1-D int64 constant. */
  int64s(values: readonly number[], hint?: string): string;
  typeOf(v: string): ValueType;
  /** The value's tensor when known at import time (initializer, Constant, folded). */
  constValue(v: string): Tensor | undefined;
  /** True when the ONNX value is read by some node or is a graph output. */
  isUsed(v: string): boolean;
  fail(message: string, opts?: { code?: QforgeErrorCode; hint?: string }): never;
}

export function makeNodeContext(
  state: ImportState,
  node: { opType: string; name: string; inputs: readonly string[]; outputs: readonly string[]; attrs: OnnxAttrs; meta: NodeMeta },
  opset: number,
  used: ReadonlySet<string>,
): NodeContext {
  let emitted = 0;
  const ctx: NodeContext = {
    opType: node.opType,
    opset,
    name: node.name,
    inputs: node.inputs,
    outputs: node.outputs,
    attrs: node.attrs,
    input: (i) => node.inputs[i] ?? "",
    emit(op, inputs, attrs = {}, outputs = 1) {
      const nodeName = emitted === 0 ? node.name : state.names.fresh(`${node.name}/${op}`);
      emitted++;
      const outs = typeof outputs === "number"
        ? Array.from({ length: outputs }, (_, i) => state.names.fresh(`${node.name}/${op}${outputs > 1 ? `:${i}` : ""}`))
        : outputs.map((o) => (o === "" ? "" : state.names.claim(o)));
      state.node(op, inputs, attrs, outs, nodeName, node.meta);
      return outs;
    },
    tensor: (p, name) => tensorFromProto(p, { ...state.tensorOptions, name }),
    fresh: (hint) => state.names.fresh(`${node.name}/${hint}`),
    defineConstant: (output, t) => { state.addConstant(output, t); },
    constant: (t, hint = "const") => state.addConstant(state.names.fresh(`${node.name}/${hint}`), t),
    int64s: (values, hint = "const") => ctx.constant(fromArray("int64", [values.length], values), hint),
    typeOf: (v) => state.typeOf(v, node.name),
    constValue: (v) => state.constValue(v),
    isUsed: (v) => v !== "" && used.has(v),
    fail(message, opts = {}) {
      throw new QforgeError(opts.code ?? "UNSUPPORTED", `${node.opType}: ${message}`, { node: node.name, hint: opts.hint });
    },
  };
  return ctx;
}
