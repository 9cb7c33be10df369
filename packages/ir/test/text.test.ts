import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { fnv1a64, parseGraph, printGraph, tensorHash } from "../src/text/index.js";
import { DTYPES, allocStorage } from "../src/dtype.js";
import { isQforgeError, type QforgeError } from "../src/errors.js";
import type { Constant, Graph, Node, NodeMeta } from "../src/graph.js";
import { fromArray, type Tensor } from "../src/tensor.js";
import { arbGraph, graphDiff } from "./arbitraries.js";

function expectSameGraph(actual: Graph, expected: Graph): void {
  const d = graphDiff(actual, expected);
  expect(d, d).toBeUndefined();
}

function node(p: Partial<Node> & Pick<Node, "op" | "inputs" | "outputs">): Node {
  return { name: p.outputs[0] ?? "n", attrs: {}, meta: {}, ...p };
}

function graph(p: Partial<Graph>): Graph {
  return { inputs: [], outputs: [], constants: {}, nodes: [], values: {}, ...p };
}

function caught(f: () => unknown): QforgeError {
  try {
    f();
  } catch (e) {
    if (isQforgeError(e)) return e;
    throw new Error(`expected a QforgeError, got ${String(e)}`);
  }
  throw new Error("expected an error");
}

/** The dump shown in docs/ir-text-format.md: a small conv block after convertPt2e-style QDQ. */
export function exampleGraph(): Graph {
  const weight = fromArray("float32", [8, 3, 3, 3], Array.from({ length: 216 }, (_, i) => Math.round(Math.sin(i * 0.7) * 3000) / 10000));
  const bias = fromArray("float32", [8], [0.01, -0.02, 0.03, 0, 0.05, -0.06, 0.07, 0.125]);
  const stack = (leaf: string, type: string) => [{ path: "features", type: "Sequential" }, { path: leaf, type }];
  const act = [1, 8, 30, 30];
  return {
    inputs: ["x"],
    outputs: ["head", "tail"],
    constants: {
      "features.0.weight": { kind: "parameter", tensor: weight },
      "features.0.bias": { kind: "parameter", tensor: bias },
      act_scale: { kind: "constant", tensor: fromArray("float32", [], [0.0235]) },
      act_zero_point: { kind: "constant", tensor: fromArray("int32", [], [-128]) },
    },
    nodes: [
      {
        name: "conv", op: "conv", inputs: ["x", "features.0.weight", "features.0.bias"], outputs: ["conv"],
        attrs: { strides: [1, 1], pads: [0, 0, 0, 0], dilations: [1, 1] },
        meta: { moduleStack: stack("features.0", "Conv2d"), source: "examples/net.ts:14:9", debugHandle: 1 },
      },
      {
        name: "relu", op: "relu", inputs: ["conv"], outputs: ["relu"], attrs: {},
        meta: { moduleStack: stack("features.1", "ReLU"), source: "examples/net.ts:15:9", debugHandle: 2 },
      },
      {
        name: "relu_q", op: "quantize_per_tensor", inputs: ["relu", "act_scale", "act_zero_point"], outputs: ["relu_q"],
        attrs: { quant_min: -128, quant_max: 127, dtype: "int8" },
        meta: { quantization_annotation: { output_qspec: { dtype: "int8", qscheme: "per_tensor_affine", observer: "HistogramObserver" } } },
      },
      {
        name: "relu_dq", op: "dequantize_per_tensor", inputs: ["relu_q", "act_scale", "act_zero_point"], outputs: ["relu_dq"],
        attrs: { quant_min: -128, quant_max: 127, dtype: "int8" }, meta: {},
      },
      {
        name: "chunk", op: "split", inputs: ["relu_dq", ""], outputs: ["head", "tail"],
        attrs: { axis: 2, num_outputs: 2 }, meta: { source: "examples/net.ts:17:20" },
      },
    ],
    values: {
      x: { dtype: "float32", shape: ["N", 3, 32, 32] },
      "features.0.weight": { dtype: "float32", shape: [8, 3, 3, 3] },
      "features.0.bias": { dtype: "float32", shape: [8] },
      act_scale: { dtype: "float32", shape: [] },
      act_zero_point: { dtype: "int32", shape: [] },
      conv: { dtype: "float32", shape: ["N", ...act.slice(1)] },
      relu: { dtype: "float32", shape: ["N", ...act.slice(1)] },
      relu_q: { dtype: "int8", shape: ["N", ...act.slice(1)] },
      relu_dq: { dtype: "float32", shape: ["N", ...act.slice(1)] },
      head: { dtype: "float32", shape: ["N", 8, 15, 30] },
      tail: { dtype: "float32", shape: ["N", 8, 15, 30] },
    },
  };
}

