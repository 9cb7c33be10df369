import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { tensor, toFloat64 } from "@qforge/ir";
import { codebookQuantizeWeight, dequantizeWeight, intRepr, kmeans1d, nearestEntry, U32WordsLayout, withLayout } from "../src/index.js";

describe("k-means codebooks", () => {
  it("with at least as many entries as distinct values, every value is reproduced exactly", () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: -20, max: 20 }), { minLength: 1, maxLength: 60 }), (ints) => {
      const vals = ints.map((v) => v / 8);
      const distinct = new Set(vals).size;
      const k = 2 ** Math.ceil(Math.log2(Math.max(2, distinct)));
      const book = kmeans1d(vals, k);
      for (let i = 1; i < k; i++) expect(book[i]!).toBeGreaterThanOrEqual(book[i - 1]!);
      for (const v of vals) expect(book[nearestEntry(book, 0, k, v)]).toBe(v);
    }), { numRuns: 100 });
  });

  it("is deterministic and never worse than its quantile start", () => {
    const vals = Array.from({ length: 200 }, (_, i) => Math.sin(i * 12.9898) * 3);
    const a = kmeans1d(vals, 8);
    expect(Array.from(kmeans1d(vals, 8))).toEqual(Array.from(a));
    const sse = (book: Float32Array): number => vals.reduce((s, v) => s + (book[nearestEntry(book, 0, 8, v)]! - v) ** 2, 0);
    expect(sse(a)).toBeLessThanOrEqual(sse(kmeans1d(vals, 8, 0)));
  });

  it("codes index each block's codebook; repacking into u32 words keeps the weight", () => {
    const w = tensor("float32", [4, 8], Float32Array.from({ length: 32 }, (_, i) => ((i * 37) % 11) - 5));
    const q = codebookQuantizeWeight(w, { bits: 2, blockSize: [2, 4] });
    expect(q.codebook.shape).toEqual([4, 4]);
    expect(q.codeDtype).toBe("uint2");
    const dq = toFloat64(dequantizeWeight(q));
    const codes = toFloat64(intRepr(q));
    const book = q.codebook.data as Float32Array;
    for (let r = 0; r < 4; r++) {
      for (let c = 0; c < 8; c++) {
        const block = Math.floor(r / 2) * 2 + Math.floor(c / 4);
        expect(dq[r * 8 + c]).toBe(book[block * 4 + codes[r * 8 + c]!]);
      }
    }
    const words = withLayout(q, U32WordsLayout());
    expect(words.codes.dtype).toBe("uint32");
    expect(Array.from(toFloat64(dequantizeWeight(words)))).toEqual(Array.from(dq));
  });
});
