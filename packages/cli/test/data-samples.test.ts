import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fromArray, GraphBuilder, toNumbers, type Graph } from "@qforge/ir";
import { conformFeeds, encodeNpy, encodePng, openCalibrationDir } from "@qforge/cli";

let root: string;

/** x [1, 1, 2, 3] -> relu (one image-shaped input). */
function oneInput(): Graph {
  const b = new GraphBuilder();
  b.output(b.node1("relu", [b.input("x", "float32", [1, 1, 2, 3])]));
  return b.build();
}

function folder(name: string, files: Record<string, Uint8Array | string>): string {
  const dir = join(root, name);
  mkdirSync(dir);
  for (const [f, bytes] of Object.entries(files)) writeFileSync(join(dir, f), bytes);
  return dir;
}

const gray = (v: number): Uint8Array => encodePng({ width: 3, height: 2, data: new Uint8Array(24).map((_, i) => (i % 4 === 3 ? 255 : v)) });
const npy = (v: number): Uint8Array => encodeNpy(fromArray("float32", [1, 1, 2, 3], [v, v, v, v, v, v]));

beforeAll(() => { root = mkdtempSync(join(tmpdir(), "qforge-samples-")); });
afterAll(() => rmSync(root, { recursive: true, force: true }));

describe("calibration folders", () => {
  it("images win over the labels.json beside them; files come in name order; --limit keeps the first N", () => {
    const dir = folder("images", { "b.png": gray(51), "a.png": gray(255), "labels.json": "[{\"file\": \"a.png\", \"text\": \"x\"}]", "c.PNG": gray(0) });
    const src = openCalibrationDir(dir, oneInput(), { image: { mean: [0], std: [1] } });
    expect(src.size).toBe(3);
    expect([0, 1, 2].map((i) => src.label(i).slice(dir.length + 1))).toEqual(["a.png", "b.png", "c.PNG"]);
    const first = src.read(0) as readonly { data: Float32Array }[];
    expect(Array.from(first[0]!.data)).toEqual([1, 1, 1, 1, 1, 1]);
    expect(toNumbers((src.read(1) as readonly never[])[0]!)[0]).toBeCloseTo(0.2, 6);
    expect(openCalibrationDir(dir, oneInput(), { limit: 2 }).size).toBe(2);
  });

  it("without images, .npy arrays are the samples; without either, .json tensors", () => {
    const npyDir = folder("arrays", { "s1.npy": npy(1), "s0.npy": npy(0), "meta.json": "{}" });
    const a = openCalibrationDir(npyDir, oneInput());
    expect(a.size).toBe(2);
    expect(toNumbers((a.read(0) as readonly never[])[0]!)).toEqual([0, 0, 0, 0, 0, 0]);
    const jsonDir = folder("json", { "t.json": JSON.stringify({ x: { dtype: "float32", shape: [1, 1, 2, 3], data: [1, 2, 3, 4, 5, 6] } }) });
    const j = openCalibrationDir(jsonDir, oneInput());
    expect(toNumbers(conformFeeds(oneInput(), j.read(0), j.label(0))[0]!)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it("errors name the folder or the file", () => {
    expect(() => openCalibrationDir(join(root, "missing"), oneInput())).toThrow(/IO_ERROR: cannot read calibration folder '.*missing'/);
    const empty = folder("empty", { "notes.txt": "x" });
    expect(() => openCalibrationDir(empty, oneInput())).toThrow(/BAD_INPUT: no calibration samples in '.*empty'/);
    const b = new GraphBuilder();
    b.output(b.node1("add", [b.input("x", "float32", [1, 1, 2, 3]), b.input("y", "float32", [1, 1, 2, 3])]));
    const two = openCalibrationDir(folder("two", { "p.npy": npy(1) }), b.build());
    expect(() => two.read(0)).toThrow(/BAD_DATA: .*p\.npy: a \.npy array feeds one input, the model takes 2 \(x, y\)/);
  });

  it("conformFeeds narrows float64 to a float32 input and refuses other dtype mismatches", () => {
    const g = oneInput();
    const f64 = conformFeeds(g, [fromArray("float64", [1, 1, 2, 3], [0.5, 1, 2, 3, 4, 5])], "d.npy");
    expect(f64[0]!.dtype).toBe("float32");
    expect(() => conformFeeds(g, [fromArray("int64", [1, 1, 2, 3], [1, 2, 3, 4, 5, 6])], "i.npy")).toThrow(/BAD_DATA: i\.npy: input 'x' is int64, the model takes float32/);
    expect(() => conformFeeds(g, { y: fromArray("float32", [1, 1, 2, 3], [1, 2, 3, 4, 5, 6]) }, "o.json")).toThrow(/BAD_DATA: o\.json: the sample has no tensor for input 'x'/);
  });
});
