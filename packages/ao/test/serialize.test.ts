/**
 * Quantized weights saved to a safetensors file load back bit-exactly, without requantizing.
 */
import { describe, expect, it } from "vitest";
import { exportModel, F, Linear, manualSeed, Module, uniformTensor, Var } from "@qforge/export";
import { fromArray, isQforgeError, printGraph, tensor, tensorsEqual, type Tensor } from "@qforge/ir";
import { runProgram } from "@qforge/runtime";
import {
  CodebookWeightOnlyConfig, decodeSafetensors, Float8DynamicActivationFloat8WeightConfig, Int8DynamicActivationInt8WeightConfig, encodeSafetensors, Int4PairsLayout, Int4WeightOnlyConfig, Int8DynamicActivationInt4WeightConfig,
  Int8StaticActivationInt8WeightConfig, Int8WeightOnlyConfig, loadProgram, loadQuantizedModule, QuantizedLinear, quantize_, saveProgram,
  saveQuantizedModule, TilesLayout, U32WordsLayout, type AOBaseConfig,
} from "../src/index.js";

class Net extends Module {
  fc1 = new Linear(64, 32);
  fc2 = new Linear(32, 16, { bias: false });
  head = new Linear(16, 4);
  forward(x: Var): Var {
    return this.head.call(F.relu(this.fc2.call(F.relu(this.fc1.call(x)))));
  }
}

function net(seed: number): Net {
  manualSeed(seed);
  return new Net();
}

const X = ((): Tensor => {
  manualSeed(77);
  return uniformTensor([3, 64], -1, 1);
})();

function sameState(a: Record<string, Tensor>, b: Record<string, Tensor>): void {
  expect(Object.keys(a).sort()).toEqual(Object.keys(b).sort());
  for (const k of Object.keys(a)) expect(tensorsEqual(a[k]!, b[k]!)).toBe(true);
}

describe("safetensors", () => {
  it("writes the standard header and reads back every dtype, sub-byte ones through __metadata__", () => {
    const tensors: Record<string, Tensor> = {
      a: tensor("float32", [2], Float32Array.of(1.5, -2)),
      b: fromArray("int4", [3], [-8, 7, 1]),
      c: fromArray("uint8", [2, 2], [0, 1, 2, 255]),
      d: fromArray("float8_e4m3fn", [2], [0.5, -448]),
      e: fromArray("int64", [1], [123456789012]),
      f: fromArray("bfloat16", [1], [3.5]),
    };
    const bytes = encodeSafetensors(tensors, { note: "hi" });
    const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(n % 8).toBe(0);
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as Record<string, { dtype: string; shape: number[]; data_offsets: number[] }>;
    expect(header["a"]).toEqual({ dtype: "F32", shape: [2], data_offsets: [0, 8] });
    expect(header["b"]).toEqual({ dtype: "U8", shape: [2], data_offsets: [8, 10] });
    expect(header["d"]!.dtype).toBe("F8_E4M3");
    const back = decodeSafetensors(bytes);
    expect(back.metadata["note"]).toBe("hi");
    sameState(back.tensors, tensors);
  });

  it("refuses truncated or malformed files with BAD_MODEL", () => {
    const bytes = encodeSafetensors({ a: tensor("float32", [4], new Float32Array(4)) });
    for (const bad of [bytes.subarray(0, 4), bytes.subarray(0, bytes.length - 3), Uint8Array.of(255, 255, 0, 0, 0, 0, 0, 0, 1)]) {
      try {
        decodeSafetensors(bad);
        expect.unreachable();
      } catch (e) {
        expect(isQforgeError(e, "BAD_MODEL")).toBe(true);
      }
    }
  });
});

