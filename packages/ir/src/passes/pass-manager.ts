import { enablePatches, produceWithPatches, type Draft, type Patch } from "immer";
import { QforgeError, isQforgeError } from "../errors.js";
import type { Graph } from "../graph.js";
import { verifyGraph } from "../verify.js";

enablePatches();

/**
 * A pass is a named function over an immer draft of the graph: it mutates the draft (or returns a
 * new Graph). From the outside it is `Graph -> Graph`: the input is never modified.
 */
export interface Pass {
  readonly name: string;
  readonly run: (graph: Draft<Graph>) => void | Graph;
}

export function definePass(name: string, run: (graph: Draft<Graph>) => void | Graph): Pass {
  return { name, run };
}

export interface PassRecord {
  readonly name: string;
  readonly ms: number;
  readonly changed: boolean;
  /** Exactly what the pass changed, as immer patches against its input. */
  readonly patches: readonly Patch[];
}

export interface PassManagerOptions {
  /** Verify the graph after each pass (default true). */
  verify?: boolean;
  /** Print the graph after these passes, after every pass ('all'), or after passes that changed it. */
  printAfter?: readonly string[] | "all" | "changed";
  /** Print the patch list instead of the whole graph. */
  printPatches?: boolean;
  /** The printer (printGraph by default is injected by the caller to keep this module small). */
  printer?: (g: Graph) => string;
  /** Where printed dumps go (default console.log). */
  log?: (text: string) => void;
}

export interface PassManagerResult {
  readonly graph: Graph;
  readonly records: readonly PassRecord[];
}

/** Runs one pass with patches. A throwing pass leaves `graph` untouched (immer discards the draft). */
export function runPass(pass: Pass, graph: Graph): { graph: Graph; patches: Patch[] } {
  try {
    const [next, patches] = produceWithPatches(graph, (draft) => pass.run(draft) as Draft<Graph> | undefined);
    return { graph: next, patches };
  } catch (e) {
    if (isQforgeError(e)) {
      throw new QforgeError(e.code, `pass '${pass.name}': ${e.message}`, { node: e.node, hint: e.hint, cause: e });
    }
    throw new QforgeError("PASS_FAILED", `pass '${pass.name}' threw: ${(e as Error)?.message ?? String(e)}`, { cause: e });
  }
}

/** Runs passes in order, verifying after each, with timing, patches and optional dumps. */
export class PassManager {
  readonly passes: readonly Pass[];
  private readonly opts: PassManagerOptions;

  constructor(passes: readonly Pass[], opts: PassManagerOptions = {}) {
    const seen = new Set<string>();
    for (const p of passes) {
      if (seen.has(p.name)) throw new QforgeError("DUPLICATE_NAME", `pass '${p.name}' appears twice`, { hint: "give each pass a distinct name" });
      seen.add(p.name);
    }
    this.passes = passes;
    this.opts = opts;
  }

  run(graph: Graph): PassManagerResult {
    const records: PassRecord[] = [];
    const log = this.opts.log ?? ((s: string) => console.log(s));
    let g = graph;
    for (const pass of this.passes) {
      const t0 = performance.now();
      const { graph: next, patches } = runPass(pass, g);
      const ms = performance.now() - t0;
      if (this.opts.verify ?? true) {
        try {
          verifyGraph(next);
        } catch (e) {
          if (isQforgeError(e)) {
            throw new QforgeError(e.code, `after pass '${pass.name}': ${e.message}`, { node: e.node, hint: e.hint, cause: e });
          }
          throw e;
        }
      }
      const changed = patches.length > 0;
      records.push({ name: pass.name, ms, changed, patches });
      const pa = this.opts.printAfter;
      const print = pa === "all" || (pa === "changed" && changed) || (Array.isArray(pa) && pa.includes(pass.name));
      if (print) {
        const body = this.opts.printPatches ? formatPatches(patches) : (this.opts.printer ?? defaultPrinter)(next);
        log(`// ----- after ${pass.name} (${ms.toFixed(2)} ms, ${patches.length} patches) -----\n${body}`);
      }
      g = next;
    }
    return { graph: g, records };
  }
}

function defaultPrinter(g: Graph): string {
  return JSON.stringify({ inputs: g.inputs, outputs: g.outputs, nodes: g.nodes.map((n) => `${n.outputs.join(",")} = ${n.op}(${n.inputs.join(",")})`) }, null, 2);
}

/** One line per patch: `op path = value` with tensors summarized. */
export function formatPatches(patches: readonly Patch[]): string {
  return patches
    .map((p) => {
      const path = p.path.map(String).join(".");
      const value = p.op === "remove" ? "" : ` = ${summarize(p.value)}`;
      return `${p.op} ${path}${value}`;
    })
    .join("\n");
}

function summarize(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => {
    if (ArrayBuffer.isView(x)) return `<${x.constructor.name}(${(x as unknown as { length: number }).length})>`;
    if (typeof x === "bigint") return x.toString();
    return x;
  }) ?? "undefined";
}