describe("printGraph", () => {
  it("prints the documented example exactly as docs/ir-text-format.md shows it", () => {
    const doc = readFileSync(fileURLToPath(new URL("../../../docs/ir-text-format.md", import.meta.url)), "utf8");
    const block = /<!-- example:begin -->\n```text\n([\s\S]*?)```\n<!-- example:end -->/.exec(doc);
    expect(block, "example block in docs/ir-text-format.md").not.toBeNull();
    const text = printGraph(exampleGraph());
    expect(text).toBe(block![1]);
    expectSameGraph(parseGraph(text, { constants: exampleGraph().constants }), exampleGraph());
  });

  it("lays out one line per input, constant, node, then return", () => {
    const g = exampleGraph();
    const lines = printGraph(g).trimEnd().split("\n");
    expect(lines[0]).toBe("input %x: float32[N,3,32,32]");
    expect(lines[1]).toMatch(/^parameter %features\.0\.weight: float32\[8,3,3,3\] = summary\(min=-0\.2976, max=0\.3, mean=-0\.000118519, fnv1a64=[0-9a-f]{16}\)$/);
    expect(lines[2]).toBe("parameter %features.0.bias: float32[8] = [0.01, -0.02, 0.03, 0, 0.05, -0.06, 0.07, 0.125]");
    expect(lines[3]).toBe("constant %act_scale: float32[] = [0.0235]");
    expect(lines[4]).toBe("constant %act_zero_point: int32[] = [-128]");
    expect(lines[5]).toBe('%conv: float32[N,8,30,30] = conv(%x, %features.0.weight, %features.0.bias) {dilations=[1, 1], pads=[0, 0, 0, 0], strides=[1, 1]} # moduleStack=<features:Sequential, features.0:Conv2d>, source="examples/net.ts:14:9", debugHandle=1');
    expect(lines[9]).toBe('%head: float32[N,8,15,30], %tail: float32[N,8,15,30] = split(%relu_dq, _) {axis=2, num_outputs=2} @chunk # source="examples/net.ts:17:20"');
    expect(lines[lines.length - 1]).toBe("return %head, %tail");
    expect(lines).toHaveLength(11);
  });

  it("does not depend on the insertion order of attrs and meta keys", () => {
    const a = graph({
      inputs: ["x"], outputs: ["y"], values: { x: { dtype: "float32", shape: [2] }, y: { dtype: "float32", shape: [2] } },
      nodes: [node({ op: "f", inputs: ["x"], outputs: ["y"], attrs: { b: 1, a: "s", c: [1, 2] }, meta: { z: { q: 1, p: [2] }, debugHandle: 3, a: true, moduleStack: [{ path: "m", type: "M" }] } })],
    });
    const b = graph({
      ...a,
      nodes: [node({ op: "f", inputs: ["x"], outputs: ["y"], attrs: { c: [1, 2], a: "s", b: 1 }, meta: { a: true, moduleStack: [{ type: "M", path: "m" }], z: { p: [2], q: 1 }, debugHandle: 3 } })],
    });
    expect(printGraph(b)).toBe(printGraph(a));
    expect(printGraph(a)).toContain('{a="s", b=1, c=[1, 2]} # moduleStack=<m:M>, debugHandle=3, a=true, z={"p": [2], "q": 1}');
    expect(printGraph(a)).toBe(printGraph(a));
  });

  it("quotes names that are not bare words, and keeps ONNX-style names bare", () => {
    const names = ["/features/0/Conv_output_0", "onnx::Conv_3", "split:0", "a b", "a:", 'q"', "x\ny", "%", "ü"];
    const g = graph({
      inputs: names, outputs: names,
      values: Object.fromEntries(names.map((n) => [n, { dtype: "float32" as const, shape: [1] }])),
    });
    const text = printGraph(g);
    expect(text).toContain("input %/features/0/Conv_output_0: float32[1]\n");
    expect(text).toContain("input %onnx::Conv_3: float32[1]\n");
    expect(text).toContain("input %split:0: float32[1]\n");
    expect(text).toContain('input %"a b": float32[1]\n');
    expect(text).toContain('input %"a:": float32[1]\n');
    expect(text).toContain('input %"q\\"": float32[1]\n');
    expect(text).toContain('input %"x\\ny": float32[1]\n');
    expect(text).toContain('input %"ü": float32[1]\n');
    expectSameGraph(parseGraph(text), g);
  });

  it("prints numbers so they parse back identically (-0, NaN, ±Infinity, 1e-300, shortest repr)", () => {
    const nums = [-0, 0, NaN, Infinity, -Infinity, 1e-300, 5e-324, Number.MAX_VALUE, 0.1, 1 / 3, 1e21, -1.5e-7, 123456789];
    const g = graph({
      nodes: [node({ op: "f", inputs: [], outputs: [], name: "n", attrs: Object.fromEntries(nums.map((x, i) => [`a${i}`, x])) })],
    });
    const text = printGraph(g);
    expect(text).toContain("a0=-0, a1=0, a10=1e+21, a11=-1.5e-7, a12=123456789, a2=nan, a3=inf, a4=-inf, a5=1e-300, a6=5e-324, a7=1.7976931348623157e+308, a8=0.1, a9=0.3333333333333333");
    const back = parseGraph(text).nodes[0]!.attrs;
    nums.forEach((x, i) => expect(Object.is(back[`a${i}`], x), `a${i}=${x}`).toBe(true));
  });

  it("round-trips node names, multiple and omitted outputs, omitted inputs, symbolic and 0-d shapes, untyped values", () => {
    const g = graph({
      inputs: ["x", "u"], outputs: ["a", "b", "u"],
      values: {
        x: { dtype: "bfloat16", shape: ["batch", "seq len", 0, "2"] },
        a: { dtype: "int4", shape: [] }, b: { dtype: "bool", shape: ["nan", 3] },
        orphan: { dtype: "uint7", shape: ["inf"] },
      },
      nodes: [
        node({ name: "split node", op: "split", inputs: ["x", "", "x"], outputs: ["a", "", "b"] }),
        node({ name: "sink", op: "print", inputs: ["a"], outputs: [] }),
        node({ name: "", op: "weird op", inputs: [], outputs: ["c"] }),
        node({ name: "", op: "noname", inputs: [], outputs: [""] }),
      ],
    });
    const text = printGraph(g);
    expect(text).toContain('%a: int4[], _, %b: bool["nan",3] = split(%x, _, %x) @"split node"');
    expect(text).toContain("() = print(%a) @sink");
    expect(text).toContain('%c = "weird op"() @""');
    expect(text).toContain("_ = noname()\n");
    expect(text).toContain('value %orphan: uint7["inf"]');
    expect(text).toContain('input %x: bfloat16[batch,"seq len",0,"2"]');
    expect(text).toContain("input %u\n");
    expectSameGraph(parseGraph(text), g);
  });

  it("round-trips every AttrValue kind, including hostile strings and empty lists", () => {
    const attrs = {
      i: 3, f: -2.5, s: 'quote " backslash \\ newline \n tab \t unicode ü🙂 \u2028 lone \ud800', t: true, n: false,
      ints: [1, -2, 3], floats: [0.5, NaN, -0, Infinity], strs: ["a", "", "b,c"], empty: [] as number[],
      "weird key": 1, "nan": 2,
    };
    const withProto: Record<string, unknown> = { ...attrs };
    Object.defineProperty(withProto, "__proto__", { value: "own", enumerable: true, configurable: true, writable: true });
    const g = graph({ nodes: [node({ op: "f", inputs: [], outputs: [], name: "n", attrs: withProto as Node["attrs"] })] });
    const back = parseGraph(printGraph(g));
    expectSameGraph(back, g);
    expect(Object.getPrototypeOf(back.nodes[0]!.attrs)).toBe(Object.prototype);
  });

  it("round-trips arbitrary JSON meta: moduleStack, source, debugHandle and nested annotation objects", () => {
    const meta = {
      moduleStack: [{ path: "", type: "Net" }, { path: "blocks.0", type: "Block" }, { path: "blocks.0.attn:q", type: "Linear<fp8>" }],
      source: "model.ts:1:2",
      debugHandle: 42,
      quantization_annotation: { input_qspec_map: { x: { dtype: "int8", quant_min: -128, ch_axis: null } }, _annotated: true, list: [[], {}, [1, "a", null]] },
      "nn_module_stack.extra": [1.5, -0, "x"],
    };
    const g = graph({ nodes: [node({ op: "f", inputs: [], outputs: [], name: "n", meta })] });
    const text = printGraph(g);
    expect(text).toContain('# moduleStack=<"":Net, blocks.0:Block, "blocks.0.attn:q":"Linear<fp8>">, source="model.ts:1:2", debugHandle=42, ');
    expectSameGraph(parseGraph(text), g);
    // A moduleStack that is not a list of {path, type} frames is plain JSON and survives as such.
    const odd = graph({ nodes: [node({ op: "f", inputs: [], outputs: [], name: "n", meta: { moduleStack: [{ path: "a", type: "A", extra: 1 }] as unknown as NodeMeta["moduleStack"], source: 7 as unknown as string } })] });
    expect(printGraph(odd)).toContain('# moduleStack=[{"extra": 1, "path": "a", "type": "A"}], source=7');
    expectSameGraph(parseGraph(printGraph(odd)), odd);
  });

  it("refuses meta it cannot print (not JSON-compatible) with a typed error", () => {
    const g = graph({ nodes: [node({ op: "f", inputs: [], outputs: [], name: "n", meta: { t: new Float32Array(2) } })] });
    const e = caught(() => printGraph(g));
    expect(e.code).toBe("BAD_DATA");
    expect(e.node).toBe("n");
  });
});

