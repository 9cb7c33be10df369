/**
 * Graphviz DOT export of a Graph, plus the layout model the Mermaid export shares: nodes grouped
 * into nested clusters by their module stack (torch's nn_module_stack), coloured by op family
 * (from the op registry), edges labelled with the value's dtype and shape, graph inputs, outputs
 * and constants drawn as their own shapes.
 */
import { formatShape, opFamily, type Graph, type OpFamily, type ValueType } from "@qforge/ir";

export interface DumpOptions {
  /** Layout direction: top to bottom (default) or left to right. */
  readonly direction?: "TB" | "LR";
  /** Draw constants (parameters, buffers, folded values) and their edges. Default true. */
  readonly constants?: boolean;
  /** Title shown on the drawing. */
  readonly title?: string;
}

export type DumpNodeKind = "input" | "constant" | "op" | "output" | "missing";

/** One box in the drawing. `id` is a plain identifier, safe in DOT and Mermaid without quoting. */
export interface DumpNode {
  readonly id: string;
  readonly kind: DumpNodeKind;
  /** Label lines (raw text; each exporter escapes them). */
  readonly label: readonly string[];
  /** For op nodes: the family that picks the colour. */
  readonly family?: OpFamily;
}

/** A module: the nodes traced inside it and its submodules. */
export interface DumpCluster {
  readonly id: string;
  /** The module's qualified path and class, e.g. path "features.0", type "Conv2d". */
  readonly path: string;
  readonly type: string;
  readonly nodes: DumpNode[];
  readonly children: DumpCluster[];
}

export interface DumpEdge {
  readonly from: string;
  readonly to: string;
  readonly label: string;
}

/** What both exporters draw. */
export interface GraphLayout {
  /** Nodes outside every module (inputs, constants, outputs, nodes without a module stack). */
  readonly top: DumpNode[];
  readonly clusters: DumpCluster[];
  readonly edges: DumpEdge[];
}

/** Fill and border colours per op family and per special node kind (shared with Mermaid). */
export const FAMILY_COLORS: Readonly<Record<OpFamily, { fill: string; stroke: string }>> = {
  compute: { fill: "#cfe2ff", stroke: "#3d6fb6" },
  quantize: { fill: "#ffd8a8", stroke: "#d9480f" },
  observer: { fill: "#c3f0ca", stroke: "#2b8a3e" },
  other: { fill: "#e9ecef", stroke: "#868e96" },
};

export const KIND_COLORS: Readonly<Record<Exclude<DumpNodeKind, "op">, { fill: string; stroke: string }>> = {
  input: { fill: "#f8f9fa", stroke: "#212529" },
  output: { fill: "#f8f9fa", stroke: "#212529" },
  constant: { fill: "#fff9db", stroke: "#e67700" },
  missing: { fill: "#ffe3e3", stroke: "#c92a2a" },
};

/** How a name shows in a label: the empty name is shown as "" so that it is visible. */
function shown(name: string): string {
  return name === "" ? '""' : name;
}

function typeText(t: ValueType | undefined): string | undefined {
  return t === undefined ? undefined : `${t.dtype}${formatShape(t.shape)}`;
}

function isFrame(f: unknown): f is { path: string; type: string } {
  return typeof f === "object" && f !== null && typeof (f as { path?: unknown }).path === "string"
    && typeof (f as { type?: unknown }).type === "string";
}

/** Builds the clusters, nodes and edges of a graph's drawing. */
export function graphLayout(g: Graph, opts: DumpOptions = {}): GraphLayout {
  const showConstants = opts.constants ?? true;
  const own = (rec: object, k: string): boolean => Object.prototype.hasOwnProperty.call(rec, k);
  const valueType = (v: string): ValueType | undefined => (own(g.values, v) ? g.values[v] : undefined);
  const top: DumpNode[] = [];
  const clusters: DumpCluster[] = [];
  const edges: DumpEdge[] = [];
  /** value name -> [drawing node id, producer output count] */
  const producer = new Map<string, { id: string; outputs: number }>();

  g.inputs.forEach((v, i) => {
    const id = `input_${i}`;
    top.push({ id, kind: "input", label: [shown(v), typeText(valueType(v)) ?? "input"] });
    if (!producer.has(v)) producer.set(v, { id, outputs: 1 });
  });
  Object.entries(g.constants).forEach(([v, c], i) => {
    if (!showConstants) return;
    const id = `const_${i}`;
    top.push({ id, kind: "constant", label: [shown(v), `${c.kind} ${c.tensor.dtype}${formatShape(c.tensor.shape)}`] });
    if (!producer.has(v)) producer.set(v, { id, outputs: 1 });
  });
  const constantNames = new Set(Object.keys(g.constants));

  const clusterIndex = new Map<string, DumpCluster>();
  const clusterFor = (frames: readonly { path: string; type: string }[]): DumpCluster | undefined => {
    let parentList = clusters;
    let cluster: DumpCluster | undefined;
    for (let depth = 0; depth < frames.length; depth++) {
      const key = JSON.stringify(frames.slice(0, depth + 1).map((f) => [f.path, f.type]));
      let c = clusterIndex.get(key);
      if (c === undefined) {
        c = { id: `cluster_${clusterIndex.size}`, path: frames[depth]!.path, type: frames[depth]!.type, nodes: [], children: [] };
        clusterIndex.set(key, c);
        parentList.push(c);
      }
      cluster = c;
      parentList = c.children;
    }
    return cluster;
  };

  const missing = new Map<string, string>();
  const sourceOf = (v: string): { id: string; outputs: number } | undefined => {
    const p = producer.get(v);
    if (p !== undefined) return p;
    if (!showConstants && constantNames.has(v)) return undefined;
    let id = missing.get(v);
    if (id === undefined) {
      id = `missing_${missing.size}`;
      missing.set(v, id);
      top.push({ id, kind: "missing", label: [shown(v), "(undefined value)"] });
    }
    return { id, outputs: 1 };
  };
  const edgeLabel = (v: string, outputs: number): string => {
    const t = typeText(valueType(v));
    if (t === undefined) return shown(v);
    return outputs > 1 ? `${shown(v)}: ${t}` : t;
  };

  g.nodes.forEach((n, i) => {
    const id = `node_${i}`;
    const family = opFamily(n.op);
    const label = n.name === n.op ? [n.op] : [n.op, shown(n.name)];
    const node: DumpNode = { id, kind: "op", label, family };
    const stack = n.meta.moduleStack;
    const frames = Array.isArray(stack) && stack.every(isFrame) ? stack : [];
    const cluster = clusterFor(frames);
    (cluster === undefined ? top : cluster.nodes).push(node);
    for (const v of n.inputs) {
      if (v === "") continue;
      const src = sourceOf(v);
      if (src !== undefined) edges.push({ from: src.id, to: id, label: edgeLabel(v, src.outputs) });
    }
    for (const v of n.outputs) if (v !== "" && !producer.has(v)) producer.set(v, { id, outputs: n.outputs.length });
  });

  g.outputs.forEach((v, i) => {
    const id = `result_${i}`;
    top.push({ id, kind: "output", label: [shown(v), "output"] });
    const src = sourceOf(v);
    if (src !== undefined) edges.push({ from: src.id, to: id, label: edgeLabel(v, src.outputs) });
  });

  return { top, clusters, edges };
}

