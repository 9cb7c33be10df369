/**
 * The "cpu" backend: `compile(graph, { backend: "cpu", threads, tier })`. Picks a tier (the native
 * addon when it loaded, else WebAssembly), lowers every node that has a fast kernel (prepacking its
 * constant weights, fusing its elementwise tail) and keeps the reference kernel for the rest, listing
 * each such node as a fallback with the reason in `session.placements`.
 */
import { QforgeError, getOp, verifyGraph, type Graph, type Node } from "@qforge/ir";
import { getKernel, runOp, type Backend, type PlanEntry } from "@qforge/runtime";
import { LOWERINGS } from "./ops/index.js";
import { LowerContext, isSkip, type Lowered } from "./lower.js";
import { CpuSession, type Step } from "./session.js";
import { loadNative, nativeTier } from "./tiers/native.js";
import { wasmTier } from "./tiers/wasm.js";
import type { Tier } from "./tiers/tier.js";

export type TierChoice = "auto" | "native" | "wasm";

/** Options of `compile(graph, { backend: "cpu", ... })`. */
export interface CpuCompileOptions {
  /** Threads for the native kernels (default: the machine's available parallelism). WebAssembly runs one. */
  readonly threads?: number;
  /**
   * "auto" (default; the environment variable QFORGE_CPU_TIER overrides it): native when the addon
   * loaded, else WebAssembly. "native" fails when the addon is unavailable; "wasm" forces WebAssembly.
   */
  readonly tier?: TierChoice;
}

function envTier(): string | undefined {
  const p = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process;
  return p?.env?.["QFORGE_CPU_TIER"];
}

async function defaultThreads(): Promise<number> {
  const nav = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator;
  if (typeof nav?.hardwareConcurrency === "number") return Math.max(1, nav.hardwareConcurrency);
  try {
    const os = await import("node:os");
    return Math.max(1, typeof os.availableParallelism === "function" ? os.availableParallelism() : os.cpus().length);
  } catch {
    return 1;
  }
}

let warnedFailed = false;

/** The tier a session gets for these options. */
export async function selectTier(opts: CpuCompileOptions = {}): Promise<Tier> {
  const choice = opts.tier ?? (envTier() as TierChoice | undefined) ?? "auto";
  if (choice !== "auto" && choice !== "native" && choice !== "wasm") {
    throw new QforgeError("BAD_CONFIG", `tier must be "auto", "native" or "wasm", got ${JSON.stringify(choice)}`);
  }
  const threads = opts.threads ?? (await defaultThreads());
  if (!(Number.isInteger(threads) && threads >= 1)) throw new QforgeError("BAD_CONFIG", `threads must be a positive integer, got ${threads}`);
  if (choice === "wasm") return wasmTier();
  const status = await loadNative();
  const native = await nativeTier(threads);
  if (native !== undefined) return native;
  if (choice === "native") {
    throw new QforgeError("BAD_CONFIG", `the native tier is not available (${status.state}: ${status.reason ?? ""})`, {
      hint: "build it with `npm run build` in packages/backend-cpu (needs g++, make, python3), or use tier: \"wasm\"",
    });
  }
  if (status.state === "failed" && !warnedFailed) {
    warnedFailed = true;
    console.warn(`@qforge/backend-cpu: the native addon at ${status.path} failed to load (${status.reason}); using the WebAssembly tier`);
  }
  return wasmTier();
}

function entryFor(node: Node, l: Lowered): PlanEntry {
  return { node: node.name, op: node.op, kernel: l.kernel, tier: l.tier, fallback: false, ...(l.note ? { note: l.note } : {}) };
}

/** The reference kernel as a step (the interpreter's semantics, output types inferred per run). */
function referenceStep(node: Node): Step {
  return {
    inputs: node.inputs,
    outputs: node.outputs,
    run: (inputs) => runOp(node.op, inputs, { ...node.attrs }, { numOutputs: node.outputs.length, node: node.name }),
  };
}

/** Compiles a graph for the CPU: see the module comment. */
export async function compileCpu(g: Graph, opts: CpuCompileOptions = {}): Promise<CpuSession> {
  verifyGraph(g);
  const tier = await selectTier(opts);
  const ctx = new LowerContext(g, tier);
  const steps: Step[] = [];
  const entries = new Map<string, PlanEntry>();
  for (const node of g.nodes) {
    if (entries.has(node.name)) continue; // fused into an earlier step
    const lower = LOWERINGS.get(node.op);
    const r = lower === undefined ? { skip: `no fast kernel for '${node.op}'` } : lower(node, ctx);
    if (isSkip(r)) {
      getOp(node.op, node.name);
      getKernel(node.op, node.name);
      steps.push(referenceStep(node));
      entries.set(node.name, { node: node.name, op: node.op, kernel: "reference", tier: "reference", fallback: true, note: r.skip });
      continue;
    }
    steps.push({ inputs: r.inputs ?? node.inputs, outputs: r.outputs ?? node.outputs, run: r.run });
    entries.set(node.name, entryFor(node, r));
    for (const f of r.fused ?? []) {
      entries.set(f.name, { node: f.name, op: f.op, kernel: "fused", tier: r.tier, fallback: false, fusedInto: node.name });
    }
  }
  const placements = g.nodes.map((n) => entries.get(n.name)!);
  return new CpuSession(g, steps, placements, tier);
}

export const cpuBackend: Backend = {
  name: "cpu",
  compile: (g, opts) => compileCpu(g, (opts ?? {}) as CpuCompileOptions),
};

/** A readable table of a session's placements (one line per node; fallbacks marked). */
export function formatPlacements(placements: readonly PlanEntry[]): string {
  const rows = placements.map((p) => [
    p.node, p.op, p.fusedInto !== undefined ? `fused into ${p.fusedInto}` : p.kernel, p.tier, p.fallback ? `FALLBACK: ${p.note ?? ""}` : (p.note ?? ""),
  ]);
  const widths = [0, 1, 2, 3].map((i) => Math.max(...rows.map((r) => r[i]!.length), 4));
  return rows.map((r) => r.map((c, i) => (i < 4 ? c.padEnd(widths[i]!) : c)).join("  ").trimEnd()).join("\n");
}
