/**
 * `qforge quantize` end to end on a small conv model written as ONNX: PNG and .npy calibration
 * folders, the summary, the output loading in qforge and in ONNX Runtime with outputs close to the
 * float model, and every failure leaving the user's files as they were.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as ort from "onnxruntime-node";
import { fromArray, parseGraph, printGraph, type Tensor } from "@qforge/ir";
import { encodeModel, importOnnx, makeGraph, makeModel, makeNode, makeTensorValueInfo } from "@qforge/onnx";
import { encodeNpy, encodePng, main, quantizeCommand } from "@qforge/cli";

/** Deterministic values in [-0.5, 0.5) (an LCG, so the model and data are the same on every run). */
function values(n: number, seed: number): number[] {
  let s = seed;
  return Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return s / 2147483648 - 0.5;
  });
}

/** conv1 (3->4, 3x3, pad 1) -> relu1 -> conv2 (4->2, 1x1) -> pool (GlobalAveragePool); x: [1, 3, 8, 12]. */
function convModel(): Uint8Array {
  const g = makeGraph({
    nodes: [
      makeNode("Conv", ["x", "w1", "b1"], ["c1"], { pads: [1, 1, 1, 1] }, { name: "conv1" }),
      makeNode("Relu", ["c1"], ["r1"], {}, { name: "relu1" }),
      makeNode("Conv", ["r1", "w2", "b2"], ["c2"], {}, { name: "conv2" }),
      makeNode("GlobalAveragePool", ["c2"], ["y"], {}, { name: "pool" }),
    ],
    inputs: [makeTensorValueInfo("x", "float32", [1, 3, 8, 12])],
    outputs: [makeTensorValueInfo("y", "float32", [1, 2, 1, 1])],
    initializers: {
      w1: fromArray("float32", [4, 3, 3, 3], values(108, 1)), b1: fromArray("float32", [4], values(4, 2)),
      w2: fromArray("float32", [2, 4, 1, 1], values(8, 3)), b2: fromArray("float32", [2], values(2, 4)),
    },
  });
  return encodeModel(makeModel(g, { opset: 17 }));
}

let root: string;
let model: string;
let pngDir: string;
let npyDir: string;
let probe: Tensor;

async function run(args: string[]): Promise<{ code: number; text: string }> {
  const lines: string[] = [];
  const code = await main(args, (s) => lines.push(s));
  return { code, text: lines.join("\n") };
}

async function ortOutput(file: string, x: Tensor): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(file);
  const r = await session.run({ [session.inputNames[0]!]: new ort.Tensor("float32", x.data as Float32Array, [...x.shape]) });
  return r[session.outputNames[0]!]!.data as Float32Array;
}

/** max |a - b| relative to max |b|. */
function relError(a: Float32Array, b: Float32Array): number {
  let err = 0;
  let ref = 0;
  for (let i = 0; i < b.length; i++) {
    err = Math.max(err, Math.abs(a[i]! - b[i]!));
    ref = Math.max(ref, Math.abs(b[i]!));
  }
  return err / ref;
}

/** Files in a folder other than those expected (temporary files left behind show up here). */
function strays(dir: string, expected: readonly string[]): string[] {
  return readdirSync(dir).filter((n) => !expected.includes(n));
}

beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), "qforge-quantize-"));
  model = join(root, "model.onnx");
  writeFileSync(model, convModel());
  // PNG calibration images, 24x16 RGB: resized to the model's 8x12 on the way in.
  pngDir = join(root, "png");
  mkdirSync(pngDir);
  for (let k = 0; k < 4; k++) {
    const v = values(24 * 16 * 4, 100 + k);
    const data = Uint8Array.from(v, (x, i) => (i % 4 === 3 ? 255 : Math.floor((x + 0.5) * 256)));
    writeFileSync(join(pngDir, `img${k}.png`), encodePng({ width: 24, height: 16, data }));
  }
  writeFileSync(join(pngDir, "README.txt"), "not a sample: ignored");
  npyDir = join(root, "npy");
  mkdirSync(npyDir);
  for (let k = 0; k < 3; k++) {
    writeFileSync(join(npyDir, `s${k}.npy`), encodeNpy(fromArray("float32", [1, 3, 8, 12], values(288, 200 + k).map((x) => 2 * x))));
  }
  probe = fromArray("float32", [1, 3, 8, 12], values(288, 201).map((x) => 2 * x));
});

afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("qforge quantize (static)", () => {
  it("quantizes with PNG calibration images and prints the summary; the output runs in qforge and ONNX Runtime", async () => {
    const out = join(root, "static.onnx");
    const { code, text } = await run(["quantize", model, "--calib", pngDir, "--out", out, "--mean", "0.5", "--std", "0.5"]);
    expect(text).not.toMatch(/error/);
    expect(code).toBe(0);
    expect(text).toMatch(/^quantized 4 of 4 nodes \(static, xnnpack, histogram, per-tensor int8 weights\): Conv x2, GlobalAveragePool x1, Relu x1$/m);
    expect(text).toMatch(/^calibration: 4 sample\(s\) in \d+\.\ds$/m);
    expect(text).toMatch(/^file size: \d+ B -> \d+(\.\d)? (B|KiB) \(.*static\.onnx\)$/m);
    expect(strays(root, ["model.onnx", "png", "npy", "static.onnx"])).toEqual([]);

    const ep = await importOnnx(out);
    const ops = ep.graph.nodes.map((n) => n.op);
    expect(ops.filter((o) => o === "quantize_linear").length).toBeGreaterThanOrEqual(3);
    expect(ops.filter((o) => o === "conv")).toHaveLength(2);
    const quant = await ortOutput(out, probe);
    const float = await ortOutput(model, probe);
    expect(relError(quant, float)).toBeLessThan(0.05);
  });

  it("every calibration method, the x86 quantizer, per-channel weights and the QOperator form give ORT-runnable models close to float", async () => {
    const cases: string[][] = [
      ["--method", "minmax", "--per-channel"],
      ["--method", "percentile"],
      ["--method", "entropy", "--form", "qoperator"],
      ["--quantizer", "x86", "--method", "minmax"],
    ];
    const float = await ortOutput(model, probe);
    for (const [i, extra] of cases.entries()) {
      const out = join(root, `case${i}.onnx`);
      const { code, text } = await run(["quantize", model, "--calib", npyDir, "--out", out, ...extra]);
      expect(text, extra.join(" ")).not.toMatch(/error/);
      expect(code).toBe(0);
      const method = extra[extra.indexOf("--method") + 1];
      expect(text).toContain(`static, ${extra.includes("x86") ? "x86" : "xnnpack"}, ${method}, ${extra.includes("x86") || extra.includes("--per-channel") ? "per-channel" : "per-tensor"} int8 weights`);
      expect(relError(await ortOutput(out, probe), float), extra.join(" ")).toBeLessThan(0.05);
      if (extra.includes("qoperator")) {
        const onnxOps = (await importOnnx(out)).graph.nodes.map((n) => n.meta["onnxOp"]);
        expect(onnxOps).toContain("QLinearConv");
      }
      rmSync(out);
    }
  });

  it("--exclude-op-types (ONNX or canonical names) and --exclude-nodes keep those nodes float, with the reason", async () => {
    const out = join(root, "excluded.onnx");
    const { code, text } = await run(["quantize", model, "--calib", npyDir, "--out", out, "--exclude-op-types", "Relu", "--exclude-nodes", "conv2"]);
    expect(code).toBe(0);
    expect(text).toMatch(/^left in float: 2 node\(s\)$/m);
    expect(text).toMatch(/^ {2}excluded by --exclude-op-types Relu: Relu x1 \(relu1\)$/m);
    expect(text).toMatch(/^ {2}excluded by --exclude-nodes: Conv x1 \(conv2\)$/m);
    const ep = await importOnnx(out);
    const conv2 = ep.graph.nodes.find((n) => n.meta["onnxName"] === "conv2" || n.name === "conv2")!;
    // conv2's weight is still the float initializer, not a dequantized one
    expect(ep.graph.constants[conv2.inputs[1]!]?.tensor.dtype).toBe("float32");
    const canonical = await run(["quantize", model, "--calib", npyDir, "--out", out, "--exclude-op-types", "conv"]);
    expect(canonical.text).toMatch(/excluded by --exclude-op-types conv: Conv x2 \(conv1, conv2\)/);
    const unknown = await run(["quantize", model, "--calib", npyDir, "--out", out, "--exclude-nodes", "conv9"]);
    expect(unknown.code).toBe(1);
    expect(unknown.text).toMatch(/BAD_CONFIG: --exclude-nodes: the model has no node named 'conv9'/);
  });
});

