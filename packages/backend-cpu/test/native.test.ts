/**
 * Loading and tier selection. A built addon that fails to load is a bug, not a reason to fall back
 * silently: when the build produced the .node file, loading it must succeed. Without one (no
 * compiler), "auto" sessions run on WebAssembly and say so in their placements.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { GraphBuilder, isQforgeError, tensor } from "@qforge/ir";
import { compile, listBackends } from "@qforge/runtime";
import { loadNative, nativeStatus, setNativeIsa } from "../src/index.js";

const built = ["../dist/native/qforge_cpu.node", "../build/Release/qforge_cpu.node"]
  .map((p) => fileURLToPath(new URL(p, import.meta.url)))
  .filter((p) => existsSync(p));

function graph() {
  const b = new GraphBuilder();
  const x = b.input("x", "float32", [2, 8]);
  const w = b.constant("w", tensor("float32", [4, 8], Float32Array.from({ length: 32 }, (_, i) => (i % 7) - 3)));
  b.output(b.node1("linear", [x, w], {}, { name: "fc" }));
  return b.build();
}

const savedEnv = process.env["QFORGE_CPU_TIER"];
afterEach(() => {
  if (savedEnv === undefined) delete process.env["QFORGE_CPU_TIER"];
  else process.env["QFORGE_CPU_TIER"] = savedEnv;
});

describe("native addon", () => {
  it.runIf(built.length > 0)(`loads after a successful build (${built[0] ?? "not built"})`, async () => {
    const s = await loadNative();
    // A failure here names the reason (wrong ABI, missing symbol, ...): fix the build, never fall back.
    expect(s.reason ?? "", `the native addon at ${s.path} was built but did not load`).toBe("");
    expect(s.state).toBe("loaded");
    expect(nativeStatus()).toBe(s);
    expect(s.info!.features.length).toBeGreaterThanOrEqual(0);
    expect(["scalar", "avx2", "avxvnni", "avx512", "avx512vnni"]).toContain(s.info!.best);
  });

  it.runIf(built.length > 0)("caps the ISA for tests and reports the microkernels in use", async () => {
    try {
      const scalar = await setNativeIsa("scalar");
      expect([scalar.level, scalar.sgemm, scalar.qgemm]).toEqual(["scalar", "scalar", "scalar"]);
      const best = await setNativeIsa("best");
      expect(best.level).toBe(best.best);
      await expect(setNativeIsa("sse9")).rejects.toThrow(/unknown ISA level/);
      const s = await compile(graph(), { backend: "cpu", tier: "native" });
      expect(s.placements[0]).toMatchObject({ node: "fc", tier: "native", kernel: `sgemm_${best.sgemm}`, fallback: false });
    } finally {
      await setNativeIsa("best");
    }
  });

  it("registers the cpu backend; auto picks native when loaded, else wasm; QFORGE_CPU_TIER and tier force one", async () => {
    expect(listBackends()).toContain("cpu");
    const status = await loadNative();
    const auto = await compile(graph(), { backend: "cpu" });
    expect(auto.placements[0]!.tier).toBe(status.state === "loaded" ? "native" : "wasm");
    process.env["QFORGE_CPU_TIER"] = "wasm";
    expect((await compile(graph(), { backend: "cpu" })).placements[0]!.tier).toBe("wasm");
    expect((await compile(graph(), { backend: "cpu", tier: "wasm" })).placements[0]!.tier).toBe("wasm");
    if (status.state !== "loaded") {
      await expect(compile(graph(), { backend: "cpu", tier: "native" })).rejects.toSatisfy((e) => isQforgeError(e, "BAD_CONFIG"));
    }
    await expect(compile(graph(), { backend: "cpu", tier: "gpu" as never })).rejects.toSatisfy((e) => isQforgeError(e, "BAD_CONFIG"));
  });

  it("a session runs, checks its feeds, and refuses to run after dispose", async () => {
    const s = await compile(graph(), { backend: "cpu", tier: "wasm" });
    const x = tensor("float32", [2, 8], Float32Array.from({ length: 16 }, (_, i) => i / 4));
    const [y] = await s.run({ x });
    expect(y!.shape).toEqual([2, 4]);
    await expect(s.run({ x: tensor("float32", [3, 8], new Float32Array(24)) })).rejects.toSatisfy((e) => isQforgeError(e, "BAD_INPUT"));
    s.dispose!();
    await expect(s.run({ x })).rejects.toSatisfy((e) => isQforgeError(e, "BAD_CONFIG"));
  });
});
