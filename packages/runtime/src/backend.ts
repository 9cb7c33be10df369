import { QforgeError, getOp, verifyGraph, type ExportedProgram, type Graph, type Tensor } from "@qforge/ir";
import { getKernel } from "./kernel.js";
import { runGraph } from "./interpreter.js";

/**
 * How one node runs in a compiled session: which kernel, on which tier, and whether it fell back to
 * the reference interpreter's kernel. A fallback is never silent: it is listed here with its reason.
 */
export interface PlanEntry {
  /** The node's name. */
  readonly node: string;
  readonly op: string;
  /**
   * The kernel that runs it (e.g. "sgemm_packed", "qgemm_u8s8_vnni"); "reference" for the reference
   * kernel; "fused" when another node's kernel computes it (see `fusedInto`).
   */
  readonly kernel: string;
  /** Where the kernel runs: a backend tier ("native", "wasm", "js"), or "reference". */
  readonly tier: string;
  /** True when a backend had no fast kernel for this node and runs the reference kernel instead. */
  readonly fallback: boolean;
  /** For fused nodes: the node whose kernel computes this one in its epilogue. */
  readonly fusedInto?: string;
  /** Why the node fell back, or what the kernel does with it (human-readable). */
  readonly note?: string;
}

/** A compiled graph, ready to run. */
export interface Session {
  /** Node names in the order they run. */
  readonly plan: readonly string[];
  /** One entry per node, in `plan` order: the kernel and tier that run it, fallbacks marked. */
  readonly placements: readonly PlanEntry[];
  run(feeds: Record<string, Tensor> | readonly Tensor[]): Promise<Tensor[]>;
  /** Frees what the session holds (native or WebAssembly memory); running it afterwards is an error. */
  dispose?(): void;
}

/** Options every backend understands; a backend may read more (they are passed through). */
export interface CompileOptions {
  /** Registered backend name: "reference" (default), "cpu" once @qforge/backend-cpu is imported, ... */
  readonly backend?: string;
  /** Worker threads the backend may use (backends that run single-threaded ignore it). */
  readonly threads?: number;
  readonly [option: string]: unknown;
}

/** What `compile(graph, { backend })` dispatches to; backends register kernels by op name. */
export interface Backend {
  readonly name: string;
  compile(g: Graph, opts?: Record<string, unknown>): Promise<Session>;
}

/**
 * The reference backend: verifies the graph, checks that every op has a reference kernel (NO_KERNEL
 * at compile time rather than halfway through a run), and interprets it with runGraph.
 */
export const referenceBackend: Backend = {
  name: "reference",
  async compile(g: Graph): Promise<Session> {
    verifyGraph(g);
    for (const n of g.nodes) {
      getOp(n.op, n.name);
      getKernel(n.op, n.name);
    }
    const plan = g.nodes.map((n) => n.name);
    const placements = g.nodes.map((n): PlanEntry => ({ node: n.name, op: n.op, kernel: "reference", tier: "reference", fallback: false }));
    return {
      plan,
      placements,
      async run(feeds) {
        return runGraph(g, feeds).outputs;
      },
    };
  },
};

const BACKENDS = new Map<string, Backend>([[referenceBackend.name, referenceBackend]]);

/**
 * Makes a backend available to `compile` under its name. Backend packages call it when imported
 * (`import "@qforge/backend-cpu"` registers "cpu"). Registering a name twice is an error unless it
 * is the same backend object (a module evaluated twice by a bundler is harmless).
 */
export function registerBackend(backend: Backend): void {
  const prev = BACKENDS.get(backend.name);
  if (prev !== undefined && prev !== backend) {
    throw new QforgeError("DUPLICATE_NAME", `a backend named '${backend.name}' is already registered`, { hint: "each backend registers once under its own name" });
  }
  BACKENDS.set(backend.name, backend);
}

/** The registered backend of that name (BAD_CONFIG naming the registered ones when there is none). */
export function getBackend(name: string): Backend {
  const b = BACKENDS.get(name);
  if (b === undefined) {
    const pkg = name === "cpu" || name === "webgpu" ? `: import "@qforge/backend-${name}" to register it` : "";
    throw new QforgeError("BAD_CONFIG", `no backend named '${name}' is registered (registered: ${listBackends().join(", ")})`, {
      hint: `backends register themselves when their package is imported${pkg}`,
    });
  }
  return b;
}

/** Names of the registered backends, sorted. */
export function listBackends(): string[] {
  return [...BACKENDS.keys()].sort();
}

function isProgram(x: Graph | ExportedProgram): x is ExportedProgram {
  return (x as ExportedProgram).graph !== undefined && Array.isArray((x as ExportedProgram).inputs);
}

/**
 * Compiles a graph (or an ExportedProgram: its signature then orders inputs and outputs) with the
 * backend named by `opts.backend` ("reference" by default). Every option is passed to the backend.
 */
export async function compile(model: Graph | ExportedProgram, opts: CompileOptions = {}): Promise<Session> {
  const backend = getBackend(opts.backend ?? "reference");
  if (opts.threads !== undefined && !(Number.isInteger(opts.threads) && opts.threads >= 1)) {
    throw new QforgeError("BAD_CONFIG", `threads must be a positive integer, got ${String(opts.threads)}`);
  }
  if (!isProgram(model)) return backend.compile(model, { ...opts });
  // A program's graph may list its inputs/outputs in another order than the signature, or compute
  // more outputs than the signature names: compile the graph as the signature sees it.
  const g: Graph = { ...model.graph, inputs: model.inputs.map((s) => s.value), outputs: model.outputs.map((s) => s.value) };
  return backend.compile(g, { ...opts });
}
