import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { QforgeError, dtypeInfo, fromArray, isQforgeError, numel, verifyGraph, type ExportedProgram, type Tensor } from "@qforge/ir";
import { DataType, decodeModelProto, importOnnx, isUnexpectedImportError, type ImportOptions } from "@qforge/onnx";
import { runOp, runProgram } from "@qforge/runtime";
import { errorCode, node, tinyModel } from "./helpers.js";
import { PPOCR_MODELS } from "./ppocr-helpers.js";
import { encodeVarint, replaceVarint, varintSites, type VarintSite } from "./protobuf-wire.js";

const DIR = fileURLToPath(new URL("../../../../shared/onnx-node-tests", import.meta.url));
const shared = (t: string): Uint8Array => new Uint8Array(readFileSync(join(DIR, t, "model.onnx")));

/**
 * Models the mutations start from: a real exported model (PP-OCR's direction classifier, 0.6 MB:
 * Conv/BatchNorm/HardSigmoid/Reshape with shape arithmetic and 250 Constant nodes) and small
 * node-test models covering attributes, Constant tensors, quantized ops and initializers.
 */
const SEEDS: Record<string, Uint8Array> = {
  cls: new Uint8Array(readFileSync(PPOCR_MODELS.cls)),
  conv: shared("test_conv_with_strides_and_asymmetric_padding"),
  softmax: shared("test_softmax_axis_1_expanded"),
  resize: shared("test_resize_tf_crop_and_resize"),
  qlinearconv: shared("test_qlinearconv"),
  layernorm: shared("test_layer_normalization_4d_axis0_expanded"),
  initializers: tinyModel({
    nodes: [
      node("Gemm", ["x", "w", "b"], ["g"], { transB: 1 }),
      node("Reshape", ["g", "shape"], ["r"]),
      node("Softmax", ["r"], ["y"], { axis: 1 }),
    ],
    inputs: [["x", DataType.FLOAT, ["N", 3]]],
    outputs: ["y"],
    initializers: {
      w: fromArray("float32", [4, 3], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]),
      b: fromArray("float32", [4], [0, 1, 2, 3]),
      shape: fromArray("int64", [3], [-1, 2, 2]),
    },
    opset: 11,
  }),
};
const SITES: Record<string, VarintSite[]> = Object.fromEntries(Object.entries(SEEDS).map(([k, b]) => [k, varintSites(b)]));

const fold: ImportOptions["fold"] = (op, inputs, attrs, numOutputs) => runOp(op, inputs, { ...attrs }, { numOutputs });

/** Varint values that break assumptions: sign and width boundaries, 2^53, int64 -1. */
const NASTY: readonly bigint[] = [
  0n, 1n, 2n, 3n, 7n, 8n, 127n, 128n, 255n, 4096n, 65535n, 2n ** 31n - 1n, 2n ** 31n, 2n ** 32n - 1n, 2n ** 32n,
  2n ** 40n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 1n, 2n ** 62n, 2n ** 63n - 1n, 2n ** 63n, 2n ** 64n - 1n,
];

type Mutation =
  | { kind: "flip"; at: number; bit: number }
  | { kind: "set"; at: number; byte: number }
  | { kind: "insert"; at: number; bytes: Uint8Array }
  | { kind: "delete"; at: number; count: number }
  | { kind: "truncate"; at: number }
  | { kind: "varint"; site: number; value: bigint; which: "value" | "packed" | "tag" | "length" };

/** Byte noise; in-place changes weigh more than shifts, which mostly end in the decoder. */
const byteMutation: fc.Arbitrary<Mutation> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("set" as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("insert" as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 12 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("delete" as const), at: fc.nat(), count: fc.integer({ min: 1, max: 12 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("truncate" as const), at: fc.nat() }) },
);

/**
 * Varint corruption: a value (dims, data types, attribute ints, opset versions, enum fields), a tag
 * (field number / wire type: a field arriving with the wrong type) or a length prefix. Values and
 * tags keep the enclosing lengths right so the message still decodes; length corruption does not.
 */
const varintMutation: fc.Arbitrary<Mutation> = fc.record({
  kind: fc.constant("varint" as const),
  site: fc.nat(),
  value: fc.oneof(fc.constantFrom(...NASTY), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })),
  which: fc.oneof(
    { weight: 4, arbitrary: fc.constant("value" as const) },
    { weight: 1, arbitrary: fc.constant("packed" as const) },
    { weight: 1, arbitrary: fc.constant("tag" as const) },
    { weight: 1, arbitrary: fc.constant("length" as const) },
  ),
});

/** One varint corruption, byte noise, or both (the varint one first: it needs the seed's sites). */
const mutations: fc.Arbitrary<Mutation[]> = fc.oneof(
  { weight: 2, arbitrary: varintMutation.map((m) => [m]) },
  { weight: 1, arbitrary: fc.array(byteMutation, { minLength: 1, maxLength: 2 }) },
  { weight: 1, arbitrary: fc.tuple(varintMutation, byteMutation).map(([a, b]) => [a, b]) },
);

