/**
 * The export table covers the op registry and the importer's canonical ops, and
 * docs/onnx-export.md lists exactly the export rows and the unlowered integer ops.
 */
import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { hasOp, listOps } from "@qforge/ir";
import { EXPORT_ROWS, OP_TABLE, UNLOWERED_OPS } from "@qforge/onnx";

const DOC = readFileSync(fileURLToPath(new URL("../../../docs/onnx-export.md", import.meta.url)), "utf8");

/** The rows of the markdown table that follows `heading`: first cell (without backticks) -> second cell. */
function table(heading: string): Map<string, string> {
  const start = DOC.indexOf(heading);
  expect(start, heading).toBeGreaterThanOrEqual(0);
  const lines = DOC.slice(start).split("\n").slice(1);
  const first = lines.findIndex((l) => l.startsWith("|"));
  const rows = new Map<string, string>();
  for (const line of lines.slice(first + 2)) {
    if (!line.startsWith("|")) break;
    const cells = line.split("|").map((c) => c.trim());
    rows.set(cells[1]!.replace(/`/g, ""), cells[2]!);
  }
  return rows;
}

describe("export coverage", () => {
  it("every registered op has an export row, is an integer op exported through its QDQ meaning, or is listed as not exported", () => {
    const notExported = table("## Not exported");
    const missing = listOps().filter((op) => !EXPORT_ROWS.has(op) && !UNLOWERED_OPS.has(op) && !notExported.has(op));
    expect(missing).toEqual([]);
    for (const op of notExported.keys()) expect(EXPORT_ROWS.has(op) || UNLOWERED_OPS.has(op), op).toBe(false);
  });

  it("every canonical op the importer produces (and the registry knows) exports", () => {
    const canonical = new Set(OP_TABLE.map((r) => r.qforge).filter((q) => hasOp(q)));
    expect(canonical.size).toBeGreaterThan(60);
    for (const op of canonical) expect(EXPORT_ROWS.has(op), op).toBe(true);
  });

  it("docs/onnx-export.md's op table lists every row with its ONNX op(s)", () => {
    const doc = table("## Op table");
    expect(new Set(doc.keys())).toEqual(new Set(EXPORT_ROWS.keys()));
    for (const [op, row] of EXPORT_ROWS) expect(doc.get(op), op).toBe(row.onnx);
  });

  it("docs/onnx-export.md's lowered-program table lists every unlowered integer op", () => {
    expect(new Set(table("## Lowered programs").keys())).toEqual(new Set(UNLOWERED_OPS));
  });
});
