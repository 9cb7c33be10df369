/**
 * Mermaid flowchart export (renders in GitHub markdown, docs sites, the Mermaid live editor): the same
 * drawing as toDot, from the same layout: module subgraphs, family colours, typed edges.
 */
import type { Graph } from "@qforge/ir";
import {
  FAMILY_COLORS, KIND_COLORS, clusterLabel, graphLayout, wellFormed,
  type DumpCluster, type DumpNode, type DumpOptions,
} from "./dot.js";

/**
 * Text for a quoted Mermaid label. Characters that Mermaid or its HTML labels would interpret are
 * written as Mermaid entity codes (`#quot;`, `#35;` ...), so any name shows as itself.
 */
export function mermaidText(s: string): string {
  return wellFormed(s).replace(/[#"<>&`|\\\u0000-\u001f\u007f]/g, (c) => {
    switch (c) {
      case "#": return "#35;";
      case '"': return "#quot;";
      case "<": return "#lt;";
      case ">": return "#gt;";
      case "&": return "#amp;";
      default: return `#${c.charCodeAt(0)};`;
    }
  });
}

function label(lines: readonly string[]): string {
  return `"${lines.map(mermaidText).join("<br/>")}"`;
}

/** Node declaration: ops rounded, inputs stadium, outputs trapezoid, constants cylinder. */
function mermaidNode(n: DumpNode): string {
  const l = label(n.label);
  switch (n.kind) {
    case "op": return `${n.id}(${l})`;
    case "input": return `${n.id}([${l}])`;
    case "output": return `${n.id}[/${l}\\]`;
    case "constant": return `${n.id}[(${l})]`;
    case "missing": return `${n.id}{{${l}}}`;
  }
}

function classOf(n: DumpNode): string {
  return n.kind === "op" ? (n.family ?? "other") : n.kind;
}

function emitCluster(c: DumpCluster, indent: string, out: string[], all: DumpNode[]): void {
  out.push(`${indent}subgraph ${c.id}[${label([clusterLabel(c)])}]`);
  for (const n of c.nodes) {
    out.push(`${indent}  ${mermaidNode(n)}`);
    all.push(n);
  }
  for (const child of c.children) emitCluster(child, `${indent}  `, out, all);
  out.push(`${indent}end`);
}

/** The graph as a Mermaid flowchart (paste inside a ```mermaid block). */
export function toMermaid(g: Graph, opts: DumpOptions = {}): string {
  const layout = graphLayout(g, opts);
  const out: string[] = [];
  if (opts.title !== undefined) out.push("---", `title: ${JSON.stringify(wellFormed(opts.title))}`, "---");
  out.push(`flowchart ${opts.direction ?? "TB"}`);
  const all: DumpNode[] = [];
  for (const n of layout.top) {
    out.push(`  ${mermaidNode(n)}`);
    all.push(n);
  }
  for (const c of layout.clusters) emitCluster(c, "  ", out, all);
  for (const e of layout.edges) out.push(`  ${e.from} -->|${label([e.label])}| ${e.to}`);
  const colors: Record<string, { fill: string; stroke: string }> = { ...FAMILY_COLORS, ...KIND_COLORS };
  const byClass = new Map<string, string[]>();
  for (const n of all) {
    const k = classOf(n);
    const ids = byClass.get(k);
    if (ids) ids.push(n.id);
    else byClass.set(k, [n.id]);
  }
  for (const [k, ids] of byClass) {
    const c = colors[k]!;
    out.push(`  classDef ${k} fill:${c.fill},stroke:${c.stroke},color:#212529`);
    out.push(`  class ${ids.join(",")} ${k}`);
  }
  return out.join("\n") + "\n";
}
