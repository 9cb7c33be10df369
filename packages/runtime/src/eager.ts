import { QforgeError, getOp, type AttrValue, type Tensor } from "@qforge/ir";
import { executeOp } from "./execute.js";

/**
 * Runs one op eagerly, the way `nn` modules execute outside tracing: attributes get schema defaults,
 * output types are inferred from the inputs, the reference kernel runs. `numOutputs` defaults to
 * the op's required outputs (for variadic outputs such as split: the num_outputs attribute).
 */
export function runOp(
  op: string,
  inputs: readonly (Tensor | undefined)[],
  attrs: Record<string, AttrValue> = {},
  opts: { numOutputs?: number; node?: string } = {},
): Tensor[] {
  const node = opts.node ?? op;
  return executeOp(op, node, inputs, attrs, opts.numOutputs ?? defaultNumOutputs(op, attrs, node));
}

function defaultNumOutputs(op: string, attrs: Record<string, AttrValue>, node: string): number {
  const schema = getOp(op, node);
  if (schema.outputs.some((p) => p.variadic)) {
    const n = attrs["num_outputs"];
    if (typeof n === "number") return n;
    throw new QforgeError("BAD_ARITY", `op '${op}' has a variable number of outputs`, { node, hint: "pass opts.numOutputs" });
  }
  return Math.max(1, schema.outputs.filter((p) => !p.optional).length);
}
