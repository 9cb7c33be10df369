/** Test helpers: a seeded generator and a tolerance check that names the element. */
import { expect } from "vitest";

/** mulberry32: a small deterministic generator in [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** |got - want| <= tol, failing with the element's name. */
export function closeTo(got: number, want: number, tol: number, what: string): void {
  if (!(Math.abs(got - want) <= tol)) expect.fail(`${what}: got ${got}, want ${want} (tolerance ${tol})`);
}

/** n bytes from fn as an Int8Array (signed) or a Uint8Array. */
export function bytes8(signed: boolean, n: number, fn: () => number): Int8Array | Uint8Array {
  return signed ? Int8Array.from({ length: n }, fn) : Uint8Array.from({ length: n }, fn);
}