describe("constants", () => {
  it("full mode encodes every dtype's storage exactly, int64 and packed padding included", () => {
    for (const dtype of DTYPES) {
      for (const n of [0, 1, 5, 40]) {
        const data = allocStorage(dtype, n);
        const bytes = new Uint8Array(data.buffer);
        for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 37 + 11 + n) & 0xff;
        const t: Tensor = { dtype, shape: [n], data };
        const g = graph({ constants: { c: { kind: "buffer", tensor: t } }, values: { c: { dtype, shape: [n] } } });
        const text = printGraph(g, { constants: "full" });
        expect(text).not.toContain("summary(");
        expectSameGraph(parseGraph(text), g);
      }
    }
  });

  it("small constants print their values inline; exactness problems fall back to hex", () => {
    const nanPayload = new Float32Array(1);
    new Uint32Array(nanPayload.buffer)[0] = 0x7fc00001;
    const padded = new Uint8Array([0xf3]); // one int4 element, junk in the padding nibble
    const g = graph({
      constants: {
        f: { kind: "constant", tensor: fromArray("float32", [3], [0.5, -0, NaN]) },
        i: { kind: "constant", tensor: fromArray("int64", [2], [-(2n ** 63n), 2n ** 63n - 1n]) },
        h: { kind: "constant", tensor: fromArray("float16", [2], [1, 65504]) },
        bf: { kind: "constant", tensor: fromArray("bfloat16", [3], [0.1, -3, 1e30]) },
        e4: { kind: "constant", tensor: fromArray("float8_e4m3fn", [3], [0.3, 448, -0.001]) },
        b: { kind: "constant", tensor: fromArray("bool", [2], [1, 0]) },
        q: { kind: "constant", tensor: fromArray("int4", [3], [-8, 7, 0]) },
        p: { kind: "constant", tensor: { dtype: "float32", shape: [1], data: nanPayload } },
        pad: { kind: "constant", tensor: { dtype: "int4", shape: [1], data: padded } },
      },
    });
    const text = printGraph(g);
    expect(text).toContain("constant %f: float32[3] = [0.5, -0, nan]\n");
    expect(text).toContain("constant %i: int64[2] = [-9223372036854775808, 9223372036854775807]\n");
    expect(text).toContain("constant %h: float16[2] = [1, 65504]\n");
    expect(text).toContain("constant %b: bool[2] = [true, false]\n");
    expect(text).toContain("constant %bf: bfloat16[3] = [0.100097656, -3, 1.00025555e+30]\n"); // the stored values
    expect(text).toContain("constant %e4: float8_e4m3fn[3] = [0.3125, 448, -0.001953125]\n");
    expect(text).toContain("constant %q: int4[3] = [-8, 7, 0]\n");
    expect(text).toContain('constant %p: float32[1] = hex"0100c07f"\n');
    expect(text).toContain('constant %pad: int4[1] = hex"f3"\n');
    const back = parseGraph(text);
    for (const k of Object.keys(g.constants)) expect(graphDiff(back.constants[k], g.constants[k]), k).toBeUndefined();
  });

  it("summarizes large constants with dtype, shape, stats and fnv1a64 hash; summarizeOver moves the threshold", () => {
    const t = fromArray("int8", [17], Array.from({ length: 17 }, (_, i) => i - 8));
    const g = graph({ constants: { w: { kind: "parameter", tensor: t } }, values: { w: { dtype: "int8", shape: [17] } } });
    expect(printGraph(g)).toBe(`parameter %w: int8[17] = summary(min=-8, max=8, mean=0, fnv1a64=${tensorHash(t)})\nreturn\n`);
    expect(printGraph(g, { summarizeOver: 17 })).toContain("= [-8, -7, -6,");
    expect(printGraph(g, { summarizeOver: 4, constants: "full" })).toContain('= hex"f8f9fafbfcfdfeff000102030405060708"\n');
  });

  it("summary mode parses back with supplied constants and checks dtype, shape and hash", () => {
    const t = fromArray("float32", [4, 5], Array.from({ length: 20 }, (_, i) => i / 7));
    const g = graph({ constants: { w: { kind: "parameter", tensor: t } }, values: { w: { dtype: "float32", shape: [4, 5] } } });
    const text = printGraph(g);
    expectSameGraph(parseGraph(text, { constants: g.constants }), g);

    const missing = caught(() => parseGraph(text));
    expect(missing.code).toBe("PARSE_ERROR");
    expect(missing.line).toBe(1);
    expect(missing.message).toContain("no data was supplied");
    expect(missing.hint).toContain("constants");

    const other = (tensor: Tensor): Record<string, Constant> => ({ w: { kind: "parameter", tensor } });
    expect(caught(() => parseGraph(text, { constants: other(fromArray("float64", [4, 5], new Array(20).fill(0))) })).code).toBe("DTYPE_MISMATCH");
    expect(caught(() => parseGraph(text, { constants: other(fromArray("float32", [5, 4], new Array(20).fill(0))) })).code).toBe("SHAPE_MISMATCH");
    const changed = fromArray("float32", [4, 5], Array.from({ length: 20 }, (_, i) => i / 7));
    (changed.data as Float32Array)[8] = 100;
    const e = caught(() => parseGraph(text, { constants: other(changed) }));
    expect(e.code).toBe("BAD_DATA");
    expect(e.line).toBe(1);
    expect(e.node).toBe("w");
  });

  it("fnv1a64 matches the reference test vectors", () => {
    const enc = new TextEncoder();
    expect(fnv1a64(enc.encode(""))).toBe("cbf29ce484222325");
    expect(fnv1a64(enc.encode("a"))).toBe("af63dc4c8601ec8c");
    expect(fnv1a64(enc.encode("foobar"))).toBe("85944171f73967e8");
  });
});

