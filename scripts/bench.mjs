// npm run bench [-- --json <file>] [--quick]: benchmark harness (not timed tests). Prints a table and
// optionally writes the rows as JSON. Each package contributes rows through its exported bench function.
import { writeFileSync, renameSync } from "node:fs";
import { build, ensureInstalled, root } from "./lib.mjs";
import { join, resolve } from "node:path";

ensureInstalled();
build();
const args = process.argv.slice(2);
const jsonAt = args.indexOf("--json");
const quick = args.includes("--quick");
const n = quick ? 1 << 20 : 1 << 24;

const { benchQuant, benchObservers } = await import(join(root, "packages/quant/dist/index.js"));
const rows = [];
const onTty = process.stderr.isTTY;
for (const [name, fn] of [["quant", benchQuant], ["observers", benchObservers]]) {
  if (onTty) process.stderr.write(`running ${name} benchmarks...\n`);
  rows.push(...fn({ n }));
}
// @qforge/backend-cpu: qforge's native and WebAssembly tiers against onnxruntime-node on the same inputs.
{
  if (onTty) process.stderr.write("running backend-cpu benchmarks (qforge vs onnxruntime-node)...\n");
  const { benchCpu } = await import(join(root, "packages/backend-cpu/scripts/bench-cpu.mjs"));
  rows.push(...(await benchCpu({ quick, log: (m) => { if (onTty) process.stderr.write(`${m}\n`); } })));
}
const cols = ["case", "impl", "tier", "threads", "median_ms", "throughput", "unit", "speedup_vs_ort"];
const fmt = (v) => (typeof v === "number" ? (Math.abs(v) >= 1e5 ? v.toExponential(3) : v.toFixed(3)) : String(v ?? ""));
const table = [cols, ...rows.map((r) => cols.map((c) => fmt(r[c])))];
const widths = cols.map((_, i) => Math.max(...table.map((r) => r[i].length)));
for (const r of table) console.log(r.map((c, i) => c.padEnd(widths[i])).join("  "));
if (jsonAt >= 0) {
  const file = resolve(args[jsonAt + 1] ?? "bench-results.json");
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, JSON.stringify(rows, null, 2));
  renameSync(tmp, file);
  console.log(`wrote ${rows.length} rows to ${file}`);
}
