import { spawnSync } from "node:child_process";
import { afterAll, describe, expect, it } from "vitest";
import fc from "fast-check";
import { fromArray, registerOpOverride, unregisterOp, type Graph, type Node } from "@qforge/ir";
import { toDot, toMermaid } from "@qforge/debug";
import { arbGraph } from "../../ir/test/arbitraries.js";

// ---------------------------------------------------------------------------------------------
// A tiny DOT parser: enough of the grammar (https://graphviz.org/doc/info/lang.html) to check that
// the output is well-formed (balanced braces, terminated strings, statements) and to read its structure.

interface DotNode { id: string; attrs: Record<string, string>; clusters: string[] }
interface DotEdge { from: string; to: string; attrs: Record<string, string> }
interface DotCluster { id: string; label: string; parent: string | undefined }
interface DotGraph { attrs: Record<string, string>; nodes: Map<string, DotNode>; edges: DotEdge[]; clusters: Map<string, DotCluster> }

type Tok = { t: "id" | "str" | "punct"; v: string };

function tokenizeDot(src: string): Tok[] {
  const toks: Tok[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i]!;
    if (/\s/.test(c)) { i++; continue; }
    if (c === "-" && src[i + 1] === ">") { toks.push({ t: "punct", v: "->" }); i += 2; continue; }
    if ("{}[]=;,".includes(c)) { toks.push({ t: "punct", v: c }); i++; continue; }
    if (c === '"') {
      let j = i + 1;
      let s = "";
      for (;;) {
        const d = src[j];
        if (d === undefined) throw new Error(`unterminated string at ${i}`);
        if (d === "\n") throw new Error(`raw newline inside a string at ${j}`);
        if (d === '"') break;
        if (d === "\\") { s += d + src[j + 1]!; j += 2; continue; }
        s += d;
        j++;
      }
      toks.push({ t: "str", v: s });
      i = j + 1;
      continue;
    }
    const m = /^[A-Za-z_][A-Za-z0-9_]*|^-?[0-9.]+/.exec(src.slice(i));
    if (m === null) throw new Error(`unexpected character ${JSON.stringify(c)} at ${i}`);
    toks.push({ t: "id", v: m[0] });
    i += m[0].length;
  }
  return toks;
}

/** Graphviz label text: \\ -> \, \" -> ", \n -> newline; other escapes stay as written. */
function unescapeDot(s: string): string {
  return s.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c === "\\" || c === '"' ? c : `\\${c}`));
}

function parseDot(src: string): DotGraph {
  const toks = tokenizeDot(src);
  let p = 0;
  const peek = (): Tok | undefined => toks[p];
  const next = (): Tok => {
    const t = toks[p++];
    if (t === undefined) throw new Error("unexpected end of DOT");
    return t;
  };
  const expectPunct = (v: string): void => {
    const t = next();
    if (t.t !== "punct" || t.v !== v) throw new Error(`expected '${v}', got '${t.v}' (token ${p - 1})`);
  };
  const value = (): string => {
    const t = next();
    if (t.t === "punct") throw new Error(`expected a value, got '${t.v}'`);
    return t.t === "str" ? unescapeDot(t.v) : t.v;
  };
  const attrList = (): Record<string, string> => {
    const attrs: Record<string, string> = {};
    expectPunct("[");
    while (!(peek()?.t === "punct" && peek()?.v === "]")) {
      const k = next();
      if (k.t !== "id") throw new Error(`attribute name expected, got '${k.v}'`);
      expectPunct("=");
      attrs[k.v] = value();
      if (peek()?.t === "punct" && (peek()?.v === "," || peek()?.v === ";")) p++;
    }
    expectPunct("]");
    return attrs;
  };
  const g: DotGraph = { attrs: {}, nodes: new Map(), edges: [], clusters: new Map() };
  const stmts = (stack: string[]): void => {
    for (;;) {
      const t = peek();
      if (t === undefined) throw new Error("missing '}'");
      if (t.t === "punct" && t.v === "}") return;
      if (t.t === "punct" && t.v === ";") { p++; continue; }
      const head = next();
      if (head.t !== "id") throw new Error(`statement expected, got '${head.v}'`);
      if (head.v === "subgraph") {
        const id = next().v;
        expectPunct("{");
        g.clusters.set(id, { id, label: "", parent: stack[stack.length - 1] });
        stmts([...stack, id]);
        expectPunct("}");
        continue;
      }
      if (head.v === "node" || head.v === "edge" || head.v === "graph") { attrList(); continue; }
      const after = peek();
      if (after?.t === "punct" && after.v === "=") {
        p++;
        const v = value();
        if (stack.length === 0) g.attrs[head.v] = v;
        else if (head.v === "label") g.clusters.get(stack[stack.length - 1]!)!.label = v;
        continue;
      }
      if (after?.t === "punct" && after.v === "->") {
        p++;
        const to = next();
        if (to.t !== "id") throw new Error("edge target expected");
        g.edges.push({ from: head.v, to: to.v, attrs: peek()?.v === "[" ? attrList() : {} });
        continue;
      }
      if (g.nodes.has(head.v)) throw new Error(`node ${head.v} declared twice`);
      g.nodes.set(head.v, { id: head.v, attrs: peek()?.v === "[" ? attrList() : {}, clusters: stack });
    }
  };
  const kw = next();
  if (kw.v !== "digraph") throw new Error("expected digraph");
  value();
  expectPunct("{");
  stmts([]);
  expectPunct("}");
  if (p !== toks.length) throw new Error("tokens after the closing '}'");
  return g;
}

