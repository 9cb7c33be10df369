import { readFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { QforgeError } from "@qforge/ir";
import { checkFakeQuantCase, checkObserverCase } from "@qforge/quant";
import { checkQuantizedOpCase } from "@qforge/runtime";
import { checkFxModelCase, type FxModelCaseResult } from "@qforge/pt2e";

export interface CaseResult {
  id: string;
  ok: boolean;
  diffs: string[];
  /** Output integers that differ from PyTorch's by exactly one (families that allow it). */
  offByOne?: number;
}

export interface FamilyReport {
  family: string;
  file: string;
  passed: number;
  failed: number;
  /** Set when the family is not run, with the reason. */
  skipped?: string;
  failures: CaseResult[];
  offByOne: number;
}

type Checker = (c: unknown) => CaseResult;

/**
 * fx_models: how many observer edges are bit-exact, how far the others' min/max are (float32
 * summation order of the float kernels, FX_STAT_ULPS), and the worst output difference.
 */
function summarizeFx(results: readonly CaseResult[]): string {
  const rs = results as readonly FxModelCaseResult[];
  const sum = (f: (r: FxModelCaseResult) => number): number => rs.reduce((s, r) => s + f(r), 0);
  const total = sum((r) => r.details?.observers?.total ?? 0);
  const exact = sum((r) => r.details?.observers?.exact ?? 0);
  const near = sum((r) => r.details?.observers?.summation ?? 0);
  const ulps = Math.max(0, ...rs.map((r) => r.details?.observers?.maxStatUlps ?? 0));
  const lsb = Math.max(0, ...rs.map((r) => r.maxOutputDiffLsb ?? 0));
  const w = sum((r) => r.details?.weights?.exact ?? 0);
  const wt = sum((r) => r.details?.weights?.total ?? 0);
  return `  observer qparams bit-exact on ${exact}/${total} edges; ${near} edges differ only through min/max at most ${ulps} ulp off ` +
    `(float32 summation order of conv/linear); weights bit-exact ${w}/${wt}; quantized outputs at most ${lsb} LSB from PyTorch`;
}

/** Family file -> checker (and an optional summary line printed after the family's counts). */
const FAMILIES: readonly { family: string; file: string; check?: Checker; pending?: string; summarize?: (r: readonly CaseResult[]) => string }[] = [
  { family: "observers", file: "observers.json", check: checkObserverCase as Checker },
  { family: "fake_quant", file: "fake_quant.json", check: checkFakeQuantCase as Checker },
  { family: "quantized_ops", file: "quantized_ops.json", check: checkQuantizedOpCase as Checker },
  { family: "fx_models", file: "fx_models.json", check: checkFxModelCase as Checker, summarize: summarizeFx },
];

/** Runs every case of every family file found in `dir` (any case set with the golden schema). */
export function runGolden(dir: string, log: (line: string) => void = console.log): { passed: number; failed: number; families: FamilyReport[] } {
  if (!existsSync(dir)) throw new QforgeError("IO_ERROR", `golden folder '${dir}' does not exist`);
  const families: FamilyReport[] = [];
  let passed = 0;
  let failed = 0;
  let found = 0;
  for (const fam of FAMILIES) {
    const path = join(dir, fam.file);
    if (!existsSync(path)) continue;
    found++;
    if (fam.check === undefined) {
      const rep: FamilyReport = { family: fam.family, file: path, passed: 0, failed: 0, skipped: fam.pending, failures: [], offByOne: 0 };
      families.push(rep);
      log(`${fam.family}: not run (${fam.pending})`);
      continue;
    }
    let doc: { family?: string; cases?: unknown[] };
    try {
      doc = JSON.parse(readFileSync(path, "utf8")) as typeof doc;
    } catch (e) {
      throw new QforgeError("BAD_DATA", `${path} is not valid JSON: ${(e as Error).message}`);
    }
    if (!Array.isArray(doc.cases)) throw new QforgeError("BAD_DATA", `${path} has no 'cases' list`);
    const rep: FamilyReport = { family: fam.family, file: path, passed: 0, failed: 0, failures: [], offByOne: 0 };
    const all: CaseResult[] = [];
    for (const c of doc.cases) {
      let r: CaseResult;
      try {
        r = fam.check(c);
      } catch (e) {
        const id = (c as { id?: string }).id ?? "?";
        r = { id, ok: false, diffs: [`threw ${(e as Error).message}`] };
      }
      all.push(r);
      rep.offByOne += r.offByOne ?? 0;
      if (r.ok) rep.passed++;
      else {
        rep.failed++;
        rep.failures.push(r);
      }
    }
    passed += rep.passed;
    failed += rep.failed;
    families.push(rep);
    const lsb = rep.offByOne > 0 ? ` (${rep.offByOne} output values off by one)` : "";
    log(`${fam.family}: ${rep.passed} passed, ${rep.failed} failed${lsb}`);
    if (fam.summarize !== undefined) log(fam.summarize(all));
    for (const f of rep.failures.slice(0, 10)) log(`  FAIL ${f.id}: ${f.diffs.slice(0, 3).join("; ")}`);
    if (rep.failures.length > 10) log(`  ... and ${rep.failures.length - 10} more failures`);
  }
  if (found === 0) throw new QforgeError("BAD_DATA", `no golden family files (observers.json, fake_quant.json, quantized_ops.json, fx_models.json) in '${dir}'`);
  log(`${passed} passed, ${failed} failed`);
  return { passed, failed, families };
}
