import { readFileSync } from "node:fs";
import { extname } from "node:path";
import { QforgeError, parseGraph, printGraph, type Graph } from "@qforge/ir";
import { importOnnx } from "@qforge/onnx";
import { runOp } from "@qforge/runtime";
import { toDot, toMermaid } from "@qforge/debug";

export type DumpFormat = "text" | "dot" | "mermaid";

/** Loads a graph from an .onnx model or a qforge text dump. */
export async function loadGraph(file: string): Promise<Graph> {
  const ext = extname(file).toLowerCase();
  if (ext === ".onnx") {
    const ep = await importOnnx(file, { fold: (op, inputs, attrs, n) => runOp(op, inputs, { ...attrs }, { numOutputs: n }) });
    return ep.graph;
  }
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    throw new QforgeError("IO_ERROR", `cannot read '${file}': ${(e as Error).message}`);
  }
  return parseGraph(text);
}

export async function dump(file: string, format: DumpFormat, full: boolean): Promise<string> {
  const g = await loadGraph(file);
  switch (format) {
    case "text": return printGraph(g, { constants: full ? "full" : "summary" });
    case "dot": return toDot(g);
    case "mermaid": return toMermaid(g);
  }
}