/** Module label: "path (Type)", or just the type for the root module (empty path). */
export function clusterLabel(c: DumpCluster): string {
  return c.path === "" ? c.type : `${c.path} (${c.type})`;
}

/** Lone UTF-16 surrogates cannot be written as UTF-8; show them as U+FFFD. */
export function wellFormed(s: string): string {
  return s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, "\ufffd");
}

/**
 * A DOT quoted string. Backslashes are doubled so that graphviz's label escapes (\N, \G, \l ...)
 * never trigger from user text, quotes are escaped, line breaks become \n (a centred line break),
 * other control characters show as \xNN.
 */
export function dotString(s: string): string {
  const body = wellFormed(s)
    .replace(/\\/g, "\\\\")
    .replace(/"/g, '\\"')
    .replace(/\r\n|\r|\n/g, "\\n")
    .replace(/[\u0000-\u001f\u007f]/g, (c) => `\\\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
  return `"${body}"`;
}

function dotLabel(lines: readonly string[]): string {
  // Escape each line, then join with DOT's \n so that line breaks inside names stay escaped too.
  return `"${lines.map((l) => dotString(l).slice(1, -1)).join("\\n")}"`;
}

function dotNode(n: DumpNode): string {
  const label = dotLabel(n.label);
  switch (n.kind) {
    case "op": {
      const c = FAMILY_COLORS[n.family ?? "other"];
      return `${n.id} [label=${label}, shape=box, style="rounded,filled", fillcolor="${c.fill}", color="${c.stroke}", tooltip=${dotString(`family: ${n.family ?? "other"}`)}];`;
    }
    case "input": return `${n.id} [label=${label}, shape=invhouse, style=filled, fillcolor="${KIND_COLORS.input.fill}", color="${KIND_COLORS.input.stroke}"];`;
    case "output": return `${n.id} [label=${label}, shape=house, style=filled, fillcolor="${KIND_COLORS.output.fill}", color="${KIND_COLORS.output.stroke}"];`;
    case "constant": return `${n.id} [label=${label}, shape=cylinder, style=filled, fillcolor="${KIND_COLORS.constant.fill}", color="${KIND_COLORS.constant.stroke}"];`;
    case "missing": return `${n.id} [label=${label}, shape=octagon, style="filled,dashed", fillcolor="${KIND_COLORS.missing.fill}", color="${KIND_COLORS.missing.stroke}"];`;
  }
}

function dotCluster(c: DumpCluster, indent: string, out: string[]): void {
  out.push(`${indent}subgraph ${c.id} {`);
  out.push(`${indent}  label=${dotString(clusterLabel(c))};`);
  out.push(`${indent}  style="rounded,dashed"; color="#868e96"; fontcolor="#495057";`);
  for (const n of c.nodes) out.push(`${indent}  ${dotNode(n)}`);
  for (const child of c.children) dotCluster(child, `${indent}  `, out);
  out.push(`${indent}}`);
}

/** The graph as Graphviz DOT (render with `dot -Tsvg graph.dot > graph.svg`). */
export function toDot(g: Graph, opts: DumpOptions = {}): string {
  const layout = graphLayout(g, opts);
  const out: string[] = [];
  out.push(`digraph ${dotString(opts.title ?? "qforge")} {`);
  out.push(`  rankdir=${opts.direction ?? "TB"};`);
  if (opts.title !== undefined) out.push(`  label=${dotString(opts.title)}; labelloc=t;`);
  out.push(`  node [fontname="Helvetica", fontsize=10];`);
  out.push(`  edge [fontname="Helvetica", fontsize=9, color="#495057"];`);
  for (const n of layout.top) out.push(`  ${dotNode(n)}`);
  for (const c of layout.clusters) dotCluster(c, "  ", out);
  for (const e of layout.edges) out.push(`  ${e.from} -> ${e.to} [label=${dotString(e.label)}];`);
  out.push("}");
  return out.join("\n") + "\n";
}
