import { QforgeError, type AttrValue } from "@qforge/ir";
import { bytesOf, int64ToBigInt, int64ToClampedNumber } from "../proto/codec.js";
import { AttributeType } from "../proto/enums.js";
import type { AttributeProto, TensorProto } from "../proto/types.js";

const utf8 = new TextDecoder("utf-8");

/** What kind of value an AttributeProto holds: its `type`, or (IR < 2, no type) the field that is set. */
export function attributeType(a: AttributeProto): number {
  if (a.type !== undefined && a.type !== AttributeType.UNDEFINED) return a.type;
  const own = (k: keyof AttributeProto): boolean => Object.prototype.hasOwnProperty.call(a, k) && a[k] !== null;
  if (own("t")) return AttributeType.TENSOR;
  if (own("g")) return AttributeType.GRAPH;
  if (own("s")) return AttributeType.STRING;
  if (own("i")) return AttributeType.INT;
  if (own("f")) return AttributeType.FLOAT;
  if ((a.floats?.length ?? 0) > 0) return AttributeType.FLOATS;
  if ((a.ints?.length ?? 0) > 0) return AttributeType.INTS;
  if ((a.strings?.length ?? 0) > 0) return AttributeType.STRINGS;
  if ((a.tensors?.length ?? 0) > 0) return AttributeType.TENSORS;
  if ((a.graphs?.length ?? 0) > 0) return AttributeType.GRAPHS;
  return AttributeType.UNDEFINED;
}

const TYPE_NAMES: Record<number, string> = Object.fromEntries(Object.entries(AttributeType).map(([k, v]) => [v, k.toLowerCase()]));

/**
 * Typed access to a node's attributes. Integers arrive as int64 and are read as JS numbers, clamped to
 * ±2^53 (INT64_MAX is ONNX's usual "to the end" marker; clamping keeps that meaning).
 */
export class OnnxAttrs {
  private readonly byName = new Map<string, AttributeProto>();

  constructor(list: readonly AttributeProto[], private readonly node: string) {
    for (const a of list) {
      const name = a.name ?? "";
      if (name === "") throw new QforgeError("BAD_MODEL", "an attribute has no name", { node });
      if ((a.ref_attr_name ?? "") !== "") {
        throw new QforgeError("BAD_MODEL", `attribute '${name}' refers to a function attribute ('${a.ref_attr_name}'), which only function bodies may do`, { node });
      }
      if (this.byName.has(name)) throw new QforgeError("BAD_MODEL", `attribute '${name}' is set twice`, { node });
      this.byName.set(name, a);
    }
  }

  names(): string[] {
    return [...this.byName.keys()];
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  private get(name: string, want: number): AttributeProto | undefined {
    const a = this.byName.get(name);
    if (a === undefined) return undefined;
    const t = attributeType(a);
    if (t !== want) {
      throw new QforgeError("BAD_MODEL", `attribute '${name}' must be ${TYPE_NAMES[want]}, got ${TYPE_NAMES[t] ?? `type ${t}`}`, { node: this.node });
    }
    return a;
  }

  int(name: string): number | undefined;
  int(name: string, dflt: number): number;
  int(name: string, dflt?: number): number | undefined {
    const a = this.get(name, AttributeType.INT);
    return a === undefined ? dflt : int64ToClampedNumber(a.i);
  }

  /** INT / INTS read exactly (Constant's value_int(s) may hold any int64). */
  bigints(name: string): bigint[] | undefined {
    const t = this.typeOf(name);
    if (t === AttributeType.INT) return [int64ToBigInt(this.get(name, AttributeType.INT)!.i)];
    const a = this.get(name, AttributeType.INTS);
    return a === undefined ? undefined : (a.ints ?? []).map((v) => int64ToBigInt(v));
  }

  float(name: string): number | undefined;
  float(name: string, dflt: number): number;
  float(name: string, dflt?: number): number | undefined {
    // An INT where a FLOAT is expected is read as its value (writers sometimes store 6 for 6.0).
    if (this.typeOf(name) === AttributeType.INT) return this.int(name);
    const a = this.get(name, AttributeType.FLOAT);
    return a === undefined ? dflt : (a.f ?? 0);
  }

  string(name: string): string | undefined;
  string(name: string, dflt: string): string;
  string(name: string, dflt?: string): string | undefined {
    const a = this.get(name, AttributeType.STRING);
    return a === undefined ? dflt : utf8.decode(bytesOf(a.s));
  }

  ints(name: string): number[] | undefined {
    const a = this.get(name, AttributeType.INTS);
    return a === undefined ? undefined : (a.ints ?? []).map((v) => int64ToClampedNumber(v));
  }

  floats(name: string): number[] | undefined {
    if (this.typeOf(name) === AttributeType.INTS) return this.ints(name);
    const a = this.get(name, AttributeType.FLOATS);
    return a === undefined ? undefined : [...(a.floats ?? [])];
  }

  strings(name: string): string[] | undefined {
    const a = this.get(name, AttributeType.STRINGS);
    return a === undefined ? undefined : (a.strings ?? []).map((s) => utf8.decode(bytesOf(s)));
  }

  tensorProto(name: string): TensorProto | undefined {
    const a = this.get(name, AttributeType.TENSOR);
    return a === undefined ? undefined : (a.t ?? undefined);
  }

  /** The attribute's type number (AttributeType), or undefined when absent. */
  typeOf(name: string): number | undefined {
    const a = this.byName.get(name);
    return a === undefined ? undefined : attributeType(a);
  }

  /**
   * Every attribute except `omit`, as qforge attribute values (int/float -> number, string -> string,
   * lists -> arrays). Tensor, graph and type attributes have no qforge form: the converter of an op
   * that has them reads them itself, any other is UNSUPPORTED.
   */
  plain(omit: readonly string[] = []): Record<string, AttrValue> {
    const out: Record<string, AttrValue> = {};
    for (const [name, a] of this.byName) {
      if (omit.includes(name)) continue;
      out[name] = this.value(name, a);
    }
    return out;
  }

  private value(name: string, a: AttributeProto): AttrValue {
    const t = attributeType(a);
    switch (t) {
      case AttributeType.INT: return this.int(name)!;
      case AttributeType.FLOAT: return this.float(name)!;
      case AttributeType.STRING: return this.string(name)!;
      case AttributeType.INTS: return this.ints(name)!;
      case AttributeType.FLOATS: return this.floats(name)!;
      case AttributeType.STRINGS: return this.strings(name)!;
      default:
        throw new QforgeError("UNSUPPORTED", `attribute '${name}' is a ${TYPE_NAMES[t] ?? `type ${t}`} attribute, which qforge cannot hold`, { node: this.node });
    }
  }
}
