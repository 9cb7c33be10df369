/**
 * quantize_ on exported models: the filter decides which weights are swapped, outputs stay within the
 * documented error of float (docs/quantization-math.md), and quantizing the Module then exporting
 * gives the same program, bit for bit, as exporting and then quantizing the program.
 */
import { describe, expect, it } from "vitest";
import { Embedding, exportModel, F, GELU, Linear, manualSeed, Module, normalTensor, Sequential, uniformTensor, Var } from "@qforge/export";
import {
  fromArray, GraphBuilder, isQforgeError, printGraph, programFromGraph, tensorsEqual, toFloat64, verifyGraph, type ExportedProgram, type Tensor,
} from "@qforge/ir";
import { runProgram } from "@qforge/runtime";
import {
  CodebookWeightOnlyConfig, Float8DynamicActivationFloat8WeightConfig, Float8WeightOnlyConfig, Int4WeightOnlyConfig,
  Int8DynamicActivationInt4WeightConfig, Int8DynamicActivationInt8WeightConfig, Int8StaticActivationInt8WeightConfig, Int8WeightOnlyConfig,
  isEmbedding, isLinear, isLinearOrEmbedding, QuantizedEmbedding, QuantizedLinear, quantize_, TilesLayout, type AOBaseConfig, type FilterFn,
} from "../src/index.js";

class Net extends Module {
  emb = new Embedding(50, 64);
  fc1 = new Linear(64, 64);
  act = new GELU();
  fc2 = new Linear(64, 32);
  head = new Linear(32, 10);

  forward(ids: Var): Var {
    return this.head.call(F.relu(this.fc2.call(this.act.call(this.fc1.call(this.emb.call(ids))))));
  }
}

function net(): Net {
  manualSeed(11);
  return new Net().eval();
}

const IDS = fromArray("int64", [2, 8], [1, 5, 9, 13, 17, 21, 25, 29, 33, 37, 41, 45, 49, 0, 2, 4]);

function relErr(ref: Tensor, y: Tensor): number {
  const a = toFloat64(ref);
  const b = toFloat64(y);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i]! - b[i]!) ** 2;
    den += a[i]! ** 2;
  }
  return Math.sqrt(num / den);
}

const notHead: FilterFn = (m, fqn) => isLinear(m) && fqn !== "head";

/** Relative L2 output error bounds, as documented in docs/quantization-math.md. */
const CASES: [string, () => AOBaseConfig, number][] = [
  ["A16W8 (Int8WeightOnlyConfig)", () => new Int8WeightOnlyConfig(), 0.01],
  ["A16W4 (Int4WeightOnlyConfig g32, tiles)", () => new Int4WeightOnlyConfig({ groupSize: 32, layout: TilesLayout() }), 0.1],
  ["A8W8 dynamic (Int8DynamicActivationInt8WeightConfig)", () => new Int8DynamicActivationInt8WeightConfig(), 0.02],
  ["8da4w (Int8DynamicActivationInt4WeightConfig)", () => new Int8DynamicActivationInt4WeightConfig(), 0.1],
  ["fp8 weight-only (Float8WeightOnlyConfig)", () => new Float8WeightOnlyConfig(), 0.05],
  ["fp8 dynamic (Float8DynamicActivationFloat8WeightConfig)", () => new Float8DynamicActivationFloat8WeightConfig(), 0.08],
  ["codebook 4-bit (CodebookWeightOnlyConfig)", () => new CodebookWeightOnlyConfig({ bits: 4 }), 0.1],
  ["static A8W8 (Int8StaticActivationInt8WeightConfig, given qparams)", () => new Int8StaticActivationInt8WeightConfig({ actQParams: { scale: 4 / 127.5, zeroPoint: 0 } }), 0.05],
];

