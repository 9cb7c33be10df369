import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { fromArray, isQforgeError } from "@qforge/ir";
import { DataType, decodeModelProto, importOnnx } from "@qforge/onnx";
import { errorCode, node, tinyModel } from "./helpers.js";

const DIR = fileURLToPath(new URL("../../../../shared/onnx-node-tests", import.meta.url));
const shared = (t: string): Uint8Array => new Uint8Array(readFileSync(join(DIR, t, "model.onnx")));

/** Models the mutations start from: several op kinds, Constant tensors, attributes, initializers. */
const SEEDS: Record<string, Uint8Array> = {
  conv: shared("test_conv_with_strides_and_asymmetric_padding"),
  softmax: shared("test_softmax_axis_1_expanded"),
  resize: shared("test_resize_tf_crop_and_resize"),
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

describe("malformed bytes", () => {
  it("the seed models import", async () => {
    for (const [k, bytes] of Object.entries(SEEDS)) expect(await errorCode(importOnnx(bytes)), k).toBe("ok");
  });

  it("every truncation is BAD_MODEL", async () => {
    for (const [k, bytes] of Object.entries(SEEDS)) {
      for (let n = 0; n < bytes.length; n += 3) {
        expect(await errorCode(importOnnx(bytes.subarray(0, n))), `${k}[0:${n}]`).toBe("BAD_MODEL");
      }
    }
  });

  it("random garbage is BAD_MODEL", async () => {
    const garbage = fc.sample(fc.uint8Array({ minLength: 1, maxLength: 2048 }), { numRuns: 200, seed: 42 });
    for (const g of garbage) expect(await errorCode(importOnnx(g))).toBe("BAD_MODEL");
    expect(await errorCode(importOnnx(new Uint8Array(0)))).toBe("BAD_MODEL");
    const text = new TextEncoder().encode("<html>not a model</html>");
    expect(await errorCode(importOnnx(text))).toBe("BAD_MODEL");
  });

  it("mutated models import or fail with a QforgeError, never another exception or a hang", async () => {
    const names = Object.keys(SEEDS);
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant("set" as const), at: fc.nat(), byte: fc.integer({ min: 0, max: 255 }) }),
      fc.record({ kind: fc.constant("flip" as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
      fc.record({ kind: fc.constant("insert" as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 12 }) }),
      fc.record({ kind: fc.constant("delete" as const), at: fc.nat(), count: fc.integer({ min: 1, max: 12 }) }),
    );
    const outcomes = { ok: 0, error: 0 };
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...names), fc.array(mutation, { minLength: 1, maxLength: 6 }), async (seed, muts) => {
        let b = Array.from(SEEDS[seed]!);
        for (const m of muts) {
          const at = m.at % Math.max(1, b.length);
          if (m.kind === "set") b[at] = m.byte;
          else if (m.kind === "flip") b[at] = (b[at] ?? 0) ^ (1 << m.bit);
          else if (m.kind === "insert") b.splice(at, 0, ...m.bytes);
          else b.splice(at, m.count);
        }
        const started = Date.now();
        try {
          await importOnnx(new Uint8Array(b));
          outcomes.ok++;
        } catch (e) {
          if (!isQforgeError(e)) throw e;
          outcomes.error++;
        }
        expect(Date.now() - started).toBeLessThan(5000);
        b = [];
      }),
      { numRuns: 300, seed: 20240611 },
    );
    // Both outcomes occur: the fuzzing reaches the importer, not only the protobuf decoder.
    expect(outcomes.ok).toBeGreaterThan(0);
    expect(outcomes.error).toBeGreaterThan(0);
  }, 120_000);

  it("decodeModelProto rejects non-bytes with BAD_INPUT", () => {
    expect(() => decodeModelProto("model" as unknown as Uint8Array)).toThrow(/BAD_INPUT/);
  });
});
