/// <reference lib="dom" />
/**
 * The page: fetches the int8 PP-OCRv4 recognition model (a lowered qforge graph, see graph-json.ts)
 * and preprocessed text lines, compiles the model with the WebGPU backend, recognizes each line
 * and shows the text, the timings and the compiled plan. `window.qforgeResult` is what the test
 * (web.test.ts) reads.
 */
import "@qforge/backend-webgpu";
import { compile, type Session } from "@qforge/runtime";
import type { Tensor } from "@qforge/ir";
import { ctcDecode } from "./ctc.js";
import { graphFromJson, tensorFromJson, type GraphJson, type TensorJson } from "./graph-json.js";

interface LineIn {
  readonly file: string;
  readonly label: string;
  readonly input: TensorJson;
}

export interface LineResult {
  readonly file: string;
  readonly text: string;
  readonly ms: number;
  /** Per time step, the winning class (the test compares it with the reference's). */
  readonly argmax: number[];
}

export interface PageResult {
  readonly adapter: string;
  readonly compileMs: number;
  readonly lines: LineResult[];
  readonly placements: { readonly gpu: number; readonly folded: number; readonly fallback: string[] };
  readonly error?: string;
}

declare global {
  interface Window {
    qforgeResult?: PageResult | { error: string };
  }
}

const $ = (id: string): HTMLElement => document.getElementById(id)!;

function argmaxPerStep(probs: Tensor): number[] {
  const [, steps, classes] = probs.shape as [number, number, number];
  const d = probs.data as Float32Array;
  const out: number[] = [];
  for (let t = 0; t < steps; t++) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (d[t * classes + c]! > d[t * classes + best]!) best = c;
    out.push(best);
  }
  return out;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);
}

async function main(): Promise<void> {
  const status = $("status");
  const [model, lines, keysText] = await Promise.all([
    fetch("out/model.json").then((r) => r.json() as Promise<GraphJson>),
    fetch("out/lines.json").then((r) => r.json() as Promise<LineIn[]>),
    fetch("keys.txt").then((r) => r.text()),
  ]);
  const keys = keysText.split(/\r?\n/).filter((_, i, a) => i < a.length - 1 || a[i] !== "");
  const graph = graphFromJson(model);
  const adapter = await navigator.gpu.requestAdapter();
  const adapterName = adapter === null ? "none" : [adapter.info.vendor, adapter.info.architecture, adapter.info.description].filter((s) => s !== "").join(" ");
  status.textContent = `compiling for WebGPU (${adapterName})…`;
  let t0 = performance.now();
  const session: Session = await compile(graph, { backend: "webgpu" });
  const compileMs = performance.now() - t0;
  const results: LineResult[] = [];
  for (const line of lines) {
    status.textContent = `recognizing ${line.file}…`;
    const x = tensorFromJson(line.input);
    t0 = performance.now();
    const [probs] = await session.run([x]);
    const ms = performance.now() - t0;
    const text = ctcDecode(probs!, keys);
    results.push({ file: line.file, text, ms, argmax: argmaxPerStep(probs!) });
    // PaddleOCR's key set ends in a space class: a trailing space is part of its raw output.
    const same = text.trim() === line.label.trim();
    $("lines").insertAdjacentHTML("beforeend", `<div class="line"><img src="lines/${line.file}" alt="${escapeHtml(line.label)}">
      <div class="text">${escapeHtml(text)}</div>
      <div class="meta">${line.file} · input ${x.shape.join("×")} · ${ms.toFixed(0)} ms · label: <span class="${same ? "ok" : "bad"}">${escapeHtml(line.label)}</span></div></div>`);
  }
  const gpu = session.placements.filter((p) => p.tier === "webgpu").length;
  const folded = session.placements.filter((p) => p.tier === "compile-time").length;
  const fallback = session.placements.filter((p) => p.fallback).map((p) => `${p.node} (${p.op}): ${p.note ?? ""}`);
  const kernels = new Map<string, number>();
  for (const p of session.placements) if (p.tier === "webgpu") kernels.set(p.kernel, (kernels.get(p.kernel) ?? 0) + 1);
  $("plan").innerHTML = `<div class="meta">${session.placements.length} nodes: ${gpu} on WebGPU, ${folded} folded at compile time, ${fallback.length} on the CPU · compiled in ${compileMs.toFixed(0)} ms</div>
    <table><tr><th>WGSL kernel</th><th>nodes</th></tr>${[...kernels].sort((a, b) => b[1] - a[1]).map(([k, n]) => `<tr><td>${k}</td><td>${n}</td></tr>`).join("")}</table>`;
  status.textContent = `done on ${adapterName}`;
  window.qforgeResult = { adapter: adapterName, compileMs, lines: results, placements: { gpu, folded, fallback } };
}

main().catch((e: unknown) => {
  const msg = e instanceof Error ? `${e.message}\n${e.stack ?? ""}` : String(e);
  $("status").innerHTML = `<span class="bad">${escapeHtml(msg)}</span>`;
  window.qforgeResult = { error: msg };
});