describe("quantize_ on Modules and ExportedPrograms", () => {
  for (const [name, make, bound] of CASES) {
    it(name, () => {
      const ref = net().call(Var.from(IDS)).toTensor();
      const epFloat = exportModel(net(), [IDS]);
      const before = printGraph(epFloat.graph, { constants: "full" });

      // Module path: swap, then export.
      const model = net();
      const out = quantize_(model, make(), notHead);
      expect(out).toBe(model);
      expect(model.fc1).toBeInstanceOf(QuantizedLinear);
      expect(model.fc2).toBeInstanceOf(QuantizedLinear);
      expect(model.head).toBeInstanceOf(Linear);
      expect(model.emb).toBeInstanceOf(Embedding);
      const eager = model.call(Var.from(IDS)).toTensor();
      const ep = exportModel(model, [IDS]);
      verifyGraph(ep.graph);
      const ops = ep.graph.nodes.map((n) => n.op);
      expect(ops.filter((o) => o === "linear")).toHaveLength(1); // head
      expect(ops.filter((o) => o.endsWith("_quantized_linear"))).toHaveLength(2);
      expect(ep.graph.constants["head.weight"]?.tensor.dtype).toBe("float32");
      expect(ep.graph.constants["fc1.weight"]).toBeUndefined();
      const key = ops.includes("codebook_quantized_linear") ? "fc1.weight.codes" : "fc1.weight.qdata";
      expect(ep.graph.constants[key]).toBeDefined();
      const traced = runProgram(ep, [IDS])[0]!;
      expect(tensorsEqual(traced, eager)).toBe(true);

      // Program path: export, then rewrite; the same program and the same outputs.
      const epQ = quantize_(epFloat, make(), notHead);
      expect(printGraph(epFloat.graph, { constants: "full" })).toBe(before); // input untouched
      expect(epQ.graph.nodes.map((n) => n.op)).toEqual(ops);
      expect(Object.keys(epQ.graph.constants).sort()).toEqual(Object.keys(ep.graph.constants).sort());
      for (const [k, c] of Object.entries(ep.graph.constants)) expect(tensorsEqual(epQ.graph.constants[k]!.tensor, c.tensor)).toBe(true);
      expect(tensorsEqual(runProgram(epQ, [IDS])[0]!, eager)).toBe(true);

      const err = relErr(ref, eager);
      expect(err).toBeGreaterThan(0);
      expect(err).toBeLessThan(bound);
    });
  }

  it("the default filter takes every Linear; isLinearOrEmbedding adds the embedding table (weight-only configs)", () => {
    const all = quantize_(net(), new Int8WeightOnlyConfig());
    expect([all.fc1, all.fc2, all.head].every((m) => m instanceof QuantizedLinear)).toBe(true);
    expect(all.emb).toBeInstanceOf(Embedding);
    const withEmb = quantize_(net(), new Int8WeightOnlyConfig(), isLinearOrEmbedding);
    expect(withEmb.emb).toBeInstanceOf(QuantizedEmbedding);
    const ref = net().call(Var.from(IDS)).toTensor();
    const y = withEmb.call(Var.from(IDS)).toTensor();
    expect(relErr(ref, y)).toBeLessThan(0.01);
    const ep = quantize_(exportModel(net(), [IDS]), new Int8WeightOnlyConfig(), isEmbedding);
    expect(ep.graph.nodes.map((n) => n.op)).toContain("affine_quantized_embedding");
    expect(tensorsEqual(runProgram(ep, [IDS])[0]!, quantize_(net(), new Int8WeightOnlyConfig(), isEmbedding).call(Var.from(IDS)).toTensor())).toBe(true);
  });

  it("activation-quantizing configs leave embeddings in float and say why", () => {
    const skipped: string[] = [];
    const m = quantize_(net(), new Int8DynamicActivationInt4WeightConfig(), isLinearOrEmbedding, { onSkip: (f, why) => skipped.push(`${f}: ${why}`) });
    expect(m.emb).toBeInstanceOf(Embedding);
    expect(skipped).toEqual(["emb: activation quantization applies to linear layers only"]);
  });

  it("the filter sees (module, fqn) on Modules and (program site, fqn) on programs", () => {
    const seen: string[] = [];
    quantize_(net(), new Int8WeightOnlyConfig(), (m, fqn) => { seen.push(`${fqn}:${m.constructor.name}`); return false; });
    expect(seen).toEqual([":Net", "emb:Embedding", "fc1:Linear", "act:GELU", "fc2:Linear", "head:Linear"]);
    const sites: string[] = [];
    const ep = exportModel(net(), [IDS]);
    const same = quantize_(ep, new Int8WeightOnlyConfig(), (s, fqn) => {
      if ("kind" in s && s.kind === "program_site") sites.push(`${fqn}:${s.type}:${s.moduleType}`);
      return false;
    });
    expect(same).toBe(ep);
    expect(sites).toEqual(["emb:Embedding:Embedding", "fc1:Linear:Linear", "fc2:Linear:Linear", "head:Linear:Linear"]);
  });

  it("a Linear inside a Sequential cannot be swapped in place: UNSUPPORTED with a hint; the program path works", () => {
    manualSeed(3);
    const seq = new Sequential(new Linear(16, 8), new GELU(), new Linear(8, 4));
    const x = uniformTensor([2, 16], -1, 1);
    try {
      quantize_(seq, new Int8WeightOnlyConfig());
      expect.unreachable();
    } catch (e) {
      expect(isQforgeError(e, "UNSUPPORTED")).toBe(true);
      expect((e as Error).message).toMatch(/quantize the ExportedProgram/);
    }
    const ep: ExportedProgram = quantize_(exportModel(seq, [x]), new Int8WeightOnlyConfig());
    expect(ep.graph.nodes.map((n) => n.op)).toEqual(["affine_quantized_linear", "gelu", "affine_quantized_linear"]);
    expect(relErr(runProgram(exportModel(seq, [x]), [x])[0]!, runProgram(ep, [x])[0]!)).toBeLessThan(0.01);
  });

  it("a root Linear is replaced and returned", () => {
    manualSeed(4);
    const lin = new Linear(32, 8);
    const q = quantize_(lin, new Int4WeightOnlyConfig({ groupSize: 32 }));
    expect(q).toBeInstanceOf(QuantizedLinear);
    expect(Object.keys(q.stateDict()).sort()).toEqual(["bias", "weight.qdata", "weight.scale", "weight.zero_point"]);
  });

  it("tied weights: a table read by gather and linear is quantized for each use, and the float table leaves the program", () => {
    class Tied extends Module {
      emb = new Embedding(20, 32);
      forward(ids: Var): Var {
        return F.linear(this.emb.call(ids), this.emb.weight);
      }
    }
    manualSeed(5);
    const ids = fromArray("int64", [1, 4], [1, 2, 3, 4]);
    const ep = exportModel(new Tied(), [ids]);
    const q = quantize_(ep, new Int8WeightOnlyConfig(), isLinearOrEmbedding);
    expect(q.graph.nodes.map((n) => n.op)).toEqual(["affine_quantized_embedding", "affine_quantized_linear"]);
    expect(q.graph.constants["emb.weight"]).toBeUndefined();
    expect(relErr(runProgram(ep, [ids])[0]!, runProgram(q, [ids])[0]!)).toBeLessThan(0.01);
    // Only the linear use: the table stays for the gather.
    const onlyLinear = quantize_(ep, new Int8WeightOnlyConfig());
    expect(onlyLinear.graph.constants["emb.weight"]).toBeDefined();
  });

  it("imported-style programs: matmul and gemm by constant weights are rewritten as linear by the transpose", () => {
    manualSeed(6);
    const b = new GraphBuilder();
    const x = b.input("x", "float32", [3, 32]);
    const w1 = b.constant("W1", normalTensor([32, 16], 0, 0.2), "parameter"); // MatMul B [K, N]
    const w2 = b.constant("W2", normalTensor([8, 16], 0, 0.2), "parameter"); // Gemm B^T (transB)
    const c2 = b.constant("C2", normalTensor([8], 0, 0.1), "parameter");
    const w3 = b.constant("W3", normalTensor([8, 4], 0, 0.2), "parameter");
    const [h] = b.node("matmul", [x, w1]);
    const [r] = b.node("relu", [h!]);
    const [g] = b.node("gemm", [r!, w2, c2], { transB: 1 });
    const [s] = b.node("gemm", [g!, w3], { alpha: 0.5 }); // scaled: left alone
    b.output(s!);
    const ep = programFromGraph(b.build());
    const q = quantize_(ep, new Int8WeightOnlyConfig());
    expect(q.graph.nodes.map((n) => n.op)).toEqual(["affine_quantized_linear", "relu", "affine_quantized_linear", "gemm"]);
    expect(q.graph.nodes[0]!.attrs["weight_shape"]).toEqual([16, 32]);
    expect(q.graph.nodes[2]!.inputs[4]).toBe("C2");
    const xs = uniformTensor([3, 32], -1, 1);
    expect(relErr(runProgram(ep, [xs])[0]!, runProgram(q, [xs])[0]!)).toBeLessThan(0.01);
  });

  it("a config without a handler is BAD_CONFIG", () => {
    class Unknown extends (Object.getPrototypeOf(Int8WeightOnlyConfig) as typeof AOBaseConfigCtor) {}
    expect(() => quantize_(net(), new Unknown())).toThrow(/no quantize_ handler is registered for Unknown/);
  });
});

// The abstract base class, as a constructible type for the test above.
declare const AOBaseConfigCtor: new () => AOBaseConfig;
