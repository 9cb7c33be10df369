import { sortWorstFirst, type ComparedNode, type NodeComparison, type RankBy } from "./compare.js";

export interface FormatComparisonOptions {
  /** Rank by what each node loses itself ("local", default) or by accumulated SQNR. */
  readonly by?: RankBy;
  /** Show at most this many compared rows (the worst ones). */
  readonly limit?: number;
}

function db(v: number): string {
  if (Number.isNaN(v)) return "nan";
  if (v === Infinity) return "inf";
  if (v === -Infinity) return "-inf";
  return v.toFixed(2);
}

function err(v: number): string {
  if (Number.isNaN(v)) return "nan";
  if (v === 0) return "0";
  return v >= 1e-3 && v < 1e5 ? v.toPrecision(4) : v.toExponential(3);
}

function pad(cells: readonly string[], widths: readonly number[], right: ReadonlySet<number>): string {
  return cells.map((c, i) => (right.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join("  ").trimEnd();
}

/**
 * The comparison as a text table, worst node first: rank, debug handle, float node, quantized node
 * (`*` = integer output compared after dequantizing), module, local dB, SQNR dB and max |error|.
 * Handles that could not be compared are listed below the table with the reason.
 */
export function formatComparison(rows: readonly NodeComparison[], opts: FormatComparisonOptions = {}): string {
  const sorted = sortWorstFirst(rows, opts.by ?? "local");
  const compared = sorted.filter((r): r is ComparedNode => r.kind === "compared");
  const shown = opts.limit === undefined ? compared : compared.slice(0, Math.max(0, opts.limit));
  const header = ["#", "handle", "float node", "quantized node", "module", "local dB", "SQNR dB", "max abs err"];
  const body = shown.map((r, i) => [
    String(i + 1), String(r.debugHandle), `${r.float.name} (${r.float.op})`,
    `${r.quant.name} (${r.quant.op})${r.dequantized ? " *" : ""}`, r.module ?? "-",
    db(r.localSqnr), db(r.sqnr), err(r.maxAbsError),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const right = new Set([0, 1, 5, 6, 7]);
  const lines = [pad(header, widths, right), ...body.map((b) => pad(b, widths, right))];
  if (shown.length < compared.length) lines.push(`... ${compared.length - shown.length} more compared nodes`);
  if (compared.some((r) => r.dequantized)) lines.push("* integer output, dequantized with the node's output qparams");
  const unmatched = sorted.filter((r) => r.kind === "unmatched");
  if (unmatched.length > 0) {
    lines.push("not compared:");
    for (const r of unmatched) lines.push(`  handle ${r.debugHandle}  ${r.float.name} (${r.float.op}): ${r.reason}`);
  }
  return lines.join("\n");
}
