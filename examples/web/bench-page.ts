/// <reference lib="dom" />
/**
 * The bench page: runs the cases bench.ts prepared (out/bench-cases.json) with qforge's WebGPU
 * backend and onnxruntime-web's WebGPU execution provider, and publishes the rows as
 * `window.qforgeBench`.
 */
import * as ort from "onnxruntime-web/webgpu";
import { benchWebGpu, formatBenchTable, type OrtWebLike, type WebGpuBenchCase, type WebGpuBenchRow } from "@qforge/backend-webgpu";
import { graphFromJson, tensorFromJson, type GraphJson, type TensorJson } from "./graph-json.js";

export interface BenchCaseJson {
  readonly name: string;
  readonly graph: GraphJson;
  readonly feeds: TensorJson[];
  readonly ortFeeds?: Record<string, TensorJson>;
  readonly onnx?: string;
  readonly work: number;
  readonly unit: string;
}

declare global {
  interface Window {
    qforgeBench?: { rows: WebGpuBenchRow[]; table: string } | { error: string };
  }
}

function bytes(b64: string): Uint8Array {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

async function main(): Promise<void> {
  const status = document.getElementById("status")!;
  ort.env.wasm.wasmPaths = "/ort/";
  ort.env.wasm.numThreads = 1;
  const budgetMs = Number(new URL(location.href).searchParams.get("budget") ?? "3000");
  const json = (await (await fetch("out/bench-cases.json")).json()) as BenchCaseJson[];
  const cases: WebGpuBenchCase[] = json.map((c) => ({
    name: c.name,
    graph: graphFromJson(c.graph),
    feeds: c.feeds.map(tensorFromJson),
    work: c.work,
    unit: c.unit,
    ...(c.onnx === undefined ? {} : { onnx: bytes(c.onnx) }),
    ...(c.ortFeeds === undefined ? {} : { ortFeeds: Object.fromEntries(Object.entries(c.ortFeeds).map(([k, t]) => [k, tensorFromJson(t)])) }),
  }));
  const rows = await benchWebGpu(cases, { ort: ort as unknown as OrtWebLike, budgetMs, log: (m) => { status.textContent = m; } });
  const table = formatBenchTable(rows);
  document.getElementById("table")!.textContent = table;
  status.textContent = `done on ${rows[0]?.adapter ?? "?"}`;
  window.qforgeBench = { rows, table };
}

main().catch((e: unknown) => {
  const msg = e instanceof Error ? `${e.message}\n${e.stack ?? ""}` : String(e);
  document.getElementById("status")!.textContent = msg;
  window.qforgeBench = { error: msg };
});