describe("qforge quantize: progress and text output", () => {
  it("draws a progress bar on a TTY stderr during calibration; --out .qf writes a text dump that parses back", async () => {
    const writes: string[] = [];
    const stderr = { isTTY: true, columns: 80, write: (s: string) => writes.push(s) };
    const out = join(root, "static.qf");
    const text = await quantizeCommand([model, "--calib", npyDir, "--out", out, "--limit", "2"], { stderr });
    expect(text).toMatch(/^calibration: 2 sample\(s\)/m);
    expect(writes.filter((w) => w.startsWith("\rcalibrating ["))).not.toHaveLength(0);
    expect(writes.some((w) => / 2\/2 {2}elapsed /.test(w))).toBe(true);
    expect(writes.at(-1)).toBe("\n");
    const g = parseGraph(readFileSync(out, "utf8"));
    expect(g.nodes.filter((n) => n.op === "quantize_per_tensor").length).toBeGreaterThanOrEqual(3);
    rmSync(out);
    // a text dump is also an input
    const dump = join(root, "float.qf");
    writeFileSync(dump, printGraph((await importOnnx(model)).graph, { constants: "full" }));
    const fromText = await run(["quantize", dump, "--weight-only", "int8", "--out", join(root, "from-text.onnx")]);
    expect(fromText.text).toMatch(/^quantized 2 of 4 nodes \(weight-only, int8 per-channel\): Conv x2$/m);
    rmSync(dump);
    rmSync(join(root, "from-text.onnx"));
  });
});

describe("qforge quantize (weight-only)", () => {
  it("--weight-only int4 prints per-layer SQNR and weight bytes; the opset-21 blocked model runs in ORT", async () => {
    const out = join(root, "int4.onnx");
    const { code, text } = await run(["quantize", model, "--weight-only", "int4", "--group-size", "2", "--out", out]);
    expect(text).not.toMatch(/error/);
    expect(code).toBe(0);
    expect(text).toMatch(/^quantized 2 of 4 nodes \(weight-only, int4 groups of 2\): Conv x2$/m);
    // conv1's weight [4, 3, 3, 3] in groups of 2 along its 3 input channels: 2 groups (the last one short)
    const row = /^ {2}conv1 +\[4x3x3x3\] +int4 g2 +(\d+\.\d+) dB +432 B -> (\d+) B$/m.exec(text);
    expect(row).not.toBeNull();
    expect(Number(row![1])).toBeGreaterThan(15);
    expect(Number(row![2])).toBe(Math.ceil(108 / 2) + 4 * 2 * 3 * 3 * 4);
    expect(text).toMatch(/^ {2}total weight bytes: 464 B -> \d+ B \(\d+\.\d\dx smaller\)$/m);
    const ep = await importOnnx(out);
    expect(ep.meta["opset"]).toBe(21);
    const dq = ep.graph.nodes.filter((n) => n.op === "dequantize_linear");
    expect(dq.map((n) => n.attrs["block_size"])).toEqual([2, 2]);
    expect(relError(await ortOutput(out, probe), await ortOutput(model, probe))).toBeLessThan(0.15);
  });

  it("--mode weight-only --weight-bits 8 is per-channel int8 by default, and more accurate than int4", async () => {
    const out = join(root, "int8.onnx");
    const { code, text } = await run(["quantize", model, "--mode", "weight-only", "--weight-bits", "8", "--out", out, "--calib", npyDir]);
    expect(code).toBe(0);
    expect(text.split("\n")[0]).toBe("note: weight-only mode reads no calibration data; --calib was not used");
    const db = Number(/^ {2}conv1 +\[4x3x3x3\] +int8 per-channel +(\d+\.\d+) dB/m.exec(text)![1]);
    expect(db).toBeGreaterThan(40);
    expect(relError(await ortOutput(out, probe), await ortOutput(model, probe))).toBeLessThan(0.01);
  });
});