// ---------------------------------------------------------------------------------------------
// Mermaid: the flowchart subset toMermaid emits, line by line.

const ID = "[A-Za-z][A-Za-z0-9_]*";
const LABEL = '"[^"\\n]*"';
const MERMAID_LINE: [string, RegExp][] = [
  ["header", /^flowchart (TB|LR)$/],
  ["subgraph", new RegExp(`^\\s*subgraph (${ID})\\[(${LABEL})\\]$`)],
  ["end", /^\s*end$/],
  ["node", new RegExp(`^\\s*(${ID})(\\((${LABEL})\\)|\\(\\[(${LABEL})\\]\\)|\\[/(${LABEL})\\\\\\]|\\[\\((${LABEL})\\)\\]|\\{\\{(${LABEL})\\}\\})$`)],
  ["edge", new RegExp(`^\\s*(${ID}) -->\\|(${LABEL})\\| (${ID})$`)],
  ["classDef", /^\s*classDef (compute|quantize|observer|other|input|output|constant|missing) fill:#[0-9a-f]{6},stroke:#[0-9a-f]{6},color:#[0-9a-f]{6}$/],
  ["class", new RegExp(`^\\s*class (${ID}(?:,${ID})*) (compute|quantize|observer|other|input|output|constant|missing)$`)],
];

interface MermaidDoc {
  nodes: Map<string, { shape: string; label: string[]; subgraphs: string[] }>;
  edges: { from: string; to: string; label: string }[];
  subgraphs: Map<string, { label: string; parent: string | undefined }>;
  classes: Map<string, string>;
}

function mermaidDecode(quoted: string): string[] {
  const body = quoted.slice(1, -1);
  // Labels may only hold <br/> as markup; everything else that is special must be an entity.
  expect(body.replace(/<br\/>/g, "")).not.toMatch(/[<>"`|]/);
  return body.split("<br/>").map((l) => l
    .replace(/#quot;/g, '"').replace(/#lt;/g, "<").replace(/#gt;/g, ">").replace(/#amp;/g, "&")
    .replace(/#(\d+);/g, (_, d: string) => String.fromCharCode(Number(d))));
}

function parseMermaid(src: string): MermaidDoc {
  const doc: MermaidDoc = { nodes: new Map(), edges: [], subgraphs: new Map(), classes: new Map() };
  const stack: string[] = [];
  const lines = src.trimEnd().split("\n");
  let i = 0;
  if (lines[0] === "---") {
    expect(lines[1]).toMatch(/^title: ".*"$/);
    expect(lines[2]).toBe("---");
    i = 3;
  }
  for (; i < lines.length; i++) {
    const line = lines[i]!;
    const hit = MERMAID_LINE.find(([, re]) => re.test(line));
    if (hit === undefined) throw new Error(`line ${i + 1} is not in the emitted grammar: ${JSON.stringify(line)}`);
    const m = hit[1].exec(line)!;
    switch (hit[0]) {
      case "subgraph":
        doc.subgraphs.set(m[1]!, { label: mermaidDecode(m[2]!).join("\n"), parent: stack[stack.length - 1] });
        stack.push(m[1]!);
        break;
      case "end":
        if (stack.pop() === undefined) throw new Error(`unbalanced 'end' at line ${i + 1}`);
        break;
      case "node": {
        if (doc.nodes.has(m[1]!)) throw new Error(`node ${m[1]} declared twice`);
        const shapes = ["op", "input", "output", "constant", "missing"];
        const k = [3, 4, 5, 6, 7].findIndex((g) => m[g] !== undefined);
        doc.nodes.set(m[1]!, { shape: shapes[k]!, label: mermaidDecode(m[k + 3]!), subgraphs: [...stack] });
        break;
      }
      case "edge":
        doc.edges.push({ from: m[1]!, label: mermaidDecode(m[2]!).join("\n"), to: m[3]! });
        break;
      case "class":
        for (const id of m[1]!.split(",")) doc.classes.set(id, m[2]!);
        break;
      default:
        break;
    }
  }
  if (stack.length !== 0) throw new Error("unclosed subgraph");
  expect(lines[lines[0] === "---" ? 3 : 0]).toMatch(/^flowchart /);
  return doc;
}

// ---------------------------------------------------------------------------------------------

const HOSTILE = 'we"ird\\name\n<b>&#x|`{}[];->';

function sampleGraph(): Graph {
  const f = (path: string, type: string) => ({ path, type });
  const features = f("features", "Sequential");
  const n = (p: Partial<Node> & Pick<Node, "name" | "op" | "inputs" | "outputs">): Node => ({ attrs: {}, meta: {}, ...p });
  return {
    inputs: ["x"],
    outputs: ["y", HOSTILE],
    constants: {
      "features.0.weight": { kind: "parameter", tensor: fromArray("float32", [4, 3, 3, 3], new Array(108).fill(0.5)) },
      scale: { kind: "constant", tensor: fromArray("float32", [], [0.1]) },
    },
    nodes: [
      n({ name: "conv", op: "conv", inputs: ["x", "features.0.weight", ""], outputs: ["conv"], meta: { moduleStack: [features, f("features.0", "Conv2d")] } }),
      n({ name: "relu", op: "relu", inputs: ["conv"], outputs: ["relu"], meta: { moduleStack: [features, f("features.1", "ReLU")] } }),
      n({ name: "obs", op: "test_dump.observer", inputs: ["relu"], outputs: ["obs"], meta: { moduleStack: [features] } }),
      n({ name: "q", op: "quantize_linear", inputs: ["obs", "scale"], outputs: ["q"] }),
      n({ name: "parts", op: "mystery op", inputs: ["q"], outputs: ["y", HOSTILE], meta: { moduleStack: [f("head", 'Weird"Module<T>')] } }),
    ],
    values: {
      x: { dtype: "float32", shape: ["N", 3, 8, 8] },
      "features.0.weight": { dtype: "float32", shape: [4, 3, 3, 3] },
      scale: { dtype: "float32", shape: [] },
      conv: { dtype: "float32", shape: ["N", 4, 6, 6] },
      relu: { dtype: "float32", shape: ["N", 4, 6, 6] },
      obs: { dtype: "float32", shape: ["N", 4, 6, 6] },
      q: { dtype: "int8", shape: ["N", 4, 6, 6] },
      y: { dtype: "int8", shape: ["N", 2, 6, 6] },
      [HOSTILE]: { dtype: "int8", shape: ["N", 2, 6, 6] },
    },
  };
}

// Registered at load time: the describe blocks below draw the sample graph while collecting tests.
registerOpOverride({
  name: "test_dump.observer", family: "observer", doc: "test-only observer op", attrs: {},
  inputs: [{ name: "x" }], outputs: [{ name: "y" }], infer: (ctx) => [ctx.inputs[0]!],
});
afterAll(() => unregisterOp("test_dump.observer"));

const hasGraphviz = spawnSync("dot", ["-V"]).status === 0;

/** Edges a drawing must contain: one per (non-omitted input, node) and one per graph output. */
function expectedEdgeCount(g: Graph, withConstants = true): number {
  const hidden = (v: string) => !withConstants && Object.prototype.hasOwnProperty.call(g.constants, v);
  let k = 0;
  for (const n of g.nodes) for (const v of n.inputs) if (v !== "" && !hidden(v)) k++;
  for (const v of g.outputs) if (!hidden(v)) k++;
  return k;
}

describe("toDot", () => {
  const g = sampleGraph();
  const dot = toDot(g);
  const parsed = parseDot(dot);
  const byLabel = (first: string) => [...parsed.nodes.values()].filter((n) => n.attrs.label!.split("\n")[0] === first);

  it("is well-formed DOT (balanced braces, terminated strings, known statements)", () => {
    expect(dot.startsWith('digraph "qforge" {\n')).toBe(true);
    expect(parsed.attrs.rankdir).toBe("TB");
  });

  it.skipIf(!hasGraphviz)("renders with graphviz dot -Tsvg", () => {
    const r = spawnSync("dot", ["-Tsvg"], { input: dot, encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain("<svg");
  });

  it("nests clusters by module stack and puts each node in its innermost module", () => {
    const labels = new Map([...parsed.clusters.values()].map((c) => [c.label, c]));
    expect([...labels.keys()].sort()).toEqual(["features (Sequential)", "features.0 (Conv2d)", "features.1 (ReLU)", 'head (Weird"Module<T>)'].sort());
    const features = labels.get("features (Sequential)")!;
    expect(features.parent).toBeUndefined();
    expect(labels.get("features.0 (Conv2d)")!.parent).toBe(features.id);
    expect(labels.get("features.1 (ReLU)")!.parent).toBe(features.id);
    const where = (op: string) => byLabel(op)[0]!.clusters.map((c) => parsed.clusters.get(c)!.label);
    expect(where("conv")).toEqual(["features (Sequential)", "features.0 (Conv2d)"]);
    expect(where("relu")).toEqual(["features (Sequential)", "features.1 (ReLU)"]);
    expect(where("test_dump.observer")).toEqual(["features (Sequential)"]);
    expect(where("quantize_linear")).toEqual([]);
    expect(where("mystery op")).toEqual(['head (Weird"Module<T>)']);
    for (const c of parsed.clusters.keys()) expect(c).toMatch(/^cluster_/);
  });

  it("colours op nodes by family and draws inputs, outputs and constants as distinct shapes", () => {
    const fill = (op: string) => byLabel(op)[0]!.attrs.fillcolor;
    expect(fill("conv")).toBe("#cfe2ff");
    expect(fill("relu")).toBe("#cfe2ff");
    expect(fill("quantize_linear")).toBe("#ffd8a8");
    expect(fill("test_dump.observer")).toBe("#c3f0ca");
    expect(fill("mystery op")).toBe("#e9ecef");
    const shapes = [...parsed.nodes.values()].map((n) => n.attrs.shape);
    expect(shapes.filter((s) => s === "invhouse")).toHaveLength(1);
    expect(shapes.filter((s) => s === "house")).toHaveLength(2);
    expect(shapes.filter((s) => s === "cylinder")).toHaveLength(2);
    expect(shapes.filter((s) => s === "box")).toHaveLength(5);
    expect(byLabel("features.0.weight")[0]!.attrs.label).toBe("features.0.weight\nparameter float32[4,3,3,3]");
    expect(byLabel("x")[0]!.attrs.label).toBe("x\nfloat32[N,3,8,8]");
  });

  it("has every edge, labelled with dtype and shape (value names too for multi-output nodes)", () => {
    expect(parsed.edges).toHaveLength(expectedEdgeCount(g));
    const id = (first: string) => byLabel(first)[0]!.id;
    const edge = (from: string, to: string) => parsed.edges.find((e) => e.from === id(from) && e.to === id(to))?.attrs.label;
    expect(edge("x", "conv")).toBe("float32[N,3,8,8]");
    expect(edge("features.0.weight", "conv")).toBe("float32[4,3,3,3]");
    expect(edge("conv", "relu")).toBe("float32[N,4,6,6]");
    expect(edge("scale", "quantize_linear")).toBe("float32[]");
    expect(edge("quantize_linear", "mystery op")).toBe("int8[N,4,6,6]");
    const outs = parsed.edges.filter((e) => e.from === id("mystery op")).map((e) => e.attrs.label).sort();
    expect(outs).toEqual([`${HOSTILE}: int8[N,2,6,6]`, "y: int8[N,2,6,6]"].sort());
  });

  it("escapes labels so that any name survives (quotes, backslashes, newlines, braces)", () => {
    const out = [...parsed.nodes.values()].filter((n) => n.attrs.shape === "house").map((n) => n.attrs.label);
    expect(out).toContain(`${HOSTILE}\noutput`);
    expect(dot).toContain('we\\"ird\\\\name\\n<b>&#x|`{}[];->');
  });

  it("options: hide constants, left-to-right, title", () => {
    const d = parseDot(toDot(g, { constants: false, direction: "LR", title: 'my "net"' }));
    expect([...d.nodes.values()].some((n) => n.attrs.shape === "cylinder")).toBe(false);
    expect(d.edges).toHaveLength(expectedEdgeCount(g, false));
    expect(d.attrs.rankdir).toBe("LR");
    expect(d.attrs.label).toBe('my "net"');
  });

  it("draws a dangling input as a visible 'undefined value' node instead of failing", () => {
    const bad: Graph = { ...g, nodes: [...g.nodes, { name: "z", op: "relu", inputs: ["nope"], outputs: ["z"], attrs: {}, meta: {} }] };
    const d = parseDot(toDot(bad));
    const miss = [...d.nodes.values()].find((n) => n.attrs.shape === "octagon");
    expect(miss?.attrs.label).toBe("nope\n(undefined value)");
  });
});

describe("toMermaid", () => {
  const g = sampleGraph();
  const text = toMermaid(g);
  const doc = parseMermaid(text);
  const byLabel = (first: string) => [...doc.nodes.entries()].filter(([, n]) => n.label[0] === first).map(([id, n]) => ({ id, ...n }));

  it("every line follows the flowchart grammar it emits; subgraphs nest by module stack", () => {
    expect(text.split("\n")[0]).toBe("flowchart TB");
    const labels = new Map([...doc.subgraphs.entries()].map(([id, s]) => [s.label, { id, ...s }]));
    expect([...labels.keys()].sort()).toEqual(["features (Sequential)", "features.0 (Conv2d)", "features.1 (ReLU)", 'head (Weird"Module<T>)'].sort());
    expect(labels.get("features.0 (Conv2d)")!.parent).toBe(labels.get("features (Sequential)")!.id);
    const sg = (op: string) => byLabel(op)[0]!.subgraphs.map((s) => doc.subgraphs.get(s)!.label);
    expect(sg("conv")).toEqual(["features (Sequential)", "features.0 (Conv2d)"]);
    expect(sg("test_dump.observer")).toEqual(["features (Sequential)"]);
    expect(sg("quantize_linear")).toEqual([]);
  });

  it("classes by op family, distinct shapes for inputs/outputs/constants, every node and edge present", () => {
    const cls = (op: string) => doc.classes.get(byLabel(op)[0]!.id);
    expect(cls("conv")).toBe("compute");
    expect(cls("quantize_linear")).toBe("quantize");
    expect(cls("test_dump.observer")).toBe("observer");
    expect(cls("mystery op")).toBe("other");
    expect(byLabel("x")[0]!.shape).toBe("input");
    expect(byLabel("scale")[0]!.shape).toBe("constant");
    expect(byLabel("y")[0]!.shape).toBe("output");
    expect(doc.nodes.size).toBe(1 + 2 + 5 + 2);
    for (const id of doc.nodes.keys()) expect(doc.classes.has(id), id).toBe(true);
    expect(doc.edges).toHaveLength(expectedEdgeCount(g));
    const e = doc.edges.find((x) => x.from === byLabel("x")[0]!.id);
    expect(e?.label).toBe("float32[N,3,8,8]");
  });

  it("escapes hostile names as entities and decodes back to the original", () => {
    const out = [...doc.nodes.values()].filter((n) => n.shape === "output").map((n) => n.label.join("\n"));
    // the newline in the name is an entity (#10;), not a <br/>: the name decodes whole
    expect(out).toContain(`${HOSTILE}\noutput`);
    expect(text).not.toContain(HOSTILE);
  });

  it("title front matter and direction", () => {
    const t = toMermaid(g, { title: "net", direction: "LR" });
    expect(t.startsWith('---\ntitle: "net"\n---\nflowchart LR\n')).toBe(true);
    parseMermaid(t);
  });
});

describe("arbitrary graphs (fast-check)", () => {
  it("DOT parses and Mermaid follows its grammar for any graph, with every node and edge drawn", () => {
    fc.assert(
      fc.property(arbGraph, fc.boolean(), (g, withConstants) => {
        const opts = { constants: withConstants };
        const d = parseDot(toDot(g, opts));
        const m = parseMermaid(toMermaid(g, opts));
        const ops = [...d.nodes.values()].filter((n) => n.attrs.shape === "box");
        expect(ops).toHaveLength(g.nodes.length);
        expect(d.edges).toHaveLength(expectedEdgeCount(g, withConstants));
        expect(m.edges).toHaveLength(expectedEdgeCount(g, withConstants));
        expect([...m.nodes.values()].filter((n) => n.shape === "op")).toHaveLength(g.nodes.length);
        expect(m.nodes.size).toBe(d.nodes.size);
        expect(m.subgraphs.size).toBe(d.clusters.size);
        for (const e of d.edges) {
          expect(d.nodes.has(e.from)).toBe(true);
          expect(d.nodes.has(e.to)).toBe(true);
        }
      }),
      { numRuns: 300 },
    );
  });

  it.skipIf(!hasGraphviz)("graphviz accepts the DOT of arbitrary graphs (fast-check)", () => {
    fc.assert(
      fc.property(arbGraph, (g) => {
        const r = spawnSync("dot", ["-Tsvg"], { input: toDot(g), encoding: "utf8" });
        expect(r.status, r.stderr).toBe(0);
        expect(r.stderr).toBe("");
      }),
      { numRuns: 100 },
    );
  });
});
