import { expect, test } from "vitest";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { GraphBuilder, printGraph, tensor } from "@qforge/ir";
import { getSymmetricQuantizationConfig, XnnpackQuantizer } from "@qforge/quantizer";

test("docs/quantizer.md shows what printGraph prints for an XNNPACK-annotated graph", () => {
  const b = new GraphBuilder();
  const x = b.input("x", "float32", ["N", 4]);
  const w = b.constant("fc.weight", tensor("float32", [2, 4], Float32Array.of(0.5, -0.25, 0.125, 1, -1, 0.75, 0.25, -0.5)), "parameter");
  const bias = b.constant("fc.bias", tensor("float32", [2], Float32Array.of(0.1, -0.1)), "parameter");
  b.output(b.node1("sigmoid", [b.node1("relu", [b.node1("linear", [x, w, bias])])]));
  const text = printGraph(new XnnpackQuantizer().setGlobal(getSymmetricQuantizationConfig()).annotate(b.build()));
  const doc = readFileSync(fileURLToPath(new URL("../../../docs/quantizer.md", import.meta.url)), "utf8");
  const block = /<!-- example:begin -->\n```text\n([\s\S]*?)\n```\n<!-- example:end -->/.exec(doc);
  expect(block).not.toBeNull();
  expect(block![1]).toBe(text.trimEnd());
});
