/**
 * End to end in a browser: the int8 PP-OCRv4 recognition model (PT2E-quantized with the XNNPACK
 * quantizer on real text lines, lowered to integer ops) recognizes two lines in headless Chromium
 * on WebGPU (SwiftShader where there is no GPU). The page must compile every node for the GPU,
 * read the same text as the reference interpreter in Node, and leave a screenshot in out/.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import type { Server } from "node:http";
import { runOp, runGraph } from "@qforge/runtime";
import { importOnnx } from "@qforge/onnx";
import { quantizeModel } from "@qforge/cli";
import { lowerQdq } from "@qforge/pt2e";
import type { Graph } from "@qforge/ir";
import { ctcDecode } from "./ctc.js";
import { graphToJson, tensorToJson } from "./graph-json.js";
import { preprocessLine } from "./lines.js";
import { bundle, chromiumUnavailableReason, launchChromium, OCR_LINES, OUT, ROOT, serve, WEB } from "./serve.js";
import type { PageResult } from "./main.js";

const MODELS = join(ROOT, "node_modules", "@gutenye", "ocr-models", "assets");
const LINES = OCR_LINES;
const noBrowser = chromiumUnavailableReason();
if (noBrowser !== undefined) console.log(`[examples/web] skipping the Chromium test: ${noBrowser}`);

interface Label {
  readonly file: string;
  readonly text: string;
}

describe.skipIf(noBrowser !== undefined)("examples/web: int8 OCR on WebGPU in headless Chromium", () => {
  let browser: Browser | undefined;
  let server: Server | undefined;
  let url = "";
  const expected: { file: string; text: string; argmax: number[] }[] = [];

  beforeAll(async () => {
    mkdirSync(OUT, { recursive: true });
    const labels = JSON.parse(readFileSync(join(LINES, "labels.json"), "utf8")) as Label[];
    const picked = [labels[0]!, labels[1]!];
    const inputs = picked.map((l) => preprocessLine(join(LINES, l.file)));
    const ep = await importOnnx(join(MODELS, "ch_PP-OCRv4_rec_infer.onnx"), { fold: (op, inputs, attrs, n) => runOp(op, inputs, { ...attrs }, { numOutputs: n }) });
    const { program } = quantizeModel(ep, { quantizer: "xnnpack", method: "minmax", perChannel: true }, [[inputs[0]!], [inputs[1]!]]);
    const lowered = lowerQdq(program);
    const g: Graph = { ...lowered.graph, inputs: lowered.inputs.map((s) => s.value), outputs: lowered.outputs.map((s) => s.value) };
    writeFileSync(join(OUT, "model.json"), JSON.stringify(graphToJson(g)));
    writeFileSync(join(OUT, "lines.json"), JSON.stringify(picked.map((l, i) => ({ file: l.file, label: l.text, input: tensorToJson(inputs[i]!) }))));
    const keys = readFileSync(join(MODELS, "ppocr_keys_v1.txt"), "utf8").split(/\r?\n/).filter((_, i, a) => i < a.length - 1 || a[i] !== "");
    inputs.forEach((x, i) => {
      const [probs] = runGraph(g, [x]).outputs;
      const d = probs!.data as Float32Array;
      const [, steps, classes] = probs!.shape as [number, number, number];
      const argmax = Array.from({ length: steps }, (_, t) => {
        let best = 0;
        for (let c = 1; c < classes; c++) if (d[t * classes + c]! > d[t * classes + best]!) best = c;
        return best;
      });
      expected.push({ file: picked[i]!.file, text: ctcDecode(probs!, keys), argmax });
    });
    await bundle(join(WEB, "main.ts"), join(OUT, "main.js"));
    const s = await serve({
      "/index.html": join(WEB, "index.html"), "/main.js": join(OUT, "main.js"), "/main.js.map": join(OUT, "main.js.map"),
      "/out": OUT, "/lines": LINES, "/keys.txt": join(MODELS, "ppocr_keys_v1.txt"),
    });
    server = s.server;
    url = s.url;
    browser = await launchChromium();
  }, 300_000);

  afterAll(async () => {
    await browser?.close();
    server?.close();
  });

  it("recognizes the lines like the reference interpreter, with every node on WebGPU, and saves a screenshot", async () => {
    const page = await browser!.newPage({ viewport: { width: 1100, height: 800 } });
    const logs: string[] = [];
    page.on("console", (m) => logs.push(m.text()));
    page.on("pageerror", (e) => logs.push(String(e)));
    await page.goto(`${url}/index.html`);
    await page.waitForFunction(() => (globalThis as { qforgeResult?: unknown }).qforgeResult !== undefined, undefined, { timeout: 280_000 });
    const result = (await page.evaluate(() => (globalThis as { qforgeResult?: unknown }).qforgeResult)) as PageResult | { error: string };
    await page.screenshot({ path: join(OUT, "screenshot.png"), fullPage: true });
    if ("error" in result && !("lines" in result)) throw new Error(`the page failed: ${result.error}\n${logs.join("\n")}`);
    const r = result as PageResult;
    console.log(`[examples/web] ${r.adapter}: compile ${r.compileMs.toFixed(0)} ms, ${r.lines.map((l) => `${l.file} "${l.text}" ${l.ms.toFixed(0)} ms`).join("; ")}`);
    expect(r.placements.fallback).toEqual([]);
    expect(r.placements.gpu).toBeGreaterThan(300);
    r.lines.forEach((line, i) => {
      const want = expected[i]!;
      expect(line.text).toBe(want.text);
      const agree = line.argmax.filter((c, t) => c === want.argmax[t]).length / want.argmax.length;
      expect(agree).toBeGreaterThan(0.95);
    });
    expect(readFileSync(join(OUT, "screenshot.png")).length).toBeGreaterThan(10_000);
  }, 300_000);
});
