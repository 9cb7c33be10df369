/**
 * Deliver 6 of the ONNX import issue, one case per failure class: every malformed model is a typed
 * QforgeError (never a TypeError/RangeError, a hang or an allocation sized by a declared shape), and
 * tensors are read without copying where the bytes allow.
 */
import { describe, expect, it } from "vitest";
import { readFileSync } from "node:fs";
import { dtypeInfo, fromArray, isQforgeError } from "@qforge/ir";
import {
  AttributeType, DataType, decodeModelProto, encodeModel, importOnnx, isUnexpectedImportError, makeGraph,
  makeModel, makeTensorValueInfo, type ModelProto, type NodeProto,
} from "@qforge/onnx";
import { node, tinyModel } from "./helpers.js";
import { PPOCR_MODELS } from "./ppocr-helpers.js";

const F = DataType.FLOAT;

/** The error an import fails with; an unexpected (safety-net) error fails the test. */
async function refusal(p: Promise<unknown>): Promise<{ code: string; node: string | undefined; message: string }> {
  try {
    await p;
  } catch (e) {
    if (!isQforgeError(e)) throw new Error(`not a QforgeError: ${String(e)}`, { cause: e });
    if (isUnexpectedImportError(e)) throw new Error(`reached the importer's safety net: ${e.message}`, { cause: e });
    return { code: e.code, node: e.node, message: e.message };
  }
  throw new Error("expected the import to fail");
}

const withNodes = (nodes: NodeProto[], inputs: Parameters<typeof tinyModel>[0]["inputs"], outputs: string[], opset = 17): Uint8Array =>
  tinyModel({ nodes, inputs, outputs, opset });