const CONFIGS: [string, () => AOBaseConfig][] = [
  ["int8 weight-only, tiles", () => new Int8WeightOnlyConfig({ layout: TilesLayout(8, 16) })],
  ["int4 weight-only, int4 pairs", () => new Int4WeightOnlyConfig({ groupSize: 32, layout: Int4PairsLayout() })],
  ["8da4w, u32 words", () => new Int8DynamicActivationInt4WeightConfig({ groupSize: 16, layout: U32WordsLayout() })],
  ["codebook 3-bit", () => new CodebookWeightOnlyConfig({ bits: 3, groupSize: 16 })],
  ["static A8W8", () => new Int8StaticActivationInt8WeightConfig({ actQParams: { scale: 0.01, zeroPoint: 3 }, actDtype: "uint8" })],
  ["A8W8 dynamic", () => new Int8DynamicActivationInt8WeightConfig({ actMapping: "ASYMMETRIC" })],
  ["fp8 dynamic per row, e5m2 weights", () => new Float8DynamicActivationFloat8WeightConfig({ weightDtype: "float8_e5m2", granularity: "per_row" })],
];

describe("quantized Modules round-trip through a file", () => {
  for (const [name, make] of CONFIGS) {
    it(name, () => {
      const notHead = (m: unknown, fqn: string): boolean => m instanceof Linear && fqn !== "head";
      const q = quantize_(net(1), make(), notHead);
      const bytes = saveQuantizedModule(q);
      // A fresh float model with other weights: loading must take the file's codes, not requantize these.
      const fresh = net(2);
      const loaded = loadQuantizedModule(fresh, bytes);
      expect(loaded).toBe(fresh);
      expect(loaded.fc1).toBeInstanceOf(QuantizedLinear);
      expect(loaded.head).toBeInstanceOf(Linear);
      sameState(loaded.stateDict(), q.stateDict());
      expect((loaded.fc1 as unknown as QuantizedLinear).act).toEqual((q.fc1 as unknown as QuantizedLinear).act);
      expect(tensorsEqual(loaded.call(Var.from(X)).toTensor(), q.call(Var.from(X)).toTensor())).toBe(true);
      // Saving again gives the same bytes.
      expect(Buffer.from(saveQuantizedModule(loaded)).equals(Buffer.from(bytes))).toBe(true);
    });
  }

  it("loading into an already quantized model just loads the tensors; mismatches are errors", () => {
    const q = quantize_(net(1), new Int8WeightOnlyConfig());
    const bytes = saveQuantizedModule(q);
    const other = quantize_(net(3), new Int8WeightOnlyConfig());
    loadQuantizedModule(other, bytes);
    sameState(other.stateDict(), q.stateDict());
    class Smaller extends Module {
      fc1 = new Linear(64, 32);
      forward(x: Var): Var { return this.fc1.call(x); }
    }
    expect(() => loadQuantizedModule(new Smaller(), bytes)).toThrow(/does not have/);
  });
});

describe("quantized ExportedPrograms round-trip through a file", () => {
  it("saveProgram / loadProgram: same graph, same constants, same outputs", () => {
    for (const [, make] of CONFIGS) {
      const ep = quantize_(exportModel(net(4), [X]), make());
      const back = loadProgram(saveProgram(ep));
      expect(printGraph(back.graph, { constants: "full" })).toBe(printGraph(ep.graph, { constants: "full" }));
      for (const [k, c] of Object.entries(ep.graph.constants)) {
        expect(back.graph.constants[k]!.kind).toBe(c.kind);
        expect(tensorsEqual(back.graph.constants[k]!.tensor, c.tensor)).toBe(true);
      }
      expect(back.inputs).toEqual(ep.inputs);
      expect(back.meta).toEqual(ep.meta);
      expect(tensorsEqual(runProgram(back, [X])[0]!, runProgram(ep, [X])[0]!)).toBe(true);
    }
  });

  it("a tampered tensor fails the graph's content hash", () => {
    const ep = quantize_(exportModel(net(4), [X]), new Int8WeightOnlyConfig());
    const file = decodeSafetensors(saveProgram(ep));
    const t = file.tensors["fc1.weight.qdata"]!;
    (t.data as Int8Array)[0] = ((t.data as Int8Array)[0]! + 1) % 100;
    expect(() => loadProgram(encodeSafetensors(file.tensors, file.metadata))).toThrow(/hash|fnv|content/i);
  });
});