function mutate(seed: string, muts: readonly Mutation[]): Uint8Array {
  let bytes = SEEDS[seed]!;
  let sites = SITES[seed]!;
  let stale = false;
  for (const m of muts) {
    if (m.kind === "varint") {
      // Walking the 0.6 MB model costs ~100 ms: the fuzz puts its one varint mutation first.
      if (stale) sites = varintSites(bytes);
      stale = false;
      const pool = sites.filter((s) => s.kind === m.which);
      if (pool.length === 0) continue;
      const site = pool[m.site % pool.length]!;
      // Tags keep their wire type half the time (a plausible field number), else anything goes.
      const value = m.which === "tag" && m.value % 2n === 0n ? ((m.value >> 3n) % 64n << 3n) | (site.value & 7n) : m.value;
      bytes = m.which === "length"
        ? splice(bytes, site.at, site.size, encodeVarint(value))
        : replaceVarint(bytes, sites, site, value);
      stale = true;
      continue;
    }
    const at = m.at % Math.max(1, bytes.length);
    if (m.kind === "flip") bytes = splice(bytes, at, 1, [(bytes[at] ?? 0) ^ (1 << m.bit)]);
    else if (m.kind === "set") bytes = splice(bytes, at, 1, [m.byte]);
    else if (m.kind === "insert") bytes = splice(bytes, at, 0, [...m.bytes]);
    else if (m.kind === "delete") bytes = splice(bytes, at, m.count, []);
    else bytes = bytes.slice(0, at);
    stale = true;
  }
  return bytes;
}

function splice(b: Uint8Array, at: number, remove: number, insert: readonly number[]): Uint8Array {
  const out = new Uint8Array(b.length - Math.min(remove, b.length - at) + insert.length);
  out.set(b.subarray(0, at), 0);
  out.set(insert, at);
  out.set(b.subarray(at + remove), at + insert.length);
  return out;
}

/**
 * Small deterministic inputs for an imported program: a symbolic batch (first) dim is 1, other
 * symbolic dims 48 (the cls model's smallest height; its max-pool needs that much), small values.
 */
function tinyInputs(ep: ExportedProgram): Tensor[] | undefined {
  const out: Tensor[] = [];
  for (const s of ep.inputs) {
    const t = ep.graph.values[s.value]!;
    const shape = t.shape.map((d, i) => (typeof d === "number" ? d : i === 0 ? 1 : 48));
    const n = numel(shape);
    if (n > 65536) return undefined;
    const kind = dtypeInfo(t.dtype).kind;
    const values = Array.from({ length: n }, (_, i) => (kind === "float" ? Math.sin(i + 1) : (i % 3)));
    out.push(fromArray(t.dtype, shape, t.dtype === "int64" ? values.map((v) => BigInt(v)) : values));
  }
  return out;
}