describe("round trip (fast-check)", () => {
  it("parseGraph(printGraph(g, { constants: 'full' })) equals g", () => {
    fc.assert(
      fc.property(arbGraph, (g) => {
        const text = printGraph(g, { constants: "full" });
        const back = parseGraph(text);
        const d = graphDiff(back, g);
        if (d !== undefined) throw new Error(`${d}\n--- text ---\n${text}`);
        expect(printGraph(back, { constants: "full" })).toBe(text);
      }),
      { numRuns: 1000 },
    );
  });

  it("parseGraph(printGraph(g), { constants: g.constants }) equals g", () => {
    fc.assert(
      fc.property(arbGraph, fc.integer({ min: 0, max: 20 }), (g, over) => {
        const text = printGraph(g, { summarizeOver: over });
        const back = parseGraph(text, { constants: g.constants });
        const d = graphDiff(back, g);
        if (d !== undefined) throw new Error(`${d}\n--- text ---\n${text}`);
      }),
      { numRuns: 1000 },
    );
  });

  it("mangled dumps either parse or fail with a QforgeError, never a TypeError", () => {
    fc.assert(
      fc.property(arbGraph, fc.nat(), fc.string({ unit: "binary", maxLength: 3 }), fc.nat(5), (g, pos, ins, del) => {
        const text = printGraph(g, { constants: "full" });
        const at = pos % (text.length + 1);
        const mangled = text.slice(0, at) + ins + text.slice(at + del);
        try {
          parseGraph(mangled);
        } catch (e) {
          if (!isQforgeError(e)) throw e;
          expect(e.code).toBe("PARSE_ERROR");
          expect(e.line).toBeGreaterThanOrEqual(1);
        }
      }),
      { numRuns: 1000 },
    );
  });
});

