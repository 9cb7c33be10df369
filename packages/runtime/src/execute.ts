import {
  QforgeError, getOp, inferNode, isQforgeError, numel, resolveAttrs, sameShape, storageLength,
  type AttrValue, type Attrs, type Tensor, type ValueType,
} from "@qforge/ir";
import { getKernel, type Kernel, type KernelContext } from "./kernel.js";

/**
 * Runs one op on concrete tensors: resolves attributes, infers output types through the op's schema
 * (with every input offered as a constant, so data-dependent shapes such as reshape's come out
 * numeric), runs the reference kernel, and checks that it produced what the schema promised. Errors
 * come out as QforgeErrors naming the node. `kernel` replaces the registered reference kernel (a
 * per-run override from RunOptions.kernels).
 */
export function executeOp(
  op: string, node: string, inputs: readonly (Tensor | undefined)[], attrs: Attrs, numOutputs: number, override?: Kernel,
): Tensor[] {
  const schema = getOp(op, node);
  const kernel = override ?? getKernel(op, node);
  const types = inputs.map((t): ValueType | undefined => (t === undefined ? undefined : { dtype: t.dtype, shape: t.shape }));
  const outputTypes = inferNode(op, node, types, attrs, numOutputs, (i) => inputs[i]);
  const resolved: Record<string, AttrValue> = resolveAttrs(schema, attrs, node);
  const ctx: KernelContext = { node, op, numOutputs, outputTypes };
  let outputs: Tensor[];
  try {
    outputs = kernel(inputs, resolved, ctx);
  } catch (e) {
    throw nodeError(e, op, node);
  }
  if (outputs.length < numOutputs) {
    throw new QforgeError("UNDEFINED_OUTPUT", `the '${op}' kernel returned ${outputs.length} outputs, the node uses ${numOutputs}`, { node });
  }
  for (let i = 0; i < numOutputs; i++) checkOutput(outputs[i]!, outputTypes[i], op, node, i);
  return outputs.slice(0, numOutputs);
}

function checkOutput(t: Tensor, want: ValueType | undefined, op: string, node: string, i: number): void {
  if (want === undefined) return;
  const shapeOk = want.shape.every((d) => typeof d === "number") ? sameShape(t.shape, want.shape as number[]) : t.shape.length === want.shape.length;
  if (t.dtype !== want.dtype || !shapeOk || t.data.length !== storageLength(t.dtype, numel(t.shape))) {
    throw new QforgeError("SHAPE_MISMATCH", `the '${op}' kernel produced ${t.dtype}[${t.shape.join(",")}] for output #${i}, the schema infers ${want.dtype}[${want.shape.join(",")}]`, {
      node, hint: "the kernel and the op schema disagree: fix one of them",
    });
  }
}

/** The message of a QforgeError without the "CODE: " prefix, node suffix and hint that its constructor added. */
function bareMessage(e: QforgeError): string {
  let m = e.message;
  if (m.startsWith(`${e.code}: `)) m = m.slice(e.code.length + 2);
  if (e.hint !== undefined) {
    const h = m.lastIndexOf(`\n  hint: ${e.hint}`);
    if (h >= 0) m = m.slice(0, h);
  }
  if (e.node !== undefined && m.endsWith(` [node ${e.node}]`)) m = m.slice(0, -` [node ${e.node}]`.length);
  return m;
}

/** Gives a kernel error the node's name: QforgeErrors keep their code, anything else becomes BAD_DATA. */
export function nodeError(e: unknown, op: string, node: string): QforgeError {
  if (isQforgeError(e)) {
    if (e.node !== undefined) return e;
    return new QforgeError(e.code, bareMessage(e), { node, hint: e.hint, cause: e });
  }
  const msg = e instanceof Error ? e.message : String(e);
  return new QforgeError("BAD_DATA", `the reference kernel for '${op}' failed: ${msg}`, { node, cause: e });
}