function describeError(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message.split("\n")[0]}` : String(e);
}

describe("malformed bytes", () => {
  it("the seed models import, verify and give the walker their varints", async () => {
    for (const [k, bytes] of Object.entries(SEEDS)) {
      const ep = await importOnnx(bytes, { fold });
      verifyGraph(ep.graph);
      expect(SITES[k]!.filter((s) => s.kind === "value").length, k).toBeGreaterThan(3);
    }
  });

  it("replaceVarint keeps the message decodable and changes exactly the chosen field", () => {
    const sites = SITES.initializers!;
    // The first dim of initializer 'w' ([4, 3]): a value site inside graph -> initializer.
    const m = decodeModelProto(SEEDS.initializers!);
    const w = m.graph!.initializer!.findIndex((t) => t.name === "w");
    expect(w).toBeGreaterThanOrEqual(0);
    // protobufjs packs repeated ints: dims is a packed array inside model -> graph -> initializer.
    const dimSites = sites.filter((s) => s.kind === "packed" && s.value === 4n && s.parents.length === 3);
    let changed = 0;
    for (const s of dimSites) {
      const mm = decodeModelProto(replaceVarint(SEEDS.initializers!, sites, s, 2n ** 40n));
      const dims = mm.graph!.initializer![w]!.dims!.map((d) => String(d));
      if (dims[0] === String(2n ** 40n)) {
        changed++;
        expect(dims[1]).toBe("3");
        expect(mm.graph!.node!.map((n) => n.op_type)).toEqual(["Gemm", "Reshape", "Softmax"]);
      }
    }
    expect(changed).toBe(1);
  });

  it("every truncation is BAD_MODEL", async () => {
    for (const [k, bytes] of Object.entries(SEEDS)) {
      // Every 3rd prefix of the small models; 150 prefixes spread over the 0.6 MB one.
      const step = bytes.length > 20000 ? Math.floor(bytes.length / 150) : 3;
      for (let n = 0; n < bytes.length; n += step) {
        expect(await errorCode(importOnnx(bytes.subarray(0, n))), `${k}[0:${n}]`).toBe("BAD_MODEL");
      }
    }
  }, 60_000);

  it("random garbage is BAD_MODEL", async () => {
    const garbage = fc.sample(fc.uint8Array({ minLength: 1, maxLength: 2048 }), { numRuns: 200, seed: 42 });
    for (const g of garbage) expect(await errorCode(importOnnx(g))).toBe("BAD_MODEL");
    expect(await errorCode(importOnnx(new Uint8Array(0)))).toBe("BAD_MODEL");
    const text = new TextEncoder().encode("<html>not a model</html>");
    expect(await errorCode(importOnnx(text))).toBe("BAD_MODEL");
  });

  it("mutated real models import (then verify and run) or are refused with a QforgeError: never another exception, a hang or an OOM", async () => {
    const RUNS = 300;
    const refused = new Map<string, number>();
    const staticRefused = new Map<string, number>();
    const runErrors = new Map<string, number>();
    const bump = (m: Map<string, number>, k: string): void => { m.set(k, (m.get(k) ?? 0) + 1); };
    let runs = 0;
    let imported = 0;
    let ran = 0;
    let notRun = 0;
    const seedNames = Object.keys(SEEDS);
    // The real model gets half of the runs.
    const seedArb = fc.oneof({ arbitrary: fc.constant("cls"), weight: seedNames.length - 1 }, { arbitrary: fc.constantFrom(...seedNames), weight: 1 });
    const typed = (e: unknown, what: string): QforgeError => {
      if (!isQforgeError(e) || isUnexpectedImportError(e)) throw new Error(`${what} threw ${describeError(e)}`, { cause: e });
      return e;
    };
    const started = performance.now();
    await fc.assert(
      fc.asyncProperty(seedArb, mutations, async (seed, muts) => {
        const bytes = mutate(seed, muts);
        runs++;
        const t0 = performance.now();
        let ep: ExportedProgram;
        try {
          ep = await importOnnx(bytes, { fold });
        } catch (e) {
          const err = typed(e, `importing a mutated '${seed}'`);
          // Decoder refusals apart from the importer's own checks, to show how far mutants get.
          bump(refused, err.message.startsWith("BAD_MODEL: malformed ") ? "BAD_MODEL(decode)" : err.code);
          return;
        } finally {
          expect(performance.now() - t0, "import time (ms)").toBeLessThan(5000);
        }
        imported++;
        // What imports is a valid graph: the verifier re-checks names, order, arity and every node's types.
        verifyGraph(ep.graph);

        // Running it on tiny inputs: imported again with those sizes fixed, so every shape is static and
        // the size cap (1 MiB a value here) refuses blow-ups (a pad of 4096, a huge Expand) before they run.
        const inputs = tinyInputs(ep);
        if (inputs === undefined) {
          notRun++;
          return;
        }
        let fixed: ExportedProgram;
        try {
          const inputShapes = Object.fromEntries(ep.inputs.map((s, i) => [s.name, [...inputs[i]!.shape]]));
          fixed = await importOnnx(bytes, { fold, inputShapes, maxTensorBytes: 2 ** 20 });
        } catch (e) {
          bump(staticRefused, typed(e, `importing a mutated '${seed}' with static input sizes`).code);
          return;
        }
        verifyGraph(fixed.graph);
        const t1 = performance.now();
        try {
          runProgram(fixed, inputs);
          ran++;
        } catch (e) {
          if (!isQforgeError(e)) throw new Error(`running a mutated '${seed}' threw ${describeError(e)}`, { cause: e });
          bump(runErrors, e.code);
        }
        expect(performance.now() - t1, "run time (ms)").toBeLessThan(5000);
      }),
      { numRuns: RUNS, seed: 20240611, endOnFailure: true },
    );
    const list = (m: Map<string, number>): string => [...m].sort((x, y) => y[1] - x[1]).map(([k, v]) => `${k} ${v}`).join(", ") || "none";
    const total = (m: Map<string, number>): number => [...m.values()].reduce((x, y) => x + y, 0);
    console.log(
      `fuzz: ${runs} runs in ${((performance.now() - started) / 1000).toFixed(1)} s; refused ${total(refused)} (${list(refused)}); ` +
      `imported and verified ${imported}: with static sizes refused ${total(staticRefused)} (${list(staticRefused)}), ` +
      `ran OK ${ran}, run errors ${total(runErrors)} (${list(runErrors)}), not run ${notRun}`,
    );
    expect(runs).toBe(RUNS);
    // The fuzzing reaches past the decoder: some mutants import and run, others are refused by the importer's own checks.
    expect(imported).toBeGreaterThan(RUNS / 10);
    expect(ran).toBeGreaterThan(RUNS / 20);
    expect(total(refused)).toBeGreaterThan(RUNS / 10);
    expect(refused.get("BAD_MODEL") ?? 0, "refusals by the importer's own BAD_MODEL checks").toBeGreaterThan(RUNS / 20);
    expect([...refused.keys()].filter((k) => !k.startsWith("BAD_MODEL")).length).toBeGreaterThan(0);
  }, 120_000);

  it("decodeModelProto rejects non-bytes with BAD_INPUT", () => {
    expect(() => decodeModelProto("model" as unknown as Uint8Array)).toThrow(/BAD_INPUT/);
  });
});
