/**
 * Tensors as JSON, the golden format `{"dtype": D, "shape": [..], "data": [..]}` (row-major). A file
 * holds one sample: one tensor (one-input models), a list of tensors (one per input, in order) or
 * an object keyed by input name.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { fromArray, isDType, numel, QforgeError, type Graph, type Tensor } from "@qforge/ir";

/** One sample: tensors in input order, or by input name. */
export type Sample = readonly Tensor[] | Readonly<Record<string, Tensor>>;

function badData(file: string, message: string): never {
  throw new QforgeError("BAD_DATA", `${file}: ${message}`, { node: file, hint: 'a tensor is {"dtype": "float32", "shape": [..], "data": [..]}' });
}

function isTensorJson(v: unknown): v is { dtype: unknown; shape: unknown; data: unknown } {
  return typeof v === "object" && v !== null && "dtype" in v && "shape" in v && "data" in v;
}

function tensorFromJson(v: unknown, file: string, what: string): Tensor {
  if (!isTensorJson(v)) badData(file, `${what} is not a tensor`);
  const { dtype, shape, data } = v;
  if (typeof dtype !== "string" || !isDType(dtype)) badData(file, `${what}: unknown dtype ${JSON.stringify(dtype)}`);
  if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) badData(file, `${what}: shape must be a list of sizes`);
  if (!Array.isArray(data) || !data.every((x) => typeof x === "number")) badData(file, `${what}: data must be a flat list of numbers`);
  if (data.length !== numel(shape as number[])) badData(file, `${what}: ${data.length} values for shape [${shape.join(", ")}]`);
  return fromArray(dtype, shape as number[], data as number[]);
}

/** Reads a sample from a JSON file (one tensor, a list, or an object keyed by input name). */
export function readSample(file: string): Sample {
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new QforgeError("IO_ERROR", `cannot read tensor file '${file}': ${(e as Error).message}`, { node: file });
  }
  if (Array.isArray(doc)) return doc.map((t, i) => tensorFromJson(t, file, `tensor #${i}`));
  if (isTensorJson(doc)) return [tensorFromJson(doc, file, "tensor")];
  if (typeof doc === "object" && doc !== null) {
    return Object.fromEntries(Object.entries(doc).map(([k, t]) => [k, tensorFromJson(t, file, `input '${k}'`)]));
  }
  return badData(file, "expected a tensor, a list of tensors or an object of tensors");
}

/** Every *.json sample of a directory, in name order. */
export function readSampleDir(dir: string): Sample[] {
  let names: string[];
  try {
    if (!statSync(dir).isDirectory()) throw new Error("not a directory");
    names = readdirSync(dir).filter((n) => n.endsWith(".json")).sort();
  } catch (e) {
    throw new QforgeError("IO_ERROR", `cannot read calibration directory '${dir}': ${(e as Error).message}`);
  }
  if (names.length === 0) throw new QforgeError("BAD_INPUT", `no .json tensors in '${dir}'`);
  return names.map((n) => readSample(join(dir, n)));
}

/** A sample as the graph's feeds, in `g.inputs` order. */
export function feedsFor(g: Graph, sample: Sample): Tensor[] {
  if (Array.isArray(sample)) {
    const list = sample as readonly Tensor[];
    if (list.length !== g.inputs.length) {
      throw new QforgeError("BAD_INPUT", `the model takes ${g.inputs.length} inputs (${g.inputs.join(", ")}), the sample has ${list.length}`);
    }
    return [...list];
  }
  const rec = sample as Readonly<Record<string, Tensor>>;
  return g.inputs.map((name) => {
    const t = rec[name];
    if (t === undefined) throw new QforgeError("BAD_INPUT", `the sample has no tensor for input '${name}'`, { hint: `inputs: ${g.inputs.join(", ")}` });
    return t;
  });
}