describe("parse errors point at the line", () => {
  const good = "input %x: float32[2]\n%y: float32[2] = relu(%x)\nreturn %y\n";

  it("a well-formed dump parses", () => {
    expect(parseGraph(good).nodes[0]!.op).toBe("relu");
  });

  const cases: [string, string, number, RegExp][] = [
    ["unknown dtype", "input %x: floaty[2]\nreturn\n", 1, /unknown dtype 'floaty'/],
    ["missing return", "input %x: float32[2]\n", 1, /missing the final 'return'/],
    ["unterminated string", "input %x: float32[2]\ninput %\"abc: float32[2]\nreturn\n", 2, /unterminated string/],
    ["bad escape", 'input %"a\\qb": float32[2]\nreturn\n', 1, /invalid string literal/],
    ["object attribute", good.replace("relu(%x)", 'relu(%x) {a={"k": 1}}'), 2, /attribute 'a' must be/],
    ["mixed list attribute", good.replace("relu(%x)", 'relu(%x) {a=[1, "b"]}'), 2, /attribute 'a' must be/],
    ["bad number", good.replace("relu(%x)", "relu(%x) {a=1.2.3}"), 2, /expected a number/],
    ["duplicate attribute", good.replace("relu(%x)", "relu(%x) {a=1, a=2}"), 2, /duplicate attribute 'a'/],
    ["trailing junk", good.replace("relu(%x)", "relu(%x) extra"), 2, /unexpected 'extra'/],
    ["missing ')'", good.replace("relu(%x)", "relu(%x"), 2, /expected '\)' after the node's inputs/],
    ["garbage line", "input %x: float32[2]\nhello world\nreturn\n", 2, /expected a line starting with/],
    ["line after return", good + "input %z: float32[1]\n", 4, /nothing may follow the 'return' line/],
    ["element count", "constant %c: float32[3] = [1, 2]\nreturn\n", 1, /holds 3 elements, the list has 2/],
    ["int out of range", "constant %c: int8[1] = [300]\nreturn\n", 1, /300 is not a int8 value/],
    ["hex length", 'constant %c: int16[2] = hex"0102"\nreturn\n', 1, /needs 4 bytes/],
    ["symbolic constant shape", "constant %c: float32[N] = []\nreturn\n", 1, /shape must be concrete/],
    ["duplicate constant", "constant %c: float32[] = [1]\nconstant %c: float32[] = [2]\nreturn\n", 2, /defined twice/],
    ["conflicting types", "input %x: float32[2]\n%x: int8[2] = f()\nreturn\n", 2, /declared as int8\[2\] but earlier as float32\[2\]/],
    ["nameless output-less node", "input %x: float32[2]\n() = sink(%x)\nreturn\n", 2, /needs a name/],
    ["summary without hash", "constant %c: float32[20] = summary(min=0, max=1)\nreturn\n", 1, /needs its fnv1a64 hash/],
    ["unknown summary field", "constant %c: float32[20] = summary(sum=3, fnv1a64=0123456789abcdef)\nreturn\n", 1, /unknown summary field 'sum'/],
    ["value without %", "input x: float32[2]\nreturn\n", 1, /expected a value name like %x/],
    ["missing '='", "input %x: float32[2]\n%y: float32[2] relu(%x)\nreturn %y\n", 2, /expected '=' after the node's outputs/],
  ];

  for (const [what, text, line, msg] of cases) {
    it(`${what} -> PARSE_ERROR at line ${line}`, () => {
      const e = caught(() => parseGraph(text));
      expect(e.code).toBe("PARSE_ERROR");
      expect(e.line).toBe(line);
      expect(e.message).toMatch(msg);
      if (what !== "missing return") expect(e.message).toMatch(/column \d+/);
    });
  }

  it("the column points at the offending token", () => {
    const e = caught(() => parseGraph("input %x: float32[2]\n%y: float32[2] = relu(%x) {a=1.2.3}\nreturn %y\n"));
    expect(e.message).toContain("line 2, column 30:");
  });

  it("accepts blank lines, // comments, indentation and CRLF line ends", () => {
    const text = "// a comment\r\n\r\n  input %x: float32[2]\r\n  %y: float32[2] = relu(%x)   \r\n// end\r\nreturn %y\r\n\r\n";
    expectSameGraph(parseGraph(text), parseGraph(good));
  });
});
