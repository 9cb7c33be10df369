import { getOp, QforgeError, scalar, type AttrValue, type Dim, type DType, type Tensor } from "@qforge/ir";
import { runOp } from "@qforge/runtime";
import { isState, type State } from "./state.js";
import { activeTracer, type Tracer } from "./trace.js";
import { Var } from "./var.js";

/** Anything that holds a tensor: a Var, module state, or a plain IR tensor (a constant). */
export type TensorLike = Var | State | Tensor;
/** An op operand; numbers become scalar tensors of the other operands' dtype. */
export type Operand = TensorLike | number;

export interface EmitOptions {
  /** Number of node outputs (default 1). */
  numOutputs?: number;
  /** dtype for number operands; defaults to the first tensor operand's. */
  scalarDType?: DType;
}

/**
 * The one op dispatch behind every functional op and module: eagerly it runs the runtime's
 * reference kernel (`runOp`), while tracing it records a node with the same op and attributes,
 * so eager and exported semantics agree by construction.
 */
export function emit(op: string, inputs: readonly (Operand | undefined)[], attrs: Record<string, AttrValue> = {}, opts: EmitOptions = {}): Var[] {
  const numOutputs = opts.numOutputs ?? 1;
  const scalarDType = opts.scalarDType ?? firstDType(inputs);
  const tracer = activeTracer();
  if (tracer === undefined) {
    const tensors = inputs.map((x) => (x === undefined ? undefined : eagerTensor(x, scalarDType, op)));
    return runOp(op, tensors, attrs, { numOutputs }).map((t) => Var.from(t));
  }
  const names = inputs.map((x, i) => (x === undefined ? "" : tracedValue(tracer, x, scalarDType, op, i)));
  return tracer.node(op, trimOmitted(names), attrs, numOutputs).map((v) => Var.traced(tracer, v));
}

/** `emit` for single-output ops. */
export function emit1(op: string, inputs: readonly (Operand | undefined)[], attrs: Record<string, AttrValue> = {}, opts: EmitOptions = {}): Var {
  return emit(op, inputs, attrs, opts)[0]!;
}

/** Trailing omitted optional inputs are dropped, as ONNX does. */
function trimOmitted(names: string[]): string[] {
  let n = names.length;
  while (n > 0 && names[n - 1] === "") n--;
  return names.slice(0, n);
}

function firstDType(inputs: readonly (Operand | undefined)[]): DType | undefined {
  for (const x of inputs) if (x !== undefined && typeof x !== "number") return dtypeOf(x);
  return undefined;
}

function scalarTensor(n: number, dtype: DType | undefined, op: string): Tensor {
  if (dtype === undefined) {
    throw new QforgeError("BAD_INPUT", `${op}: cannot tell the dtype of number operand ${n}`, { hint: "pass at least one tensor operand" });
  }
  return scalar(dtype, dtype === "int64" ? BigInt(Math.trunc(n)) : n);
}

function eagerTensor(x: Operand, dtype: DType | undefined, op: string): Tensor {
  if (typeof x === "number") return scalarTensor(x, dtype, op);
  if (x instanceof Var) {
    if (x.ref.kind === "traced") {
      throw new QforgeError("TRACE_ERROR", `${op}: a proxy from an export (value '${x.ref.value}') was used after tracing ended`, {
        hint: "proxies only live inside exportModel; run the module on real tensors instead",
      });
    }
    return x.ref.tensor;
  }
  if (isState(x)) return x.data;
  return x;
}

/** Port name for naming lifted constants (`reshape_shape`, `clip_min`, ...). */
function portName(op: string, i: number): string {
  const ports = getOp(op).inputs;
  const p = ports[Math.min(i, ports.length - 1)];
  return p === undefined ? "arg" : p.name.toLowerCase();
}

function tracedValue(tracer: Tracer, x: Operand, dtype: DType | undefined, op: string, i: number): string {
  if (typeof x === "number") return tracer.liftConstant(scalarTensor(x, dtype, op), `${op}_${portName(op, i)}`);
  if (x instanceof Var) {
    if (x.ref.kind === "eager") return tracer.liftConstant(x.ref.tensor, "tensor_constant");
    if (x.ref.tracer !== tracer) {
      throw new QforgeError("TRACE_ERROR", `${op}: value '${x.ref.value}' comes from another (finished) export`, {
        hint: "proxies only live inside the exportModel call that made them",
      });
    }
    return x.ref.value;
  }
  if (isState(x)) return tracer.stateValue(x);
  return tracer.liftConstant(x, `${op}_${portName(op, i)}`);
}

export function dtypeOf(x: TensorLike): DType {
  return x.dtype;
}

/** Static shape of an operand (a symbolic dim throws, see Var.shape). */
export function shapeOf(x: TensorLike): readonly number[] {
  return x.shape;
}

/** Shape with symbolic dims as names. */
export function dimsOf(x: TensorLike): readonly Dim[] {
  return x instanceof Var ? x.dims : x.shape;
}

export function rankOf(x: TensorLike): number {
  return dimsOf(x).length;
}
