import { fromArray, type DType, type Tensor } from "@qforge/ir";
import { DataType, dtypeFromOnnx, onnxTypeName } from "../proto/enums.js";
import type { NodeContext } from "./context.js";

/** Converts one ONNX node; it must define every non-empty ONNX output. */
export type Converter = (c: NodeContext) => void;

/** Attributes no opset >= 6 has and that carry no meaning for inference (in-place hints of opset 1). */
export const LEGACY_HINT_ATTRS = ["consumed_inputs"] as const;

/** The plain rename: same inputs, outputs and attributes under the canonical op name. */
export function rename(op: string, omit: readonly string[] = []): Converter {
  return (c: NodeContext) => {
    c.emit(op, c.inputs, c.attrs.plain([...LEGACY_HINT_ATTRS, ...omit]), c.outputs);
  };
}

/**
 * For ops whose attribute became an input (Squeeze/Unsqueeze/Reduce* `axes`, Split `split`): before
 * `sinceInput` the attribute is turned into an int64 constant at input position `index`.
 */
export function intsAttrToInput(op: string, attr: string, index: number, sinceInput: number): Converter {
  return (c: NodeContext) => {
    if (c.opset >= sinceInput) {
      rename(op)(c);
      return;
    }
    const values = c.attrs.ints(attr);
    const inputs = [...c.inputs];
    if (values !== undefined && values.length > 0) {
      while (inputs.length < index) inputs.push("");
      inputs[index] = c.int64s(values, attr);
    }
    c.emit(op, inputs, c.attrs.plain([...LEGACY_HINT_ATTRS, attr]), c.outputs);
  };
}

/** A scalar constant of `dtype` (for attributes that became inputs: Clip min/max, Pad value). */
export function scalarOf(dtype: DType, value: number): Tensor {
  return fromArray(dtype, [], [value]);
}

/** The qforge dtype name for an ONNX `to`/`dtype` attribute (an enum number, or a type name in Cast-1). */
export function dtypeAttr(c: NodeContext, attr: string): DType | undefined {
  const t = c.attrs.typeOf(attr);
  if (t === undefined) return undefined;
  let code: number;
  if (t === 3 /* STRING */) {
    const s = c.attrs.string(attr)!.toUpperCase();
    const known = (DataType as Record<string, number>)[s];
    if (known === undefined) c.fail(`attribute '${attr}' names unknown type '${s}'`, { code: "BAD_MODEL" });
    code = known;
  } else {
    code = c.attrs.int(attr)!;
  }
  const d = dtypeFromOnnx(code);
  if (d === undefined) {
    if (code <= 0 || code > DataType.INT2) c.fail(`attribute '${attr}' is unknown data type ${code}`, { code: "BAD_MODEL" });
    c.fail(`casts to ${onnxTypeName(code)}, which qforge does not support`, {
      hint: "qforge tensors are numeric: string, uint64, complex, fp8 fnuz, fp4 and e8m0 have no qforge dtype",
    });
  }
  return d;
}

/** The static rank of a value, or a typed error. */
export function rankOf(c: NodeContext, v: string): number {
  return c.typeOf(v).shape.length;
}

/** Normalizes an axis against a rank (ONNX: negative counts from the back). */
export function normalizeAxis(c: NodeContext, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= Math.max(rank, 1)) c.fail(`axis ${axis} is out of range for rank ${rank}`, { code: "BAD_MODEL" });
  return a;
}
