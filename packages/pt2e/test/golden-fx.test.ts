import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { checkFxModelCase, FX_MAX_LSB, FX_STAT_ULPS, FX_WITHIN_1_LSB, type FxDiffCategory, type FxModelCaseResult } from "../src/golden/index.js";

// The shared golden folder sits next to the repository (../shared/golden); QFORGE_GOLDEN_DIR overrides it.
const goldenDir = process.env.QFORGE_GOLDEN_DIR ?? fileURLToPath(new URL("../../../../shared/golden/", import.meta.url));
const FILE = join(goldenDir, "fx_models.json");

function pct(n: number, total: number): string {
  return total > 0 ? `${((100 * n) / total).toFixed(2)} %` : "-";
}

function line(c: any, r: FxModelCaseResult): string {
  const d = r.details;
  const o = d?.observers;
  const obs = o !== undefined ? `observers ${o.exact}/${o.total} exact, ${o.summation} with min/max ${o.maxStatUlps} ulp off` : "observers -";
  const w = d?.weights !== undefined ? `weights ${d.weights.exact}/${d.weights.total}` : "weights -";
  const ref = d?.reference !== undefined ? `reference ${pct(d.reference.within1, d.reference.total)} <=1 LSB, max ${d.reference.maxLsb} (vs reference_outputs alone: max ${d.reference.raw.maxLsb})` : "reference -";
  const q = d?.quantized !== undefined ? `quantized ${pct(d.quantized.within1, d.quantized.total)} <=1 LSB, max ${d.quantized.maxLsb}` : "quantized -";
  const fused = d?.fusedParams !== undefined && d.fusedParams.total > 0 ? `, fused params ${d.fusedParams.exact}/${d.fusedParams.total} bit-exact` : "";
  const failed = d?.failedAt !== undefined ? `, threw at ${d.failedAt}` : "";
  return `${r.ok ? "ok  " : "FAIL"} ${r.id} [${c.model}/${c.config}]: ${obs}, ${w}, ${ref}, ${q}${fused}${failed}`;
}

describe("golden fx_models.json (PyTorch 1.13 FX, qnnpack) through the PT2E flow", () => {
  const golden = JSON.parse(readFileSync(FILE, "utf8")) as { family: string; cases: any[] };
  const results = golden.cases.map((c) => ({ c, r: checkFxModelCase(c) }));

  /** The diffs of one category over every case (a thrown stage counts everywhere). */
  const failing = (...cats: FxDiffCategory[]): string[] =>
    results.flatMap(({ r }) => {
      const d = r.details?.diffs;
      const list = d === undefined ? r.diffs : [...d.error, ...cats.flatMap((k) => d[k])];
      return list.length === 0 ? [] : [`${r.id}: ${list.slice(0, 4).join("; ")}${list.length > 4 ? `; ... (${list.length})` : ""}`];
    });

  it("is the fx_models family, and reports per case", () => {
    expect(golden.family).toBe("fx_models");
    expect(golden.cases.length).toBeGreaterThan(0);
    const sum = (f: (r: FxModelCaseResult) => number): number => results.reduce((s, { r }) => s + f(r), 0);
    const quantTotal = sum((r) => r.details?.quantized?.total ?? 0);
    const refTotal = sum((r) => r.details?.reference?.total ?? 0);
    const summary = [
      `fx_models golden: ${results.filter(({ r }) => r.ok).length}/${results.length} cases pass`,
      `observer qparams exact ${sum((r) => r.details?.observers?.exact ?? 0)}/${sum((r) => r.details?.observers?.total ?? 0)}` +
        ` (the other ${sum((r) => r.details?.observers?.summation ?? 0)}: min/max at most ${Math.max(0, ...results.map(({ r }) => r.details?.observers?.maxStatUlps ?? 0))} ulp off, float32 summation order)`,
      `weights exact ${sum((r) => r.details?.weights?.exact ?? 0)}/${sum((r) => r.details?.weights?.total ?? 0)}`,
      `quantized outputs ${pct(sum((r) => r.details?.quantized?.within1 ?? 0), quantTotal)} within 1 LSB, max ${Math.max(0, ...results.map(({ r }) => r.maxOutputDiffLsb ?? 0))} LSB`,
      `reference outputs ${pct(sum((r) => r.details?.reference?.within1 ?? 0), refTotal)} within 1 LSB, max ${Math.max(0, ...results.map(({ r }) => r.details?.reference?.maxLsb ?? 0))} LSB`,
      `(need ${pct(FX_WITHIN_1_LSB, 1)} within 1 LSB and at most ${FX_MAX_LSB} LSB)`,
    ];
    console.log(`${summary.join("; ")}\n  ${results.map(({ c, r }) => line(c, r)).join("\n  ")}`);
    // Every case ran the whole flow to the end.
    expect(results.filter(({ r }) => r.details?.failedAt !== undefined).map(({ r }) => `${r.id}: ${r.diffs[0]}`)).toEqual([]);
  });

  it("builds every float model and reproduces float_outputs (1e-5 relative)", () => {
    expect(failing("float")).toEqual([]);
  });

  it("maps every FX observer edge to one qforge observer of PyTorch's class, dtype and range, shared exactly where PyTorch shares", () => {
    expect(failing("plan")).toEqual([]);
  });

  it("computes PyTorch's qparams when MinMax / FixedQParams observers see PyTorch's own statistics", () => {
    const off = results.filter(({ r }) => (r.details?.observers?.fromGoldenStats.exact ?? -1) !== (r.details?.observers?.fromGoldenStats.total ?? -2));
    expect(off.map(({ r }) => `${r.id}: ${JSON.stringify(r.details?.observers?.fromGoldenStats)}`)).toEqual([]);
  });

  it("reproduces every observer's scale, zero point and min/max bit for bit where the observed statistics are bit-exact", () => {
    expect(failing("qparams")).toEqual([]);
  });

  it(`observes min/max within ${FX_STAT_ULPS} float32 ulps of PyTorch's everywhere else (summation order of the float kernels)`, () => {
    const off = results.filter(({ r }) => (r.details?.observers?.maxStatUlps ?? Infinity) > FX_STAT_ULPS);
    expect(off.map(({ r }) => `${r.id}: ${r.details?.observers?.maxStatUlps} ulp`)).toEqual([]);
    // Most edges are exact; the report above lists the rest.
    const exact = results.reduce((s, { r }) => s + (r.details?.observers?.exact ?? 0), 0);
    expect(exact).toBeGreaterThan(0);
  });

  it("reproduces every quantized weight (integers, scales, zero points) bit for bit", () => {
    expect(failing("weights")).toEqual([]);
  });

  it(`keeps reference and quantized outputs within one step on >= ${pct(FX_WITHIN_1_LSB, 1)} of the values and ${FX_MAX_LSB} steps on all`, () => {
    expect(failing("outputs")).toEqual([]);
  });

  it("passes every case", () => {
    expect(results.filter(({ r }) => !r.ok).map(({ r }) => r.id)).toEqual([]);
  });
});
