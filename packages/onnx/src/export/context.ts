import {
  QforgeError, dtypeInfo, fromArray, numel, toNumbers,
  type DType, type Graph, type Node, type QforgeErrorCode, type Tensor, type ValueType,
} from "@qforge/ir";
import { NameScope } from "../import/context.js";
import type { AttributeProto, NodeProto, TensorProto } from "../proto/types.js";
import { tensorToProto } from "../tensor.js";
import { attr } from "./attrs.js";

/**
 * ONNX ops the exporter may write whose current form is newer than the opset-13 floor: the opset
 * where that form begins. `emit` checks it, so a row that picked a form its `since` did not
 * announce fails loudly instead of writing a model ONNX Runtime rejects.
 */
const FORM_SINCE: Readonly<Record<string, number>> = {
  HardSwish: 14, CastLike: 15, LayerNormalization: 17, Gelu: 20,
};

/** The floor: the forms the exporter writes (axes/split as inputs, per-axis Q/DQ) begin at 13. */
export const MIN_EXPORT_OPSET = 13;

/**
 * The state of one export: the qforge graph being read, the ONNX nodes and initializers written so
 * far, and the names. qforge value names are kept as ONNX names (they are unique already); the
 * exporter's own values get fresh names that no qforge value or signature name uses.
 */
export class ExportContext {
  readonly nodes: NodeProto[] = [];
  readonly initializers: TensorProto[] = [];
  private readonly valueNames: Map<string, string>;
  private readonly names: NameScope;
  private readonly nodeNames = new NameScope(new Set());
  private readonly materialized = new Set<string>();
  private readonly converted = new Map<string, string>();
  private current: Node | undefined;
  private emittedForCurrent = 0;

  /** ONNX names given out so far that a qforge value of the same name may not take. */
  private readonly taken = new Set<string>();

  /**
   * `valueNames`: ONNX names fixed in advance (the signature's); `reserved`: every qforge value
   * name and signature name, which fresh names avoid; `outputNames`: graph output names no value
   * may take (those an Identity node writes).
   */
  constructor(
    readonly graph: Graph, readonly opset: number, valueNames: ReadonlyMap<string, string>, reserved: ReadonlySet<string>,
    outputNames: Iterable<string> = [],
  ) {
    this.valueNames = new Map(valueNames);
    this.names = new NameScope(reserved);
    for (const n of [...valueNames.values(), ...outputNames]) this.taken.add(this.names.claim(n));
  }

  /** Makes `node` the one errors and fresh names refer to. */
  at(node: Node): void {
    this.current = node;
    this.emittedForCurrent = 0;
  }

  /** No current node: what is emitted next belongs to the graph (output Identity nodes). */
  leave(): void {
    this.current = undefined;
    this.emittedForCurrent = 0;
  }

  get node(): Node {
    if (this.current === undefined) throw new QforgeError("BAD_INPUT", "no current node");
    return this.current;
  }

  /** The ONNX name of a qforge value ("" stays ""). */
  name(v: string): string {
    if (v === "") return "";
    const known = this.valueNames.get(v);
    if (known !== undefined) return known;
    // A qforge value keeps its name unless a signature name took it.
    const n = this.taken.has(v) ? this.names.fresh(v) : this.names.claim(v);
    this.taken.add(n);
    this.valueNames.set(v, n);
    return n;
  }

  /** The ONNX name of a qforge value, writing a constant as an initializer on first use. */
  value(v: string): string {
    if (v === "") return "";
    const c = this.graph.constants[v];
    if (c !== undefined && !this.materialized.has(v)) {
      this.materialized.add(v);
      this.initializers.push(tensorToProto(c.tensor, this.name(v)));
    }
    if (c === undefined && this.graph.values[v] === undefined) {
      throw new QforgeError("DANGLING_INPUT", `value '${v}' is not defined`, { node: this.current?.name });
    }
    return this.name(v);
  }

  type(v: string): ValueType {
    const t = this.graph.values[v];
    if (t === undefined) throw new QforgeError("DANGLING_INPUT", `value '${v}' is not defined`, { node: this.current?.name });
    return t;
  }

  /** The tensor of a qforge constant, or undefined when `v` is computed. */
  constant(v: string): Tensor | undefined {
    return v === "" ? undefined : this.graph.constants[v]?.tensor;
  }

