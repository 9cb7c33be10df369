import { getOp, verifyGraph, type Graph, type Tensor } from "@qforge/ir";
import { getKernel } from "./kernel.js";
import { runGraph } from "./interpreter.js";

/** A compiled graph, ready to run. */
export interface Session {
  /** Node names in the order they run. */
  readonly plan: readonly string[];
  run(feeds: Record<string, Tensor> | readonly Tensor[]): Promise<Tensor[]>;
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
    return {
      plan,
      async run(feeds) {
        return runGraph(g, feeds).outputs;
      },
    };
  },
};
