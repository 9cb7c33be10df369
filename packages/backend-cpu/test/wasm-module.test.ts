/**
 * The checked-in wasm/kernels.wasm is what the loader expects: every export, the ABI version, no
 * imports (it runs in a browser with nothing provided), and it was built from the C sources as they
 * are now (scripts/build-wasm.mjs records their digest next to it).
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { WASM_EXPORTS } from "../src/index.js";
import { WASM_ABI_VERSION } from "../src/tiers/wasm.js";

const wasmPath = fileURLToPath(new URL("../wasm/kernels.wasm", import.meta.url));

describe("wasm/kernels.wasm", () => {
  const bytes = readFileSync(wasmPath);
  const mod = new WebAssembly.Module(bytes);

  it("exports everything the loader calls and imports nothing", () => {
    const names = WebAssembly.Module.exports(mod).map((e) => e.name);
    for (const e of WASM_EXPORTS) expect(names, `missing export ${e}`).toContain(e);
    expect(WebAssembly.Module.imports(mod)).toEqual([]);
  });

  it("has the loader's ABI version", () => {
    const inst = new WebAssembly.Instance(mod, {});
    expect((inst.exports["abi_version"] as () => number)()).toBe(WASM_ABI_VERSION);
  });

  it("was built from the current C sources", () => {
    const h = createHash("sha256");
    for (const p of ["../wasm/src/kernels.c", "../native/portable/qf.h", "../native/portable/qf_portable.h"]) {
      h.update(readFileSync(fileURLToPath(new URL(p, import.meta.url))));
    }
    const recorded = readFileSync(fileURLToPath(new URL("../wasm/kernels.wasm.sources", import.meta.url)), "utf8").trim();
    expect(recorded, "wasm/kernels.wasm is stale: run `npm run build:wasm` in packages/backend-cpu").toBe(h.digest("hex"));
  });
});
