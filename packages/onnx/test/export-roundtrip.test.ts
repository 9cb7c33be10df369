/**
 * exportOnnx -> importOnnx round trips (fast-check): tensors of every dtype the importer reads come
 * back bit for bit, random elementwise graphs come back with the same ops and attributes (their
 * reference runs are identical) and run in onnxruntime; the opset-21 quantized dtypes (int16, int4,
 * uint4, blocked weights) and narrowed quant ranges export to models onnxruntime runs.
 */
import { describe, expect, it } from "vitest";
import fc from "fast-check";
import * as ort from "onnxruntime-node";
import {
  GraphBuilder, allocStorage, dtypeInfo, fromArray, getElement, isQforgeError, numel, programFromGraph, scalar, tensor,
  toFloat64, type AttrValue, type DType, type ExportedProgram, type Tensor,
} from "@qforge/ir";
import { runProgram } from "@qforge/runtime";
import { decodeModelProto, exportOnnx, importOnnx, int64ToNumber } from "@qforge/onnx";

async function runOrt(bytes: Uint8Array, inputs: readonly Tensor[]): Promise<Tensor[]> {
  const session = await ort.InferenceSession.create(bytes);
  const feeds: Record<string, ort.Tensor> = {};
  session.inputNames.forEach((name, i) => {
    const t = inputs[i]!;
    feeds[name] = new ort.Tensor("float32", Float32Array.from(toFloat64(t)), [...t.shape]);
  });
  const out = await session.run(feeds);
  return session.outputNames.map((name) => {
    const t = out[name]!;
    return tensor("float32", [...t.dims], Float32Array.from(t.data as Float32Array));
  });
}

const bytesOf = (t: Tensor): Uint8Array => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
const opsOf = (bytes: Uint8Array): string[] => decodeModelProto(bytes).graph!.node!.map((n) => n.op_type!);
const opsetOf = (bytes: Uint8Array): number => int64ToNumber(decodeModelProto(bytes).opset_import![0]!.version, "opset");

/** Every dtype the importer reads (onnx/proto/enums.ts). */
const DTYPES: readonly DType[] = [
  "float32", "float64", "float16", "bfloat16", "float8_e4m3fn", "float8_e5m2", "int8", "int16", "int32", "int64",
  "uint8", "uint16", "uint32", "bool", "int4", "uint4", "int2", "uint2",
];

/** The dtypes onnxruntime-node hands back as typed arrays of the same storage. */
const ORT_DTYPES: ReadonlySet<DType> = new Set<DType>(["float32", "float64", "float16", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "bool"]);

/** A tensor of `dtype` holding arbitrary bit patterns (NaN payloads, subnormals, padding nibbles); bools are 0/1. */
const arbTensor = fc.record({
  dtype: fc.constantFrom(...DTYPES),
  shape: fc.array(fc.integer({ min: 0, max: 4 }), { minLength: 0, maxLength: 3 }),
  seed: fc.integer({ min: 1, max: 2 ** 30 }),
}).map(({ dtype, shape, seed }) => {
  const data = allocStorage(dtype, numel(shape));
  const raw = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  let s = seed;
  for (let i = 0; i < raw.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    raw[i] = dtype === "bool" ? (s >>> 16) & 1 : s >>> 24;
  }
  return tensor(dtype, shape, data);
});

