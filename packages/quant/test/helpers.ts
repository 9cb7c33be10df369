import { expect } from "vitest";
import { fromArray, isQforgeError, type Tensor } from "@qforge/ir";

/** Rounds to float32 (Math.fround): expected values are written as the float32 ops they come from. */
export const f32 = Math.fround;

/** A float32 tensor of `shape` holding `values` (row-major). */
export const t32 = (shape: number[], values: number[]): Tensor => fromArray("float32", shape, values);

/** A 1-D float32 tensor. */
export const vec = (values: number[]): Tensor => fromArray("float32", [values.length], values);

/** The QforgeError code `fn` throws; undefined when it returns, a description when it throws something else. */
export function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return isQforgeError(e) ? e.code : `not a QforgeError: ${String(e)}`;
  }
  return undefined;
}

/** Asserts that `fn` throws a QforgeError with `code` (and a message matching `text`, when given). */
export function expectCode(fn: () => unknown, code: string, text?: string | RegExp): void {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  expect(isQforgeError(thrown), `expected a QforgeError, got ${String(thrown)}`).toBe(true);
  expect((thrown as { code: string }).code).toBe(code);
  if (text !== undefined) expect((thrown as Error).message).toMatch(text);
}