describe("qforge quantize: bad data and failures leave the user's files untouched", () => {
  /** Runs a failing quantize over an existing output file; checks the exit code, the message and the files. */
  async function failsCleanly(args: string[], message: RegExp): Promise<void> {
    const dir = mkdtempSync(join(root, "fail-"));
    const out = join(dir, "out.onnx");
    writeFileSync(out, "previous output");
    const { code, text } = await run(["quantize", model, "--out", out, ...args]);
    expect(code).toBe(1);
    expect(text).toMatch(message);
    expect(readFileSync(out, "utf8")).toBe("previous output");
    expect(strays(dir, ["out.onnx"])).toEqual([]);
  }

  function folder(files: Record<string, Uint8Array | string>): string {
    const dir = mkdtempSync(join(root, "calib-"));
    for (const [name, bytes] of Object.entries(files)) writeFileSync(join(dir, name), bytes);
    return dir;
  }

  it("refuses NaN / Inf calibration data naming the file", async () => {
    const x = values(288, 7);
    x[5] = NaN;
    const nan = folder({ "a.npy": encodeNpy(fromArray("float32", [1, 3, 8, 12], values(288, 6))), "b.npy": encodeNpy(fromArray("float32", [1, 3, 8, 12], x)) });
    await failsCleanly(["--calib", nan], /error: BAD_DATA: .*b\.npy: input 'x' element 5 is NaN/);
    const y = values(288, 8);
    y[0] = Infinity;
    const inf = folder({ "c.json": JSON.stringify({ dtype: "float32", shape: [1, 3, 8, 12], data: y.map((v) => (Number.isFinite(v) ? v : 1e39)) }) });
    await failsCleanly(["--calib", inf], /error: BAD_DATA: .*c\.json: input 'x' element 0 is Infinity/);
  });

  it("refuses an empty folder, a shape mismatch and an unreadable image, naming them", async () => {
    const empty = folder({ "notes.txt": "no samples here" });
    await failsCleanly(["--calib", empty], /error: BAD_INPUT: no calibration samples in '.*calib-/);
    const wrong = folder({ "w.npy": encodeNpy(fromArray("float32", [1, 3, 8, 8], values(192, 9))) });
    await failsCleanly(["--calib", wrong], /error: BAD_DATA: .*w\.npy: input 'x' has shape \[1, 3, 8, 8\], the model takes \[1, 3, 8, 12\]/);
    const broken = folder({ "ok.npy": encodeNpy(probe), "z.png": "definitely not a PNG" });
    await failsCleanly(["--calib", broken], /error: BAD_DATA: .*z\.png: cannot decode the PNG image/);
    const int32 = folder({ "i.npy": new Uint8Array(Buffer.from("k05VTVBZAQB2AHsnZGVzY3InOiAnPGk0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDIsKSwgfSAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoBAAAAAgAAAA==", "base64")) });
    await failsCleanly(["--calib", int32], /error: UNSUPPORTED: .*i\.npy: dtype '<i4' is not supported/);
    await failsCleanly([], /error: BAD_INPUT: static quantization needs calibration data/);
  });

  it("a write error is IO_ERROR and leaves no temporary file", async () => {
    const dir = mkdtempSync(join(root, "dirout-"));
    const target = join(dir, "taken");
    mkdirSync(target);
    writeFileSync(join(target, "keep"), "x");
    const { code, text } = await run(["quantize", model, "--calib", npyDir, "--out", target]);
    expect(code).toBe(1);
    expect(text).toMatch(/error: IO_ERROR: cannot write '.*taken'/);
    expect(readdirSync(dir)).toEqual(["taken"]);
    expect(readdirSync(target)).toEqual(["keep"]);
    const missing = await run(["quantize", model, "--calib", npyDir, "--out", join(root, "no", "such", "dir", "m.onnx")]);
    expect(missing.code).toBe(1);
    expect(existsSync(join(root, "no"))).toBe(false);
  });

  it("bad options are BAD_CONFIG (exit 1); a missing --out or model is usage (exit 2)", async () => {
    expect((await run(["quantize", model, "--calib", npyDir])).code).toBe(2);
    expect((await run(["quantize", "--out", "x.onnx"])).code).toBe(2);
    const bad = await run(["quantize", model, "--out", "x.onnx", "--method", "magic"]);
    expect([bad.code, bad.text]).toEqual([1, expect.stringMatching(/BAD_CONFIG: --method must be one of minmax, histogram, percentile, entropy/)]);
    const contra = await run(["quantize", model, "--out", "x.onnx", "--mode", "static", "--weight-only", "int4"]);
    expect(contra.text).toMatch(/BAD_CONFIG: --weight-only int4 contradicts --mode static/);
    const bits = await run(["quantize", model, "--out", "x.onnx", "--calib", npyDir, "--group-size", "32"]);
    expect(bits.text).toMatch(/BAD_CONFIG: weight bits and group size apply to weight-only mode/);
    expect(existsSync("x.onnx")).toBe(false);
  });
});