describe("round trips", () => {
  it("initializers of every dtype come back bit for bit (incl. float16/bfloat16/fp8 bits and int4/int2 packing)", async () => {
    await fc.assert(fc.asyncProperty(fc.array(arbTensor, { minLength: 1, maxLength: 4 }), async (ts) => {
      const b = new GraphBuilder();
      const names = ts.map((t, i) => b.constant(`c${i}`, t, "parameter"));
      b.output(...names);
      const ep = programFromGraph(b.build());
      const bytes = exportOnnx(ep);
      const back = await importOnnx(bytes);
      expect(back.outputs.map((o) => o.name)).toEqual(names);
      back.outputs.forEach((o, i) => {
        const got = back.graph.constants[o.value]!.tensor;
        expect(got.dtype).toBe(ts[i]!.dtype);
        expect(got.shape).toEqual(ts[i]!.shape);
        expect(bytesOf(got)).toEqual(bytesOf(ts[i]!));
      });
      // onnxruntime reads the same bits (for the dtypes its JS tensors carry).
      if (ts.every((t) => ORT_DTYPES.has(t.dtype))) {
        const session = await ort.InferenceSession.create(bytes);
        const out = await session.run({});
        session.outputNames.forEach((name, i) => {
          const d = out[name]!.data as ArrayLike<number> & { buffer: ArrayBufferLike; byteOffset: number; byteLength: number };
          expect(new Uint8Array(d.buffer, d.byteOffset, d.byteLength)).toEqual(bytesOf(ts[i]!));
        });
      }
    }), { numRuns: 60 });
  });

  /**
   * Elementwise ops with the attributes that matter (float attributes that may be integral, e.g.
   * alpha = 1). ONNX FLOAT attributes are float32, so the values are float32 numbers: others come
   * back rounded to float32 (checked below).
   */
  const f = Math.fround;
  const UNARY: readonly { op: string; attrs: fc.Arbitrary<Record<string, AttrValue>> }[] = [
    { op: "relu", attrs: fc.constant({}) }, { op: "sigmoid", attrs: fc.constant({}) }, { op: "tanh", attrs: fc.constant({}) },
    { op: "abs", attrs: fc.constant({}) }, { op: "neg", attrs: fc.constant({}) }, { op: "erf", attrs: fc.constant({}) },
    { op: "softplus", attrs: fc.constant({}) }, { op: "hardswish", attrs: fc.constant({}) },
    { op: "leaky_relu", attrs: fc.constantFrom(f(0.01), f(0.2), 1, 2).map((alpha) => ({ alpha })) },
    { op: "hard_sigmoid", attrs: fc.record({ alpha: fc.constantFrom(f(1 / 6), f(0.2), 1), beta: fc.constantFrom(0.5, 0, 1) }) },
    { op: "gelu", attrs: fc.constantFrom("none", "tanh").map((approximate) => ({ approximate })) },
  ];
  const BINARY = ["add", "sub", "mul", "max", "min"] as const;

  type Step = { kind: "unary"; op: string; attrs: Record<string, AttrValue> } | { kind: "binary"; op: string; other: number } | { kind: "clip"; lo: number; hi: number };
  const arbStep: fc.Arbitrary<Step> = fc.oneof(
    fc.integer({ min: 0, max: UNARY.length - 1 }).chain((i) => UNARY[i]!.attrs.map((attrs): Step => ({ kind: "unary", op: UNARY[i]!.op, attrs }))),
    fc.record({ op: fc.constantFrom(...BINARY), other: fc.nat() }).map((r): Step => ({ kind: "binary", ...r })),
    fc.record({ lo: fc.constantFrom(-1, -0.5, 0), hi: fc.constantFrom(0.5, 1, 6) }).map((r): Step => ({ kind: "clip", ...r })),
  );

  function build(steps: readonly Step[], shape: number[]): ExportedProgram {
    const b = new GraphBuilder();
    const values = [b.input("x", "float32", shape), b.input("y", "float32", [shape[shape.length - 1]!])];
    steps.forEach((s, i) => {
      const last = values[values.length - 1]!;
      if (s.kind === "unary") values.push(b.node1(s.op, [last], s.attrs, { name: `n${i}` }));
      else if (s.kind === "binary") values.push(b.node1(s.op, [last, values[s.other % values.length]!], {}, { name: `n${i}` }));
      else {
        const lo = b.constant(`lo${i}`, scalar("float32", s.lo));
        const hi = b.constant(`hi${i}`, scalar("float32", s.hi));
        values.push(b.node1("clip", [last, lo, hi], {}, { name: `n${i}` }));
      }
    });
    b.output(values[values.length - 1]!);
    return programFromGraph(b.build());
  }

  it("random elementwise graphs: same ops and attributes after import, identical reference runs, onnxruntime agrees", async () => {
    await fc.assert(fc.asyncProperty(fc.array(arbStep, { minLength: 1, maxLength: 6 }), fc.integer({ min: 1, max: 1000 }), async (steps, seed) => {
      const ep = build(steps, [2, 3]);
      const bytes = exportOnnx(ep);
      const back = await importOnnx(bytes);
      expect(back.graph.nodes.map((n) => [n.op, n.attrs])).toEqual(ep.graph.nodes.map((n) => [n.op, n.attrs]));
      const x = fromArray("float32", [2, 3], Array.from({ length: 6 }, (_, i) => Math.sin(seed + i * 1.7) * 3));
      const y = fromArray("float32", [3], [Math.cos(seed), -0.5, 1.25]);
      const [want] = runProgram(ep, [x, y]);
      const [again] = runProgram(back, [x, y]);
      expect(bytesOf(again!)).toEqual(bytesOf(want!));
      const [got] = await runOrt(bytes, [x, y]);
      const a = toFloat64(want!);
      const o = toFloat64(got!);
      for (let i = 0; i < a.length; i++) expect(Math.abs(a[i]! - o[i]!)).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(a[i]!)));
    }), { numRuns: 40 });
  });

  it("float attributes are written as ONNX's float32 (0.01 comes back as fround(0.01), 1 stays a float)", async () => {
    const ep = build([{ kind: "unary", op: "leaky_relu", attrs: { alpha: 0.01 } }, { kind: "unary", op: "hard_sigmoid", attrs: { alpha: 1, beta: 0 } }], [2, 3]);
    const bytes = exportOnnx(ep);
    const attrs = decodeModelProto(bytes).graph!.node!.flatMap((n) => n.attribute!);
    expect(attrs.map((a) => [a.name, a.type])).toEqual([["alpha", 1], ["alpha", 1], ["beta", 1]]);
    const back = await importOnnx(bytes);
    expect(back.graph.nodes.map((n) => n.attrs)).toEqual([{ alpha: Math.fround(0.01) }, { alpha: 1, beta: 0 }]);
  });
});

// ---- quantized dtypes of opset 21, narrowed ranges ---------------------------------------------------

