// Builds the native tier (build/Release/qforge_cpu.node) with node-gyp and the machine's C++ compiler,
// then copies it to dist/native/ (turbo caches dist/). Never fails the package build: without a
// compiler, node-gyp or Node headers it prints one line and the package runs on its WebAssembly tier.
// Offline: node-gyp finds the headers through npm's `nodedir` (or /usr/include/node); it is never
// allowed to download them. `--force` rebuilds even when the addon is newer than its sources.
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const pkg = join(dirname(fileURLToPath(import.meta.url)), "..");
const built = join(pkg, "build", "Release", "qforge_cpu.node");
const dist = join(pkg, "dist", "native", "qforge_cpu.node");
const force = process.argv.includes("--force");

function skip(why) {
  console.log(`@qforge/backend-cpu: native tier not built (${why}); the WebAssembly tier will be used`);
  process.exit(0);
}

if (process.env.QFORGE_CPU_NATIVE === "0") skip("QFORGE_CPU_NATIVE=0");
if (process.arch !== "x64") skip(`the native kernels are x86-64 only, this is ${process.arch}`);

function newest(dir) {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

const srcTime = Math.max(newest(join(pkg, "native")), statSync(join(pkg, "binding.gyp")).mtimeMs);
const upToDate = existsSync(built) && statSync(built).mtimeMs >= srcTime;

if (!upToDate || force) {
  const has = (cmd) => spawnSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status === 0;
  if (!has(process.env.CXX ?? "g++") && !has("c++") && !has("clang++")) skip("no C++ compiler found");
  if (!has("make")) skip("make not found");
  if (!has("python3") && !has("python")) skip("python3 not found (node-gyp needs it)");
  // node-gyp: the copy bundled with npm, found next to the running npm/node.
  const candidates = [
    join(dirname(process.execPath), "..", "lib", "node_modules", "npm", "node_modules", "node-gyp", "bin", "node-gyp.js"),
    process.env.npm_execpath ? join(dirname(process.env.npm_execpath), "..", "node_modules", "node-gyp", "bin", "node-gyp.js") : "",
  ].filter((p) => p !== "" && existsSync(p));
  if (candidates.length === 0) skip("node-gyp not found");
  const headers = [process.env.npm_config_nodedir, "/usr", dirname(dirname(process.execPath))]
    .filter((d) => d !== undefined && d !== "" && existsSync(join(d, "include", "node", "node_api.h")));
  if (headers.length === 0) skip("Node headers (include/node/node_api.h) not found");
  const args = [candidates[0], "rebuild", `--nodedir=${headers[0]}`, "--release", "-j", "2"];
  const r = spawnSync(process.execPath, args, {
    cwd: pkg, encoding: "utf8", env: { ...process.env, npm_config_nodedir: headers[0], npm_config_offline: "true" },
  });
  if (r.status !== 0 || !existsSync(built)) {
    const tail = `${r.stdout ?? ""}${r.stderr ?? ""}`.split("\n").filter((l) => /error/i.test(l)).slice(0, 5).join(" | ");
    skip(`node-gyp failed${tail ? `: ${tail}` : ""}`);
  }
}
mkdirSync(dirname(dist), { recursive: true });
copyFileSync(built, dist);
console.log(`@qforge/backend-cpu: native tier ${upToDate && !force ? "up to date" : "built"} (${dist})`);
