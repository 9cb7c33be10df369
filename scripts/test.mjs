// npm test: install what is missing, build every package and type-check tests/examples, run the whole vitest
// suite, and end with one summary line "N passed, M failed, K skipped".
import { readFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { build, ensureInstalled, sh } from "./lib.mjs";

ensureInstalled();
build();
console.log("> type-checking tests and examples (tsconfig.tests.json)");
sh("npx", ["tsc", "-p", "tsconfig.tests.json"]);
const out = join(mkdtempSync(join(tmpdir(), "qforge-test-")), "vitest.json");
const status = sh("npx", ["vitest", "run", "--reporter=default", "--reporter=json", `--outputFile.json=${out}`, ...process.argv.slice(2)], { allowFail: true });
let summary = "";
try {
  const r = JSON.parse(readFileSync(out, "utf8"));
  const skipped = (r.numPendingTests ?? 0) + (r.numTodoTests ?? 0);
  summary = `${r.numPassedTests} passed, ${r.numFailedTests} failed, ${skipped} skipped`;
} catch {
  summary = `0 passed, 1 failed (vitest wrote no report; exit ${status})`;
}
rmSync(dirname(out), { recursive: true, force: true });
console.log(`\n${summary}`);
process.exit(status);
