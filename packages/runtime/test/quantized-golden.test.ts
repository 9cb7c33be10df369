import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { checkQuantizedOpCase } from "../src/index.js";

// The shared golden folder sits next to the repository (../shared/golden); QFORGE_GOLDEN_DIR overrides it.
const goldenDir = process.env.QFORGE_GOLDEN_DIR ?? fileURLToPath(new URL("../../../../shared/golden/", import.meta.url));
const FILE = join(goldenDir, "quantized_ops.json");

describe("golden quantized_ops.json (PyTorch 1.13, qnnpack + onednn)", () => {
  const golden = JSON.parse(readFileSync(FILE, "utf8")) as { family: string; cases: any[] };

  it("is the quantized_ops family", () => {
    expect(golden.family).toBe("quantized_ops");
    expect(golden.cases.length).toBeGreaterThan(0);
  });

  it("passes every case (exact where PyTorch's rule is known, else within one unit)", () => {
    const results = golden.cases.map((c) => ({ c, r: checkQuantizedOpCase(c) }));
    const tally = new Map<string, { pass: number; total: number; offByOne: number }>();
    for (const { c, r } of results) {
      const key = `${c.op}/${c.engine}`;
      const t = tally.get(key) ?? { pass: 0, total: 0, offByOne: 0 };
      t.total++;
      if (r.ok) t.pass++;
      t.offByOne += r.offByOne;
      tally.set(key, t);
    }
    const offByOne = results.reduce((s, { r }) => s + r.offByOne, 0);
    const lines = [...tally.entries()].sort().map(([k, t]) => `${k}: ${t.pass}/${t.total} pass, ${t.offByOne} off by one`);
    console.log(`quantized_ops golden: ${results.filter(({ r }) => r.ok).length}/${results.length} cases pass; ${offByOne} values off by one\n  ${lines.join("\n  ")}`);
    const failed = results.filter(({ r }) => !r.ok).map(({ c, r }) => `${r.id} (${c.op}/${c.engine}): ${r.diffs.join("; ")}`);
    expect(failed).toEqual([]);
  });

  it("reports corrupted expectations (exact ops by one unit, others by two, floats by one ulp)", () => {
    const corrupt = (op: string, engine: string | undefined, bump: (c: any) => void): ReturnType<typeof checkQuantizedOpCase> | undefined => {
      const found = golden.cases.find((c) => c.op === op && (engine === undefined || c.engine === engine));
      if (found === undefined) return undefined;
      const c = structuredClone(found);
      bump(c);
      return checkQuantizedOpCase(c);
    };
    const shiftInt = (by: number) => (c: any) => {
      const data: number[] = c.output.int_repr.data;
      data[0] = data[0]! + (data[0]! + by <= 127 ? by : -by);
    };
    for (const [op, engine, by] of [["linear", undefined, 1], ["conv2d", undefined, 1], ["add", undefined, 2], ["relu", undefined, 2]] as const) {
      const r = corrupt(op, engine, shiftInt(by));
      if (r === undefined) continue;
      expect(r.ok, `${op} corrupted by ${by}`).toBe(false);
      expect(r.diffs.join("\n")).toMatch(/element 0/);
    }
    const dyn = corrupt("dynamic_linear", "qnnpack", (c) => {
      const v = c.output.data[0] as number;
      c.output.data[0] = v + Math.max(Math.abs(v), 1e-30) * 2 ** -23;
    });
    if (dyn !== undefined) expect(dyn.ok).toBe(false);
    const unknown = checkQuantizedOpCase({ id: "x", engine: "qnnpack", op: "softmax" });
    expect(unknown.ok).toBe(false);
    expect(unknown.diffs[0]).toMatch(/unknown op/);
  });
});