describe("malformed models are typed errors", () => {
  it("wrong wire types and wrongly typed fields", async () => {
    // ModelProto.graph (field 7, a message) sent as a varint, then as a fixed64.
    const asVarint = new Uint8Array([0x08, 0x08, 0x38, 0x05]);
    expect((await refusal(importOnnx(asVarint))).code).toBe("BAD_MODEL");
    const asFixed = new Uint8Array([0x08, 0x08, 0x39, 1, 2, 3, 4, 5, 6, 7, 8]);
    expect((await refusal(importOnnx(asFixed))).code).toBe("BAD_MODEL");
    // An attribute of another type than the op's (Clip-6's min is a FLOAT, here a STRING).
    const attr = withNodes([{ ...node("Clip", ["x"], ["y"], {}, "clip"), attribute: [{ name: "min", type: AttributeType.STRING, s: new Uint8Array([48]) }] }], [["x", F, [2, 2]]], ["y"], 9);
    const wrong = await refusal(importOnnx(attr));
    expect(wrong).toMatchObject({ code: "BAD_MODEL", node: "clip" });
    expect(wrong.message).toMatch(/'min' must be float, got string/);
    // A STRING attribute with no bytes: protobufjs's default for an absent bytes field is a plain Array.
    const empty = withNodes([{ ...node("Pad", ["x", "p"], ["y"], {}, "pad"), attribute: [{ name: "mode", type: AttributeType.STRING }] }], [["x", F, [2]], ["p", DataType.INT64, [2]]], ["y"], 13);
    expect((await refusal(importOnnx(empty))).node).toBe("pad");
    // Float values stored in the int64 field.
    const m = makeModel(makeGraph({
      nodes: [node("Add", ["x", "w"], ["y"])], inputs: [makeTensorValueInfo("x", F, [2])], outputs: [{ name: "y" }],
      initializers: [{ name: "w", dims: [2], data_type: F, int64_data: [1, 2] }],
    }));
    const typed = await refusal(importOnnx(encodeModel(m)));
    expect(typed).toMatchObject({ code: "BAD_MODEL", node: "w" });
    expect(typed.message).toMatch(/int64_data/);
  });

  it("nesting past the decoder's depth limit is BAD_MODEL; moderately deep nesting reaches the importer", async () => {
    // graph.input[0].type = sequence of sequence of ... of tensor(float), `depth` levels.
    const nested = (depth: number): Uint8Array => {
      const varint = (v: number): number[] => {
        const out: number[] = [];
        while (v >= 0x80) { out.push((v & 0x7f) | 0x80); v = Math.floor(v / 128); }
        out.push(v);
        return out;
      };
      // Headers from the innermost level out: TypeProto.sequence_type (field 4) { Sequence.elem_type (field 1) { TypeProto } }.
      const inner = [0x0a, 0x02, 0x08, 0x01];
      const headers: number[][] = [];
      let len = inner.length;
      for (let i = 0; i < depth; i++) {
        const seq = [0x0a, ...varint(len)];
        len += seq.length;
        const type = [0x22, ...varint(len)];
        len += type.length;
        headers.push([...type, ...seq]);
      }
      const typeBytes = new Uint8Array(len);
      let at = 0;
      for (let i = headers.length - 1; i >= 0; i--) { typeBytes.set(headers[i]!, at); at += headers[i]!.length; }
      typeBytes.set(inner, at);
      const vi = [0x0a, 0x01, 0x78, 0x12, ...varint(typeBytes.length)];
      const graphLen = vi.length + typeBytes.length;
      const graph = [0x5a, ...varint(graphLen)];
      const head = [0x08, 0x08, 0x42, 0x02, 0x10, 0x0d, 0x3a, ...varint(graph.length + graphLen)];
      const out = new Uint8Array(head.length + graph.length + vi.length + typeBytes.length);
      out.set(head, 0);
      out.set(graph, head.length);
      out.set(vi, head.length + graph.length);
      out.set(typeBytes, head.length + graph.length + vi.length);
      return out;
    };
    const shallow = await refusal(importOnnx(nested(10)));
    expect(shallow).toMatchObject({ code: "UNSUPPORTED", node: "x" });
    expect(shallow.message).toMatch(/is a sequence/);
    // protobufjs refuses nesting past its recursion limit; 200000 levels would also overflow the stack.
    for (const depth of [100, 200_000]) {
      const deep = await refusal(importOnnx(nested(depth)));
      expect(deep.code).toBe("BAD_MODEL");
      expect(deep.message).toMatch(/malformed ModelProto .*(max depth|call stack)/);
    }
  });

  it("absurd declared sizes are refused before anything is allocated", async () => {
    const before = process.memoryUsage().rss;
    // An initializer declaring 2^80 bytes over 4 bytes of raw_data.
    const huge = makeModel(makeGraph({
      nodes: [node("Add", ["x", "w"], ["y"])], inputs: [makeTensorValueInfo("x", F, [1])], outputs: [{ name: "y" }],
      initializers: [{ name: "w", dims: [2 ** 40, 2 ** 40], data_type: F, raw_data: new Uint8Array(4) }],
    }));
    expect(await refusal(importOnnx(encodeModel(huge)))).toMatchObject({ code: "BAD_MODEL", node: "w" });
    // Under the cap but more than the bytes present.
    const short = makeModel(makeGraph({
      nodes: [node("Add", ["x", "w"], ["y"])], inputs: [makeTensorValueInfo("x", F, [1])], outputs: [{ name: "y" }],
      initializers: [{ name: "w", dims: [1 << 20], data_type: F, float_data: [1, 2, 3] }],
    }));
    expect((await refusal(importOnnx(encodeModel(short)))).message).toMatch(/needs 1048576 values, float_data has 3/);
    // A graph input declaring 4 TiB.
    const input = withNodes([node("Relu", ["x"], ["y"])], [["x", F, [1 << 20, 1 << 20, 1024]]], ["y"]);
    expect(await refusal(importOnnx(input))).toMatchObject({ code: "BAD_MODEL", node: "x" });
    // Values the graph would compute: ConstantOfShape and Expand to [65536, 65536] from constant shapes.
    const shape = fromArray("int64", [2], [65536, 65536]);
    const cos = tinyModel({ nodes: [node("ConstantOfShape", ["s"], ["y"], {}, "fill")], inputs: [], outputs: ["y"], initializers: { s: shape } });
    expect(await refusal(importOnnx(cos))).toMatchObject({ code: "BAD_MODEL", node: "fill" });
    const expand = tinyModel({ nodes: [node("Expand", ["x", "s"], ["y"], {}, "ex")], inputs: [["x", F, [1, 1]]], outputs: ["y"], initializers: { s: shape } });
    const e = await refusal(importOnnx(expand));
    expect(e).toMatchObject({ code: "BAD_MODEL", node: "ex" });
    expect(e.message).toMatch(/float32\[65536, 65536\]: 17179869184 bytes, over the 2147483648-byte limit/);
    // The cap is an option: a model may declare up to it.
    expect((await importOnnx(expand, { maxTensorBytes: 2 ** 35 })).graph.values.y!.shape).toEqual([65536, 65536]);
    expect(process.memoryUsage().rss - before).toBeLessThan(256 * 2 ** 20);
  });

  it("cycles, missing initializers and undefined values name the node", async () => {
    const cycle = withNodes([node("Add", ["x", "b"], ["a"], {}, "add"), node("Relu", ["a"], ["b"], {}, "relu")], [["x", F, [1]]], ["b"]);
    expect((await refusal(importOnnx(cycle))).message).toMatch(/cycle/);
    const missing = withNodes([node("MatMul", ["x", "w"], ["y"], {}, "mm")], [["x", F, [1, 2]]], ["y"]);
    expect(await refusal(importOnnx(missing))).toMatchObject({ code: "BAD_MODEL", node: "mm" });
  });

  it("unsupported ops, domains, control flow and value kinds are UNSUPPORTED", async () => {
    expect(await refusal(importOnnx(withNodes([node("NoSuchOp", ["x"], ["y"], {}, "n")], [["x", F, [1]]], ["y"])))).toMatchObject({ code: "UNSUPPORTED", node: "n" });
    expect(await refusal(importOnnx(withNodes([node("Loop", ["x"], ["y"], {}, "l")], [["x", F, [1]]], ["y"])))).toMatchObject({ code: "UNSUPPORTED", node: "l" });
    const ms = withNodes([{ ...node("FusedConv", ["x"], ["y"], {}, "fc"), domain: "com.microsoft" }], [["x", F, [1]]], ["y"]);
    expect(await refusal(importOnnx(ms))).toMatchObject({ code: "UNSUPPORTED", node: "fc" });
    expect((await refusal(importOnnx(withNodes([node("Relu", ["x"], ["y"])], [["x", DataType.STRING, [1]]], ["y"])))).code).toBe("UNSUPPORTED");
  });

  it("large graphs stored out of order import in near-linear time (no quadratic hang)", async () => {
    const n = 12000;
    // Deep: a chain of unnamed Relu nodes stored in reverse (every fresh name is 'relu_<k>').
    const chain = Array.from({ length: n }, (_, i) => node("Relu", [i === 0 ? "x" : `v${i - 1}`], [`v${i}`])).reverse();
    let t0 = performance.now();
    const deep = await importOnnx(withNodes(chain, [["x", F, [1]]], [`v${n - 1}`]));
    const deepMs = performance.now() - t0;
    expect(deep.graph.nodes).toHaveLength(n);
    expect(deep.graph.nodes[n - 1]!.name).toBe(`relu_${n - 1}`);
    // Wide: a Concat of n values stored before their n producers (all ready at once when sorting).
    const wide = [node("Concat", Array.from({ length: n }, (_, i) => `w${i}`), ["y"], { axis: 0 }), ...Array.from({ length: n }, (_, i) => node("Neg", ["x"], [`w${i}`]))];
    t0 = performance.now();
    const broad = await importOnnx(withNodes(wide, [["x", F, [1]]], ["y"]));
    const wideMs = performance.now() - t0;
    expect(broad.graph.values.y!.shape).toEqual([n]);
    expect(broad.graph.nodes.at(-1)!.op).toBe("concat");
    console.log(`${n} nodes out of order: deep chain ${deepMs.toFixed(0)} ms, wide fan-in ${wideMs.toFixed(0)} ms`);
    expect(deepMs).toBeLessThan(10_000);
    expect(wideMs).toBeLessThan(10_000);
  }, 60_000);
});

