import type { Node } from "@qforge/ir";
import type { ExportContext } from "./context.js";

/**
 * One row per qforge op the exporter writes: the inverse of the importer's OP_TABLE
 * (import/ops.ts), plus the torch-only and PT2E ops. `since` is the lowest opset whose form of the
 * ONNX op(s) the row writes for this node (forms that changed later are chosen by `emit` from
 * `c.opset`); the model's opset is the largest `since` of its nodes unless the caller asks for one.
 * Rows are the single source of docs/onnx-export.md's table (a test checks the two agree).
 */
export interface ExportRow {
  readonly op: string;
  /** The ONNX op(s) written, for the docs. */
  readonly onnx: string;
  readonly since: (n: Node, c: SinceContext) => number;
  readonly emit: (n: Node, c: ExportContext) => void;
  readonly note?: string;
}

/** What `since` may look at: types and constants of the graph (no emission). */
export type SinceContext = Pick<ExportContext, "type" | "constant" | "graph">;

export function exportRow(
  op: string, onnx: string, since: number | ((n: Node, c: SinceContext) => number), emit: (n: Node, c: ExportContext) => void, note?: string,
): ExportRow {
  const s = typeof since === "number" ? () => since : since;
  return note === undefined ? { op, onnx, since: s, emit } : { op, onnx, since: s, emit, note };
}
