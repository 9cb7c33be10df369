/**
 * The lexical rules of the IR text format, shared by the printer and the parser so that what one
 * writes bare the other reads bare (docs/ir-text-format.md).
 */

/** Bare value and node names (after `%` / `@`): ONNX-ish names like `conv1.weight`, `/features/0/Conv`,
 * `split:0`, `onnx::Conv_3`. A bare name may not end with `:` (that colon starts the type). */
const VALUE_NAME = /^[A-Za-z0-9_.:/-]+$/;
/** Op names: `conv2d`, `quantized_decomposed.quantize_per_tensor`, `aten::add.Tensor`. */
const OP_NAME = /^[A-Za-z_][A-Za-z0-9_.:]*$/;
/** Attribute and meta keys. */
const KEY = /^[A-Za-z_][A-Za-z0-9_.]*$/;
/** Symbolic dims (an identifier that is not one of the number words). */
const SYM_DIM = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** Module-stack paths and types (`features.0`, `Conv2d`); `:` separates path from type. */
const FRAME_PART = /^[A-Za-z0-9_.-]+$/;

export const NUMBER_WORDS: ReadonlySet<string> = new Set(["nan", "inf"]);

/** A JSON string literal: quotes, backslashes, control characters and lone surrogates escaped. */
export function quote(s: string): string {
  return JSON.stringify(s);
}

export function isBareValueName(s: string): boolean {
  return VALUE_NAME.test(s) && !s.endsWith(":");
}

export function formatValueRef(name: string): string {
  return `%${isBareValueName(name) ? name : quote(name)}`;
}

export function formatNodeName(name: string): string {
  return `@${isBareValueName(name) ? name : quote(name)}`;
}

export function formatOpName(op: string): string {
  return OP_NAME.test(op) ? op : quote(op);
}

export function formatKey(key: string): string {
  return KEY.test(key) && !NUMBER_WORDS.has(key) ? key : quote(key);
}

export function formatFramePart(s: string): string {
  return FRAME_PART.test(s) ? s : quote(s);
}

export function isSymbolicDimBare(s: string): boolean {
  return SYM_DIM.test(s) && !NUMBER_WORDS.has(s);
}

/**
 * A number so that the parser gets the identical JS number back: String(x) is the shortest
 * round-tripping decimal (ECMAScript Number::toString); -0, NaN and the infinities get words.
 */
export function formatNumber(x: number): string {
  if (Number.isNaN(x)) return "nan";
  if (x === Infinity) return "inf";
  if (x === -Infinity) return "-inf";
  if (Object.is(x, -0)) return "-0";
  return String(x);
}
