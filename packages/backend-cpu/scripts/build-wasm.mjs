// Rebuilds wasm/kernels.wasm (checked in, so installs never need clang) from wasm/src/kernels.c and
// the portable kernels in native/portable: clang --target=wasm32 with SIMD128 and bulk memory.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const pkg = join(dirname(fileURLToPath(import.meta.url)), "..");
/** Every file the module is built from. */
const WASM_SOURCES = ["wasm/src/kernels.c", "native/portable/qf.h", "native/portable/qf_portable.h"];
const out = join(pkg, "wasm", "kernels.wasm");
const clang = process.env.CLANG ?? "clang";
const args = [
  "--target=wasm32", "-msimd128", "-mbulk-memory", "-O3", "-ffp-contract=off", "-fno-math-errno", "-nostdlib",
  "-Wall", "-Wno-unused-function",
  "-Wl,--no-entry", "-Wl,--export-dynamic", "-Wl,--export=__heap_base", "-Wl,--initial-memory=1114112", "-Wl,--stack-first", "-Wl,-z,stack-size=1048576",
  "-o", out, join(pkg, "wasm", "src", "kernels.c"),
];
const r = spawnSync(clang, args, { stdio: "inherit" });
if (r.status !== 0) {
  console.error(`clang failed (${r.error?.message ?? `exit ${r.status}`}); is clang with the wasm32 target and wasm-ld installed?`);
  process.exit(1);
}
// The sources' digest, so a test can tell when the checked-in module is stale.
writeFileSync(join(pkg, "wasm", "kernels.wasm.sources"), `${sourcesDigest(pkg)}\n`);
console.log(`wrote ${out} (${statSync(out).size} bytes)`);

export function sourcesDigest(root) {
  const h = createHash("sha256");
  for (const f of WASM_SOURCES) h.update(readFileSync(join(root, f)));
  return h.digest("hex");
}
