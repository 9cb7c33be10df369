import { describe, expect, it, onTestFinished } from "vitest";
import { mkdtempSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { main } from "@qforge/cli";
import { GraphBuilder, fromArray, parseGraph, printGraph } from "@qforge/ir";

const shared = fileURLToPath(new URL("../../shared/", import.meta.url));

async function run(args: string[]): Promise<{ code: number; lines: string[] }> {
  const lines: string[] = [];
  const code = await main(args, (s) => lines.push(...s.split("\n")));
  return { code, lines };
}

describe("qforge CLI", () => {
  it("dump prints a text graph that parses back", async () => {
    const b = new GraphBuilder();
    const x = b.input("x", "float32", ["N", 4]);
    const w = b.constant("fc.weight", fromArray("float32", [2, 4], [1, 2, 3, 4, 5, 6, 7, 8]), "parameter");
    b.output(b.node1("relu", [b.node1("linear", [x, w])]));
    const g = b.build();
    const dir = mkdtempSync(join(tmpdir(), "qforge-cli-"));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, "g.qf");
    writeFileSync(file, printGraph(g, { constants: "full" }));
    const { code, lines } = await run(["dump", file]);
    expect(code).toBe(0);
    const again = parseGraph(lines.join("\n"));
    expect(again.nodes.map((n) => n.op)).toEqual(["linear", "relu"]);
  });

  it("dump renders DOT and Mermaid for an ONNX model", async () => {
    const model = join(shared, "onnx-node-tests", "test_relu", "model.onnx");
    const dot = await run(["dump", model, "--format", "dot"]);
    expect(dot.code).toBe(0);
    expect(dot.lines.join("\n")).toMatch(/digraph/);
    const mm = await run(["dump", model, "--format", "mermaid"]);
    expect(mm.code).toBe(0);
    expect(mm.lines[0]).toMatch(/^(flowchart|graph)/);
  });

  it("reports a missing file as a typed error with exit code 1", async () => {
    const { code, lines } = await run(["dump", "/nonexistent/model.qf"]);
    expect(code).toBe(1);
    expect(lines.join("\n")).toMatch(/error: IO_ERROR/);
  });

  it("rejects unknown commands and bad formats with usage (exit 2)", async () => {
    expect((await run(["frobnicate"])).code).toBe(2);
    expect((await run(["dump", "x.qf", "--format", "png"])).code).toBe(2);
  });

  it("conformance golden runs the shared PyTorch cases and ends with the summary line", async () => {
    const { code, lines } = await run(["conformance", "golden", join(shared, "golden")]);
    const last = lines.filter((l) => l.trim() !== "").at(-1)!;
    expect(last).toMatch(/^\d+ passed, 0 failed$/);
    expect(code).toBe(0);
    expect(lines.some((l) => /^observers: \d+ passed, 0 failed$/.test(l))).toBe(true);
    expect(lines.some((l) => /^fake_quant: \d+ passed, 0 failed$/.test(l))).toBe(true);
    expect(lines.some((l) => /^quantized_ops: \d+ passed, 0 failed/.test(l))).toBe(true);
    expect(lines.some((l) => /^fx_models: \d+ passed, 0 failed$/.test(l))).toBe(true);
  }, 300_000);

  it("conformance golden on a folder without family files is an error", async () => {
    const dir = mkdtempSync(join(tmpdir(), "qforge-empty-"));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const { code, lines } = await run(["conformance", "golden", dir]);
    expect(code).toBe(1);
    expect(lines.join("\n")).toMatch(/BAD_DATA/);
  });
});
