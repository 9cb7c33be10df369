import type { Tensor } from "../tensor.js";

/**
 * FNV-1a, 64-bit (offset basis 0xcbf29ce484222325, prime 0x100000001b3), over raw bytes, as 16 hex
 * digits. The state is four 16-bit limbs so that every intermediate stays an exact small integer:
 * h * prime = h * 0x1b3 + (h << 40) (mod 2^64), and h << 40 only touches limbs 2 and 3.
 */
export function fnv1a64(bytes: Uint8Array): string {
  let h0 = 0x2325;
  let h1 = 0x8422;
  let h2 = 0x9ce4;
  let h3 = 0xcbf2;
  for (let i = 0; i < bytes.length; i++) {
    h0 ^= bytes[i]!;
    const t0 = h0 * 0x1b3;
    let t1 = h1 * 0x1b3;
    let t2 = h2 * 0x1b3 + (h0 << 8);
    let t3 = h3 * 0x1b3 + (h1 << 8);
    t1 += t0 >>> 16;
    t2 += t1 >>> 16;
    t3 += t2 >>> 16;
    h0 = t0 & 0xffff;
    h1 = t1 & 0xffff;
    h2 = t2 & 0xffff;
    h3 = t3 & 0xffff;
  }
  const hex = (x: number): string => x.toString(16).padStart(4, "0");
  return hex(h3) + hex(h2) + hex(h1) + hex(h0);
}

/** The storage bytes of a tensor as they sit in memory (little-endian on every platform Node runs on). */
export function storageBytes(t: Tensor): Uint8Array {
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

/** Content hash of a tensor's storage, as printed in constant summaries. */
export function tensorHash(t: Tensor): string {
  return fnv1a64(storageBytes(t));
}