function qdq(dtype: DType, qmin: number, qmax: number, scale: number, zp: number, shape = [2, 8]): ExportedProgram {
  const b = new GraphBuilder();
  const x = b.input("x", "float32", shape);
  const s = b.constant("s", scalar("float32", scale));
  const z = b.constant("z", scalar("int32", zp));
  const attrs = { quant_min: qmin, quant_max: qmax, dtype };
  const q = b.node1("quantize_per_tensor", [x, s, z], attrs, { name: "q" });
  const d = b.node1("dequantize_per_tensor", [q, s, z], attrs, { name: "dq" });
  b.output(b.node1("relu", [d], {}, { name: "relu" }));
  return programFromGraph(b.build());
}

const sample = fromArray("float32", [2, 8], Array.from({ length: 16 }, (_, i) => (i - 7.3) * 0.37));

async function agreeWithinStep(ep: ExportedProgram, step: number): Promise<Uint8Array> {
  const bytes = exportOnnx(ep);
  const [want] = runProgram(ep, [sample]);
  const [got] = await runOrt(bytes, [sample]);
  const a = toFloat64(want!);
  const o = toFloat64(got!);
  for (let i = 0; i < a.length; i++) expect(Math.abs(a[i]! - o[i]!)).toBeLessThanOrEqual(step * (1 + 1e-6));
  return bytes;
}

describe("quantized dtypes and ranges", () => {
  it("int8/uint8 over the full range is plain QuantizeLinear at opset 13", async () => {
    const bytes = await agreeWithinStep(qdq("uint8", 0, 255, 0.02, 128), 0.02);
    expect(opsetOf(bytes)).toBe(13);
    expect(opsOf(bytes)).toEqual(["QuantizeLinear", "DequantizeLinear", "Relu"]);
  });

  it("a narrowed range (int8 -127..127, uint8 0..127) adds an integer Clip, exactly the PT2E clamp", async () => {
    for (const [dtype, qmin, qmax, zp] of [["int8", -127, 127, 0], ["uint8", 0, 127, 60]] as const) {
      const ep = qdq(dtype, qmin, qmax, 0.01, zp);
      const bytes = await agreeWithinStep(ep, 0.01);
      expect(opsOf(bytes)).toEqual(["QuantizeLinear", "Clip", "DequantizeLinear", "Relu"]);
      // The clamp binds on this input: the narrowed range is really in effect.
      const [ref] = runProgram(ep, [sample]);
      expect(Math.max(...toFloat64(ref!))).toBeCloseTo((qmax - zp) * 0.01, 5);
    }
  });

  it("int16 and uint4 activations need opset 21 and run in onnxruntime", async () => {
    for (const [dtype, scale, zp] of [["int16", 1e-3, 7], ["uint4", 0.25, 8]] as const) {
      const info = dtypeInfo(dtype);
      const bytes = await agreeWithinStep(qdq(dtype, info.min, info.max, scale, zp), scale);
      expect(opsetOf(bytes)).toBe(21);
    }
  });

  it("a narrowed 4-bit range is UNSUPPORTED (Clip has no int4); quantizing to int32 is UNSUPPORTED", () => {
    for (const ep of [qdq("int4", -7, 7, 0.1, 0), qdq("int32", -1000, 1000, 0.1, 0)]) {
      try {
        exportOnnx(ep);
        expect.unreachable();
      } catch (e) {
        expect(isQforgeError(e, "UNSUPPORTED")).toBe(true);
        expect((e as { node?: string }).node).toBe("q");
      }
    }
  });

  it("per-group int4 weights (dequantize_linear with block_size) export at opset 21 and run in onnxruntime", async () => {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [2, 8]);
    const wq = fromArray("int4", [8, 4], Array.from({ length: 32 }, (_, i) => ((i * 5) % 16) - 8));
    const scales = fromArray("float32", [2, 4], [0.1, 0.2, 0.05, 0.3, 0.15, 0.25, 0.08, 0.12]);
    const zps = fromArray("int4", [2, 4], [0, 1, -1, 2, 0, -2, 3, 0]);
    const w = b.node1("dequantize_linear", [b.constant("w_q", wq, "parameter"), b.constant("w_scale", scales), b.constant("w_zp", zps)], { axis: 0, block_size: 4 }, { name: "dq_w" });
    b.output(b.node1("matmul", [x, w], {}, { name: "mm" }));
    const ep = programFromGraph(b.build());
    const bytes = exportOnnx(ep);
    expect(opsetOf(bytes)).toBe(21);
    const init = decodeModelProto(bytes).graph!.initializer!.find((t) => t.name === "w_q")!;
    expect(init.raw_data!.byteLength).toBe(16);
    const [want] = runProgram(ep, [sample]);
    const [got] = await runOrt(bytes, [sample]);
    const a = toFloat64(want!);
    const o = toFloat64(got!);
    for (let i = 0; i < a.length; i++) expect(Math.abs(a[i]! - o[i]!)).toBeLessThanOrEqual(1e-5);
    const back = await importOnnx(bytes);
    expect(getElement(back.graph.constants["w_q"]!.tensor, 5)).toBe(getElement(wq, 5));
  });
});
