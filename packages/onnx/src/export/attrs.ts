import { QforgeError, getOp, type AttrValue, type Node, type Tensor } from "@qforge/ir";
import { AttributeType, onnxFromDType } from "../proto/enums.js";
import type { AttributeProto } from "../proto/types.js";
import { tensorToProto } from "../tensor.js";

/**
 * AttributeProto builders with explicit types. qforge attribute values are JS numbers whose int/float
 * kind lives in the op schema, so the exporter never guesses from the value (a float attribute that
 * happens to be 1 must still be written as FLOAT).
 */

const utf8 = new TextEncoder();

export const attr = {
  int: (name: string, v: number | boolean): AttributeProto => ({ name, type: AttributeType.INT, i: typeof v === "boolean" ? (v ? 1 : 0) : v }),
  float: (name: string, v: number): AttributeProto => ({ name, type: AttributeType.FLOAT, f: v }),
  string: (name: string, v: string): AttributeProto => ({ name, type: AttributeType.STRING, s: utf8.encode(v) }),
  ints: (name: string, v: readonly number[]): AttributeProto => ({ name, type: AttributeType.INTS, ints: [...v] }),
  floats: (name: string, v: readonly number[]): AttributeProto => ({ name, type: AttributeType.FLOATS, floats: [...v] }),
  strings: (name: string, v: readonly string[]): AttributeProto => ({ name, type: AttributeType.STRINGS, strings: v.map((s) => utf8.encode(s)) }),
  tensor: (name: string, t: Tensor): AttributeProto => ({ name, type: AttributeType.TENSOR, t: tensorToProto(t) }),
  /** A dtype-valued attribute (Cast `to`, QuantizeLinear `output_dtype`): the TensorProto.DataType number. */
  dtype: (name: string, dtype: string, node?: string): AttributeProto => {
    const code = onnxFromDType(dtype as never);
    if (code === undefined) throw new QforgeError("UNSUPPORTED", `dtype ${dtype} has no ONNX data type`, { node });
    return { name, type: AttributeType.INT, i: code };
  },
};

/**
 * The node's explicitly set attributes as AttributeProtos, typed by the op schema (`bool` becomes an
 * INT 0/1, as ONNX has no bool attributes). Attributes left at their default are not written: the
 * canonical ops keep ONNX's names and defaults, so ONNX applies the same default.
 */
export function schemaAttrs(node: Node, omit: readonly string[] = []): AttributeProto[] {
  const schema = getOp(node.op, node.name);
  const out: AttributeProto[] = [];
  for (const [name, value] of Object.entries(node.attrs)) {
    if (omit.includes(name)) continue;
    const spec = schema.attrs[name];
    if (spec === undefined) {
      throw new QforgeError("BAD_ATTRIBUTE", `op '${node.op}' has no attribute '${name}'`, { node: node.name });
    }
    out.push(typedAttr(name, spec.type, value));
  }
  return out;
}

function typedAttr(name: string, type: string, v: AttrValue): AttributeProto {
  switch (type) {
    case "int": return attr.int(name, v as number);
    case "bool": return attr.int(name, v as boolean);
    case "float": return attr.float(name, v as number);
    case "string": return attr.string(name, v as string);
    case "ints": return attr.ints(name, v as number[]);
    case "floats": return attr.floats(name, v as number[]);
    default: return attr.strings(name, v as string[]);
  }
}