describe("tensors are read without copying where the bytes allow", () => {
  it("the PP-OCR models: aligned raw_data initializers are views of the model bytes, the others aligned copies", async () => {
    for (const path of [PPOCR_MODELS.cls, PPOCR_MODELS.rec]) {
      const bytes = new Uint8Array(readFileSync(path));
      const ep = await importOnnx(bytes);
      const m: ModelProto = decodeModelProto(bytes);
      let views = 0;
      let viewBytes = 0;
      let copies = 0;
      let copyBytes = 0;
      // paddle2onnx stores the weights as Constant nodes: their `value` tensors count like initializers.
      const protos = [
        ...m.graph!.initializer!.map((t) => ({ name: t.name!, t })),
        ...m.graph!.node!.filter((nd) => nd.op_type === "Constant").map((nd) => ({ name: nd.output![0]!, t: nd.attribute!.find((a) => a.name === "value")?.t })),
      ];
      for (const { name, t: init } of protos) {
        if (init === undefined || init === null) continue;
        const c = ep.graph.constants[name];
        if (c === undefined) continue; // used only by folded arithmetic
        const raw = init.raw_data!;
        const per = dtypeInfo(c.tensor.dtype).bits >= 8 ? c.tensor.data.BYTES_PER_ELEMENT : 1;
        const shared = c.tensor.data.buffer === bytes.buffer;
        // A view exactly when the raw bytes sit at an offset aligned to the element size (always on little-endian hosts).
        expect(shared, name).toBe(raw.length > 0 && raw.byteOffset % per === 0 && c.tensor.dtype !== "bool");
        expect(c.tensor.data.byteOffset % c.tensor.data.BYTES_PER_ELEMENT).toBe(0);
        if (shared) {
          expect(c.tensor.data.byteOffset).toBe(raw.byteOffset);
          views++;
          viewBytes += c.tensor.data.byteLength;
        } else {
          copies++;
          copyBytes += c.tensor.data.byteLength;
        }
      }
      console.log(`${path.split("/").pop()}: ${views} initializers viewed in place (${viewBytes} bytes), ${copies} copied (${copyBytes} bytes, misaligned)`);
      expect(views).toBeGreaterThan(0);
    }
  });

  it("raw_data at an aligned offset is a view, at a misaligned one an aligned copy with the same values", async () => {
    // Lengthening the initializer's name shifts its raw_data by one byte per character.
    const t = fromArray("float32", [64], Array.from({ length: 64 }, (_, i) => i - 10.5));
    const seen = new Set<boolean>();
    for (let pad = 0; pad < 4; pad++) {
      const name = `w${"_".repeat(pad)}`;
      const bytes = encodeModel(makeModel(makeGraph({
        nodes: [node("Add", ["x", name], ["y"])], inputs: [makeTensorValueInfo("x", F, [64])], outputs: [{ name: "y" }],
        initializers: { [name]: t },
      })));
      const w = (await importOnnx(bytes)).graph.constants[name]!.tensor;
      const raw = decodeModelProto(bytes).graph!.initializer![0]!.raw_data!;
      const aligned = raw.byteOffset % 4 === 0;
      seen.add(aligned);
      expect(w.data.buffer === bytes.buffer, `pad ${pad}`).toBe(aligned);
      expect(w.data.byteOffset % 4).toBe(0);
      expect(Array.from(w.data as Float32Array)).toEqual(Array.from(t.data as Float32Array));
    }
    expect([...seen].sort()).toEqual([false, true]);
  });
});
