import type { Draft } from "immer";
import { QforgeError, type Graph, type Node } from "@qforge/ir";
import {
  ANNOTATION_KEY,
  type EdgeOrNode,
  type QuantizationAnnotation,
  type QuantizationSpecBase,
  type SharedQuantizationSpec,
} from "./spec.js";
import { validateSpec } from "./validate-spec.js";

/**
 * Reading and writing `node.meta.quantization_annotation` (torch's `node.meta["quantization_annotation"]`).
 * Writers take an immer draft of a node: quantizers annotate inside `produce`, so the input graph is
 * never touched and an annotation that throws half-way leaves nothing behind.
 */

/** What an annotator supplies; `annotated` is set for it and `allowImplicitSharing` defaults to true. */
export interface AnnotationInput {
  readonly inputQSpecMap?: Readonly<Record<string, QuantizationSpecBase | null>>;
  readonly outputQSpec?: QuantizationSpecBase | null;
  readonly allowImplicitSharing?: boolean;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * The node's annotation, or undefined when it has none. A malformed value under the key (e.g. from a
 * hand-edited dump) is a BAD_DATA error naming the node, not a crash later in prepare.
 */
export function getAnnotation(node: Pick<Node, "name" | "meta">): QuantizationAnnotation | undefined {
  const a = node.meta[ANNOTATION_KEY];
  if (a === undefined) return undefined;
  if (!isRecord(a) || !isRecord(a["inputQSpecMap"]) || typeof a["annotated"] !== "boolean" || typeof a["allowImplicitSharing"] !== "boolean") {
    throw new QforgeError("BAD_DATA", `meta.${ANNOTATION_KEY} is not a QuantizationAnnotation`, {
      node: node.name,
      hint: "an annotation is {inputQSpecMap: {...}, outputQSpec?, allowImplicitSharing: boolean, annotated: boolean}",
    });
  }
  return a as unknown as QuantizationAnnotation;
}

/** torch's `_is_annotated([node])`: a quantizer has claimed the node. */
export function isAnnotated(node: Pick<Node, "name" | "meta">): boolean {
  return getAnnotation(node)?.annotated === true;
}

/** torch's `_is_annotated(nodes)`: any of the nodes is claimed. */
export function anyAnnotated(nodes: readonly Pick<Node, "name" | "meta">[]): boolean {
  return nodes.some(isAnnotated);
}

function alreadyAnnotated(node: string): QforgeError {
  return new QforgeError("BAD_CONFIG", `node '${node}' is annotated twice`, {
    node,
    hint: "the first annotation of a node wins: a quantizer must skip nodes for which isAnnotated(node) is true",
  });
}

/**
 * Writes the annotation of `node` (a draft) and marks it annotated. Throws BAD_CONFIG naming the node
 * when it is already annotated, when a key of `inputQSpecMap` is not one of its inputs, or when a spec
 * is malformed. An unclaimed annotation left by a helper (annotated: false) is merged into.
 */
export function annotateNode(node: Draft<Node>, input: AnnotationInput): void {
  const previous = getAnnotation(node as Node);
  if (previous?.annotated === true) throw alreadyAnnotated(node.name);
  const inputQSpecMap: Record<string, QuantizationSpecBase | null> = { ...(previous?.inputQSpecMap ?? {}) };
  for (const [value, spec] of Object.entries(input.inputQSpecMap ?? {})) {
    if (value === "" || !node.inputs.includes(value)) {
      throw new QforgeError("BAD_CONFIG", `inputQSpecMap names '${value}', which is not an input of node '${node.name}'`, {
        node: node.name,
        hint: `its inputs are ${node.inputs.filter((v) => v !== "").map((v) => `'${v}'`).join(", ") || "none"}`,
      });
    }
    if (spec !== null) validateSpec(spec, node.name, `input '${value}'`);
    inputQSpecMap[value] = spec;
  }
  const out = input.outputQSpec !== undefined ? input.outputQSpec : previous?.outputQSpec;
  if (out !== undefined && out !== null) validateSpec(out, node.name, "output");
  if (out !== undefined && node.outputs.every((o) => o === "")) {
    throw new QforgeError("BAD_CONFIG", `node '${node.name}' has no output to annotate`, { node: node.name });
  }
  const annotation: QuantizationAnnotation = {
    inputQSpecMap,
    ...(out !== undefined ? { outputQSpec: out } : {}),
    allowImplicitSharing: input.allowImplicitSharing ?? previous?.allowImplicitSharing ?? true,
    annotated: true,
  };
  (node.meta as Record<string, unknown>)[ANNOTATION_KEY] = annotation;
}

/**
 * Claims a node without quantizing it (torch X86's `_annotate_nodes_not_quantize`): it stays in float
 * and later quantizers (or later stages of the same quantizer) leave it alone.
 */
export function claimFloat(node: Draft<Node>): void {
  annotateNode(node, {});
}

/** The edge `value -> node` (the value as `node` reads it): torch's `(input_node, user_node)`. */
export function edge(value: string, node: string): EdgeOrNode {
  return { kind: "edge", value, node };
}

/** The (first) output of `node`: torch's bare `node` in a SharedQuantizationSpec. */
export function nodeOutput(node: string): EdgeOrNode {
  return { kind: "node", node };
}

/** torch's `SharedQuantizationSpec(edge_or_node)`. */
export function sharedWith(target: EdgeOrNode): SharedQuantizationSpec {
  return { kind: "shared", edgeOrNode: target };
}

/** Every annotated node of the graph with its annotation, in node order. */
export function annotatedNodes(g: Graph): { node: Node; annotation: QuantizationAnnotation }[] {
  const out: { node: Node; annotation: QuantizationAnnotation }[] = [];
  for (const node of g.nodes) {
    const annotation = getAnnotation(node);
    if (annotation !== undefined) out.push({ node, annotation });
  }
  return out;
}
