import { getElement, numel, QforgeError, toNumbers, type Dim, type DType, type Tensor, type ValueType } from "@qforge/ir";
import * as F from "./functional.js";
import { formatLocation, userCallSite } from "./source.js";
import type { Operand, TensorLike } from "./dispatch.js";
import type { Tracer } from "./trace.js";

/** What a Var stands for: real data (eager) or a graph value being recorded (traced). */
export type VarRef =
  | { readonly kind: "eager"; readonly tensor: Tensor }
  | { readonly kind: "traced"; readonly tracer: Tracer; readonly value: string; readonly type: ValueType };

const CONTROL_FLOW_HINT = "data-dependent control flow can't be traced; use where/clamp or move the branch out of forward";

/**
 * The value flowing through `forward`: a real tensor when a module runs eagerly, a proxy for a
 * graph value while `exportModel` traces (torch's Tensor vs. FX Proxy, behind one type). Shapes
 * are static and readable in both modes; the data of a proxy is not, because branching on it
 * cannot be recorded in a graph.
 */
export class Var {
  /** @internal Read by op dispatch; user code goes through the methods below. */
  readonly ref: VarRef;

  private constructor(ref: VarRef) {
    this.ref = ref;
  }

  /** Wraps a tensor for eager use (no copy). Inside a trace it becomes a graph constant when used. */
  static from(t: Tensor): Var {
    return new Var({ kind: "eager", tensor: t });
  }

  /** @internal A proxy for `value` in `tracer`'s graph. */
  static traced(tracer: Tracer, value: string): Var {
    return new Var({ kind: "traced", tracer, value, type: tracer.typeOf(value) });
  }

  get isProxy(): boolean {
    return this.ref.kind === "traced";
  }

  get dtype(): DType {
    return this.ref.kind === "eager" ? this.ref.tensor.dtype : this.ref.type.dtype;
  }

  /** Dimensions, symbolic ones (from `dynamicDims`) as their names. */
  get dims(): readonly Dim[] {
    return this.ref.kind === "eager" ? this.ref.tensor.shape : this.ref.type.shape;
  }

  get ndim(): number {
    return this.dims.length;
  }

  /**
   * Static sizes. Reading a symbolic dimension throws: a number read here would be baked into
   * the graph and specialize the export to the example's size (torch.export reports the same as
   * a constraint violation).
   */
  get shape(): readonly number[] {
    const dims = this.dims;
    if (dims.every((d): d is number => typeof d === "number")) return dims;
    const value = this.ref.kind === "traced" ? this.ref.value : "";
    return new Proxy(dims as number[], {
      get(target, key, receiver) {
        const d: unknown = Reflect.get(target, key, receiver);
        if (typeof d === "string") {
          const site = userCallSite();
          throw new QforgeError("UNSUPPORTED", `dimension ${String(key)} of '${value}' is dynamic ('${d}')${site ? ` (read at ${formatLocation(site)})` : ""}`, {
            node: value,
            hint: "a dynamic size cannot be read as a number while exporting; use -1 in reshape, flatten, or keep the dimension static",
          });
        }
        return d;
      },
    });
  }

  /** The data. Throws CONTROL_FLOW on a proxy. */
  toTensor(): Tensor {
    if (this.ref.kind === "traced") throw this.controlFlow("reading the data");
    return this.ref.tensor;
  }

  get data(): Tensor {
    return this.toTensor();
  }

  /** The one element as a number (torch's `.item()`). */
  item(): number {
    if (this.ref.kind === "traced") throw this.controlFlow(".item()");
    const t = this.ref.tensor;
    if (numel(t.shape) !== 1) {
      throw new QforgeError("BAD_INPUT", `item() needs a one-element tensor, got shape [${t.shape.join(",")}]`, {
        hint: "select one element first, or use toArray()",
      });
    }
    return getElement(t, 0);
  }

  /** All elements, row-major, as numbers. */
  toArray(): number[] {
    if (this.ref.kind === "traced") throw this.controlFlow(".toArray()");
    return toNumbers(this.ref.tensor);
  }

  /** `x > 0`, `+x`, `x == 1` land here: a number for one-element eager tensors. */
  valueOf(): number {
    if (this.ref.kind === "traced") throw this.controlFlow("converting to a number");
    return this.item();
  }

  [Symbol.toPrimitive](hint: "number" | "string" | "default"): number | string {
    if (hint === "string") return this.toString();
    if (this.ref.kind === "traced") throw this.controlFlow(hint === "number" ? "converting to a number" : "using as a primitive");
    return this.item();
  }

  toString(): string {
    const dims = `${this.dtype}[${this.dims.join(",")}]`;
    return this.ref.kind === "traced" ? `Var(proxy ${this.ref.value}: ${dims})` : `Var(${dims})`;
  }

  [Symbol.for("nodejs.util.inspect.custom")](): string {
    return this.toString();
  }

  private controlFlow(what: string): QforgeError {
    const value = this.ref.kind === "traced" ? this.ref.value : "";
    const site = userCallSite();
    const at = site !== undefined ? ` at ${formatLocation(site)}` : "";
    return new QforgeError("CONTROL_FLOW", `${what} of traced value '${value}'${at}`, { node: value, hint: CONTROL_FLOW_HINT });
  }

  // ---- torch-style methods; each is the functional op of the same name --------------------

  add(other: Operand): Var { return F.add(this, other); }
  sub(other: Operand): Var { return F.sub(this, other); }
  mul(other: Operand): Var { return F.mul(this, other); }
  div(other: Operand): Var { return F.div(this, other); }
  pow(exponent: Operand): Var { return F.pow(this, exponent); }
  neg(): Var { return F.neg(this); }
  matmul(other: TensorLike): Var { return F.matmul(this, other); }
  relu(): Var { return F.relu(this); }
  sigmoid(): Var { return F.sigmoid(this); }
  tanh(): Var { return F.tanh(this); }
  exp(): Var { return F.exp(this); }
  clamp(min?: number, max?: number): Var { return F.clamp(this, min, max); }
  softmax(dim: number): Var { return F.softmax(this, dim); }
  reshape(shape: readonly number[]): Var { return F.reshape(this, shape); }
  view(shape: readonly number[]): Var { return F.reshape(this, shape); }
  permute(dims: readonly number[]): Var { return F.permute(this, dims); }
  transpose(dim0: number, dim1: number): Var { return F.transpose(this, dim0, dim1); }
  flatten(startDim = 0, endDim = -1): Var { return F.flatten(this, startDim, endDim); }
  mean(dim?: number | readonly number[], keepdim = false): Var { return F.mean(this, dim, keepdim); }
  sum(dim?: number | readonly number[], keepdim = false): Var { return F.sum(this, dim, keepdim); }
}
