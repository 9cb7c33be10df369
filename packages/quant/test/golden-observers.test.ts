import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { checkObserverCase } from "../src/golden/index.js";

// The shared golden file (5 MB) is parsed once for this test file.
const GOLDEN = "/work/shared/golden/observers.json";
const golden = JSON.parse(readFileSync(process.env.QFORGE_GOLDEN_OBSERVERS ?? GOLDEN, "utf8")) as { cases: any[] };

describe("golden observers.json (PyTorch 1.13)", () => {
  it("has cases", () => {
    expect(golden.cases.length).toBeGreaterThan(0);
  });

  it("every case matches PyTorch bit for bit", () => {
    const results = golden.cases.map((c) => ({ observer: String(c.observer), ...checkObserverCase(c) }));
    const byClass = new Map<string, { pass: number; fail: number }>();
    for (const r of results) {
      const e = byClass.get(r.observer) ?? { pass: 0, fail: 0 };
      if (r.ok) e.pass++;
      else e.fail++;
      byClass.set(r.observer, e);
    }
    const failures = results.filter((r) => !r.ok);
    for (const f of failures.slice(0, 40)) console.log(`FAIL ${f.id} (${f.observer}): ${f.diffs.slice(0, 4).join(" | ")}`);
    console.log([...byClass].map(([k, v]) => `${k}: ${v.pass}/${v.pass + v.fail}`).join("\n"));
    expect(failures.map((f) => f.id)).toEqual([]);
  });
});