  /** The ONNX name of the current node's output i ("" when absent or not wanted). */
  out(i: number): string {
    return this.name(this.node.outputs[i] ?? "");
  }

  /** A fresh ONNX value name derived from the current node. */
  fresh(hint: string): string {
    return this.names.fresh(`${this.current?.name ?? "qforge"}/${hint}`);
  }

  /** A new initializer with a fresh name. */
  initializer(t: Tensor, hint: string): string {
    const name = this.fresh(hint);
    this.initializers.push(tensorToProto(t, name));
    return name;
  }

  int64s(values: readonly number[], hint: string): string {
    return this.initializer(fromArray("int64", [values.length], values), hint);
  }

  scalar(dtype: DType, value: number, hint: string): string {
    return this.initializer(fromArray(dtype, [], [value]), hint);
  }

  /**
   * `v` as a tensor of `dtype`: a constant is converted once and written as its own initializer
   * (float64 per-channel scales become float32, int32 zero points the quantized dtype); a computed
   * value of another dtype goes through Cast. Integer values must fit the target dtype.
   */
  valueAs(v: string, dtype: DType, hint: string, shape?: readonly number[]): string {
    const t = this.type(v);
    const c = this.constant(v);
    const reshaped = c !== undefined && shape !== undefined && (shape.length !== c.shape.length || shape.some((d, i) => d !== c.shape[i]));
    if (t.dtype === dtype && !reshaped) return this.value(v);
    const key = `${v}\u0000${dtype}\u0000${reshaped ? shape!.join(",") : ""}`;
    const hit = this.converted.get(key);
    if (hit !== undefined) return hit;
    let name: string;
    if (c !== undefined) {
      const values = toNumbers(c);
      const info = dtypeInfo(dtype);
      if (info.kind !== "float") {
        const bad = values.find((x) => !Number.isInteger(x) || x < info.min || x > info.max);
        if (bad !== undefined) this.fail(`${hint} value ${bad} does not fit ${dtype}`);
      }
      if (reshaped && numel(shape!) !== values.length) this.fail(`${hint} has ${values.length} elements, expected ${numel(shape!)}`);
      name = this.initializer(fromArray(dtype, reshaped ? shape! : c.shape, values), hint);
    } else {
      name = this.emit("Cast", [this.value(v)], [attr.dtype("to", dtype, this.current?.name)], 1)[0]!;
    }
    this.converted.set(key, name);
    return name;
  }

  /**
   * Writes an ONNX node. `outputs` are ONNX names or a count of fresh ones. The first node written
   * for a qforge node takes its name; the others get `<name>/<OpType>`.
   */
  emit(opType: string, inputs: readonly string[], attrs: readonly AttributeProto[] = [], outputs: number | readonly string[] = 1): string[] {
    const since = FORM_SINCE[opType];
    if (since !== undefined && this.opset < since) {
      this.fail(`${opType} needs opset ${since}, the model is opset ${this.opset}`);
    }
    const base = this.current?.name ?? opType;
    const nodeName = this.nodeNames.fresh(this.emittedForCurrent === 0 ? base : `${base}/${opType}`);
    this.emittedForCurrent++;
    const outs = typeof outputs === "number"
      ? Array.from({ length: outputs }, (_, i) => this.fresh(outputs > 1 ? `${opType}:${i}` : opType))
      : [...outputs];
    while (outs.length > 1 && outs[outs.length - 1] === "") outs.pop();
    const ins = [...inputs];
    while (ins.length > 0 && ins[ins.length - 1] === "") ins.pop();
    this.nodes.push({ name: nodeName, op_type: opType, input: ins, output: outs, attribute: [...attrs] });
    return outs;
  }

  fail(message: string, hint?: string, code: QforgeErrorCode = "UNSUPPORTED"): never {
    const op = this.current?.op;
    throw new QforgeError(code, `${op !== undefined ? `${op}: ` : ""}${message}`, { node: this.current?.name, hint });
  }
}

/** Elements of a constant as numbers; the caller knows it is small (qparams, axes). */
export function constNumbers(t: Tensor): number[] {
  return numel(t.shape) === 0 ? [] : toNumbers(t);
}
