import { QforgeError } from "@qforge/ir";
import { onnxType, type OnnxMessageName } from "./schema.js";
import type { Int64, ModelProto, OptionalProto, SequenceProto, TensorProto } from "./types.js";

/**
 * Decodes one message. Whatever goes wrong inside protobufjs (truncated input, a bad wire type, a
 * length past the end, nesting deep enough to exhaust the stack) becomes a BAD_MODEL QforgeError: a
 * malformed file is the model's fault, never a crash.
 */
export function decodeMessage<T>(name: OnnxMessageName, bytes: Uint8Array, what = name): T {
  if (!(bytes instanceof Uint8Array)) {
    throw new QforgeError("BAD_INPUT", `${what}: expected bytes (Uint8Array), got ${typeof bytes}`);
  }
  try {
    return onnxType(name).decode(bytes) as unknown as T;
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    throw new QforgeError("BAD_MODEL", `malformed ${what} (${bytes.length} bytes): ${msg}`, {
      hint: "the file is truncated or is not an ONNX protobuf",
      cause: e,
    });
  }
}

export function decodeModelProto(bytes: Uint8Array): ModelProto {
  return decodeMessage<ModelProto>("ModelProto", bytes);
}

export function decodeTensorProto(bytes: Uint8Array): TensorProto {
  return decodeMessage<TensorProto>("TensorProto", bytes);
}

export function decodeSequenceProto(bytes: Uint8Array): SequenceProto {
  return decodeMessage<SequenceProto>("SequenceProto", bytes);
}

export function decodeOptionalProto(bytes: Uint8Array): OptionalProto {
  return decodeMessage<OptionalProto>("OptionalProto", bytes);
}

/** Serializes a plain message object (bigints allowed in int64 fields). */
export function encodeMessage(name: OnnxMessageName, message: object): Uint8Array {
  const type = onnxType(name);
  let bytes: Uint8Array;
  try {
    bytes = type.encode(type.fromObject(bigintsToStrings(message) as Record<string, unknown>)).finish();
  } catch (e) {
    throw new QforgeError("BAD_INPUT", `cannot encode ${name}: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  // protobufjs hands out a Buffer in Node; callers get a plain Uint8Array view of the same bytes.
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** int64 fields written as bigints become decimal strings, which protobufjs's Long parsing accepts. */
function bigintsToStrings(v: unknown): unknown {
  if (typeof v === "bigint") return v.toString();
  if (v === null || typeof v !== "object" || ArrayBuffer.isView(v)) return v;
  if (Array.isArray(v)) return v.map(bigintsToStrings);
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = bigintsToStrings(x);
  return out;
}

/**
 * A bytes field as a Uint8Array. protobufjs hands out a shared empty plain Array for an absent
 * bytes field (its proto3 default), not a Uint8Array; this normalizes that (and anything else that is
 * not bytes) to an empty view.
 */
export function bytesOf(v: unknown): Uint8Array {
  return v instanceof Uint8Array ? v : new Uint8Array(0);
}

/** An int64 field value as a bigint (exact). */
export function int64ToBigInt(v: Int64 | null | undefined): bigint {
  if (v === null || v === undefined) return 0n;
  if (typeof v === "bigint") return v;
  if (typeof v === "number") return BigInt(Math.trunc(v));
  if (typeof v === "string") return /^-?\d+$/.test(v) ? BigInt(v) : 0n;
  const bits = (BigInt(v.high >>> 0) << 32n) | BigInt(v.low >>> 0);
  return v.unsigned ? BigInt.asUintN(64, bits) : BigInt.asIntN(64, bits);
}

/**
 * An int64 field value as a JS number; values outside ±2^53 cannot be represented exactly and are a
 * BAD_MODEL error naming `what` (dims, attribute values and offsets never legitimately get there).
 */
export function int64ToNumber(v: Int64 | null | undefined, what: string, node?: string): number {
  const b = int64ToBigInt(v);
  if (b > BigInt(Number.MAX_SAFE_INTEGER) || b < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw new QforgeError("BAD_MODEL", `${what} = ${b} is outside the exactly representable integer range`, { node });
  }
  return Number(b);
}

/**
 * Like int64ToNumber, but clamps instead of failing: ONNX uses INT64_MAX / INT64_MIN as "to the end"
 * markers (Slice ends, Shape end), and clamping to ±2^53 keeps that meaning for any real shape.
 */
export function int64ToClampedNumber(v: Int64 | null | undefined): number {
  const b = int64ToBigInt(v);
  if (b > BigInt(Number.MAX_SAFE_INTEGER)) return Number.MAX_SAFE_INTEGER;
  if (b < BigInt(Number.MIN_SAFE_INTEGER)) return Number.MIN_SAFE_INTEGER;
  return Number(b);
}
