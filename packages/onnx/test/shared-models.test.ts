import { describe, expect, it } from "vitest";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { join } from "node:path";
import { isQforgeError } from "@qforge/ir";
import { decodeModelProto, dtypeFromOnnx, importOnnx, int64ToBigInt, int64ToNumber } from "@qforge/onnx";

const DIR = fileURLToPath(new URL("../../../../shared/onnx-node-tests", import.meta.url));
const INDEX = JSON.parse(readFileSync(join(DIR, "index.json"), "utf8")) as {
  tests: Record<string, { ops: string[]; opset: number; family: string }>;
};
const TESTS = readdirSync(DIR).filter((t) => existsSync(join(DIR, t, "model.onnx"))).sort();

const QUANTIZED = new Set(["QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearMatMul", "QLinearConv", "MatMulInteger", "ConvInteger"]);
/** Models with a STRING, UINT64, Sequence or Optional value: qforge has no such values. */
const NON_NUMERIC = /STRING|uint64|identity_(opt|sequence)$/;

describe("the shared ONNX node-test models", () => {
  it("are all found", () => {
    expect(TESTS.length).toBe(Object.keys(INDEX.tests).length);
    expect(TESTS.length).toBeGreaterThanOrEqual(300);
  });

  it("decode to the ops and opset index.json lists", () => {
    for (const t of TESTS) {
      const m = decodeModelProto(readFileSync(join(DIR, t, "model.onnx")));
      const info = INDEX.tests[t]!;
      expect(new Set(m.graph!.node!.map((n) => n.op_type)), t).toEqual(new Set(info.ops));
      const opset = m.opset_import!.find((o) => (o.domain ?? "") === "")!;
      expect(int64ToNumber(opset.version, "opset"), t).toBe(info.opset);
      expect(int64ToBigInt(m.ir_version) >= 3n, t).toBe(true);
    }
  });

  it("import with the declared output dtypes and static shapes, or fail for a stated reason", async () => {
    const failures: string[] = [];
    for (const t of TESTS) {
      const bytes = readFileSync(join(DIR, t, "model.onnx"));
      const info = INDEX.tests[t]!;
      let ep;
      try {
        ep = await importOnnx(bytes);
      } catch (e) {
        if (!isQforgeError(e)) throw e;
        failures.push(t);
        expect(QUANTIZED.has(info.family), `quantized models import: ${t}: ${e.message}`).toBe(false);
        if (NON_NUMERIC.test(t)) {
          expect(e.code, t).toBe("UNSUPPORTED");
        } else {
          // Without opts.fold, a Reshape whose target shape is computed by ConstantOfShape/Concat
          // arithmetic has no known rank (the runtime's runOp folds it: see the e2e test).
          expect(info.ops, `${t}: ${e.message}`).toContain("ConstantOfShape");
        }
        continue;
      }
      const m = decodeModelProto(bytes);
      const declared = m.graph!.output!;
      expect(ep.outputs.map((o) => o.name), t).toEqual(declared.map((o) => o.name));
      const inits = new Set(m.graph!.initializer!.map((i) => i.name));
      expect(ep.inputs.map((i) => i.name), t).toEqual(m.graph!.input!.map((i) => i.name).filter((n) => !inits.has(n)));
      for (const o of declared) {
        const tt = o.type!.tensor_type!;
        const got = ep.graph.values[o.name!]!;
        expect(got.dtype, `${t}: ${o.name}`).toBe(dtypeFromOnnx(tt.elem_type!));
        const dims = tt.shape!.dim!.map((d) => (d.value === "dim_value" ? int64ToNumber(d.dim_value, "dim") : undefined));
        expect(got.shape.length, `${t}: ${o.name}`).toBe(dims.length);
        got.shape.forEach((d, i) => {
          if (typeof d === "number" && dims[i] !== undefined) expect(d, `${t}: ${o.name} dim ${i}`).toBe(dims[i]);
        });
      }
    }
    // 7 non-numeric models and the LayerNormalization expansions (which need folding).
    expect(failures.filter((t) => !/layer_normalization.*_expanded$/.test(t))).toHaveLength(7);
  });
});
