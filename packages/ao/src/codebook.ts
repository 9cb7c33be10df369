/**
 * Codebook (lookup-table) weight quantization: every block of the weight gets its own codebook of
 * 2^bits float32 entries found by 1-D k-means (Lloyd's algorithm), and each element stores the index
 * of its nearest entry (torchao prototype `CodebookQuantizedTensor` with scalar entries; the k-means
 * is `kmeans_codebook` of torchao's module-swap prototype, made deterministic).
 *
 * Deterministic by construction: a block with at most 2^bits distinct values gets them as its
 * entries (exact); otherwise entries start at the block's quantiles (sorted values at (j + 0.5) / k),
 * each iteration assigns values to the nearest entry (ties to the lower one) and moves each entry to
 * the mean of its values (an entry with no values stays put), until nothing moves or `iterations`
 * ran. Entries are rounded to float32 before the final assignment, so codes
 * index the stored codebook exactly.
 */
import { numel, packSubByte, QforgeError, tensor, type DType, type Tensor } from "@qforge/ir";
import { blockLayout } from "@qforge/quant";
import { packWeight, PlainLayout, type CodebookQuantizedTensor, type WeightLayout } from "./tensor.js";

export interface CodebookOptions {
  /** Code width: 2^bits entries per codebook (1..8). */
  bits: number;
  /** Elements sharing a codebook: [1, K] (default, per row), [1, g] per group, [N, K] one for all. */
  blockSize?: readonly [number, number];
  /** Lloyd iterations at most (default 30). */
  iterations?: number;
  /** plain (default) or u32_words. */
  layout?: WeightLayout;
}

/** 1-D k-means of `values` with `k` clusters; returns float32 centroids in ascending order. */
export function kmeans1d(values: ArrayLike<number>, k: number, iterations = 30): Float32Array {
  const n = values.length;
  if (n === 0) throw new QforgeError("BAD_DATA", "kmeans1d: no values");
  const sorted = Float64Array.from(values).sort();
  const distinct = sorted.filter((v, i) => i === 0 || v !== sorted[i - 1]);
  if (distinct.length <= k) {
    // Every value gets its own entry (the optimum); spare entries repeat the largest value.
    const book = new Float32Array(k).fill(distinct[distinct.length - 1]!);
    book.set(distinct);
    return book;
  }
  const c = new Float64Array(k);
  for (let j = 0; j < k; j++) c[j] = sorted[Math.min(n - 1, Math.floor(((j + 0.5) * n) / k))]!;
  const sum = new Float64Array(k);
  const cnt = new Float64Array(k);
  for (let it = 0; it < iterations; it++) {
    sum.fill(0);
    cnt.fill(0);
    // Values are sorted and so are the centroids: sweep the boundaries (midpoints) once.
    let j = 0;
    for (let i = 0; i < n; i++) {
      const v = sorted[i]!;
      while (j + 1 < k && Math.abs(c[j + 1]! - v) < Math.abs(c[j]! - v)) j++;
      sum[j] = sum[j]! + v;
      cnt[j] = cnt[j]! + 1;
    }
    let moved = false;
    for (let q = 0; q < k; q++) {
      if (cnt[q] === 0) continue;
      const m = sum[q]! / cnt[q]!;
      if (m !== c[q]) moved = true;
      c[q] = m;
    }
    c.sort();
    if (!moved) break;
  }
  return Float32Array.from(c);
}

/** Index of the entry of `book[off .. off+k)` nearest to v (ties to the lower index). */
export function nearestEntry(book: Float32Array, off: number, k: number, v: number): number {
  let best = 0;
  let bestD = Infinity;
  for (let j = 0; j < k; j++) {
    const d = Math.abs(book[off + j]! - v);
    if (d < bestD) {
      bestD = d;
      best = j;
    }
  }
  return best;
}

/** Codebook-quantizes a float32 [N, K] weight. */
export function codebookQuantizeWeight(w: Tensor, opts: CodebookOptions): CodebookQuantizedTensor {
  if (w.dtype !== "float32" || w.shape.length !== 2) {
    throw new QforgeError("BAD_INPUT", `codebookQuantizeWeight: weight must be float32 [N, K], got ${w.dtype}[${w.shape.join(",")}]`);
  }
  const { bits } = opts;
  if (!Number.isInteger(bits) || bits < 1 || bits > 8) throw new QforgeError("BAD_CONFIG", `codebook bits must be 1..8, got ${bits}`);
  const [n, k] = [w.shape[0]!, w.shape[1]!];
  const blockSize = opts.blockSize ?? [1, k];
  const layout = blockLayout(w.shape, blockSize, "codebookQuantizeWeight");
  const entries = 2 ** bits;
  const x = w.data as Float32Array;
  // Gather each block's values (a block may be several runs of the row-major order).
  const members: number[][] = Array.from({ length: layout.numBlocks }, () => []);
  layout.forEachRun((start, end, b) => { for (let i = start; i < end; i++) members[b]!.push(i); });
  const book = new Float32Array(layout.numBlocks * entries);
  const codes = new Uint8Array(numel(w.shape));
  members.forEach((idx, b) => {
    const c = kmeans1d(idx.map((i) => x[i]!), entries, opts.iterations ?? 30);
    book.set(c, b * entries);
    for (const i of idx) codes[i] = nearestEntry(book, b * entries, entries, x[i]!);
  });
  const codeDtype = `uint${bits}` as DType;
  const plain = codeTensor(codeDtype, [n, k], codes);
  const wl = opts.layout ?? PlainLayout();
  if (wl.kind !== "plain" && wl.kind !== "u32_words") {
    throw new QforgeError("BAD_CONFIG", `codebook codes are laid out plain or u32_words, not ${wl.kind}`);
  }
  return {
    kind: "codebook",
    shape: [n, k],
    codes: packWeight(plain, wl),
    codebook: tensor("float32", [layout.numBlocks, entries], book),
    blockSize: [blockSize[0], blockSize[1]],
    codeDtype,
    layout: wl,
  };
}

function codeTensor(dtype: DType, shape: [number, number], codes: Uint8Array): Tensor {
  return dtype === "uint8" ? tensor("uint8", shape, codes) : tensor(dtype, shape, packSubByte(dtype, codes));
}
