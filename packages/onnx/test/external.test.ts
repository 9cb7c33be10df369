import { describe, expect, it, onTestFinished } from "vitest";
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fromArray, stateDict, toNumbers } from "@qforge/ir";
import { DataLocation, DataType, importOnnx, type TensorProto } from "@qforge/onnx";
import { errorCode, node, qforgeError, tinyModel } from "./helpers.js";

const W = fromArray("float32", [2, 2], [1, 2, 3, 4]);
const W_BYTES = new Uint8Array(W.data.buffer, W.data.byteOffset, W.data.byteLength);

/** An initializer 'w' whose 16 bytes live in an external file. */
function externalW(location: string, offset?: string, length?: string): TensorProto {
  const entries = [{ key: "location", value: location }];
  if (offset !== undefined) entries.push({ key: "offset", value: offset });
  if (length !== undefined) entries.push({ key: "length", value: length });
  return { name: "w", dims: [2, 2], data_type: DataType.FLOAT, data_location: DataLocation.EXTERNAL, external_data: entries };
}

/** A model folder: model.onnx reading `w` from `init`, plus weights.bin = 16 junk bytes then W. */
function modelDir(init: TensorProto): { dir: string; model: string; bytes: Uint8Array } {
  const root = mkdtempSync(join(tmpdir(), "qforge-ext-"));
  onTestFinished(() => rmSync(root, { recursive: true, force: true }));
  const dir = join(root, "model");
  mkdirSync(dir);
  const bin = new Uint8Array(32);
  bin.fill(0xee, 0, 16);
  bin.set(W_BYTES, 16);
  writeFileSync(join(dir, "weights.bin"), bin);
  writeFileSync(join(root, "secret.bin"), bin);
  const bytes = tinyModel({ nodes: [node("MatMul", ["x", "w"], ["y"], {}, "mm")], inputs: [["x", DataType.FLOAT, [1, 2]]], outputs: ["y"], initializers: [init] });
  const model = join(dir, "model.onnx");
  writeFileSync(model, bytes);
  return { dir, model, bytes };
}

describe("external data", () => {
  it("reads an initializer from a file next to the model (path, or bytes + baseDir)", async () => {
    const { dir, model, bytes } = modelDir(externalW("weights.bin", "16", "16"));
    const ep = await importOnnx(model);
    expect(toNumbers(stateDict(ep).w!)).toEqual([1, 2, 3, 4]);
    expect(ep.graph.constants.w!.kind).toBe("parameter");
    const again = await importOnnx(bytes, { baseDir: dir });
    expect(toNumbers(stateDict(again).w!)).toEqual([1, 2, 3, 4]);
    // Bytes alone do not say where the model's folder is.
    expect(await qforgeError(importOnnx(bytes))).toMatchObject({ code: "BAD_MODEL", node: "w" });
  });

  it("reads to the end of the file without a length, and from sub-folders", async () => {
    const { dir, model } = modelDir(externalW("data/w.bin"));
    mkdirSync(join(dir, "data"));
    writeFileSync(join(dir, "data", "w.bin"), W_BYTES);
    expect(toNumbers(stateDict(await importOnnx(model)).w!)).toEqual([1, 2, 3, 4]);
  });

  it("reads external data of Constant tensors too", async () => {
    const root = mkdtempSync(join(tmpdir(), "qforge-ext-"));
    onTestFinished(() => rmSync(root, { recursive: true, force: true }));
    writeFileSync(join(root, "c.bin"), W_BYTES);
    const value = { ...externalW("c.bin"), name: "" };
    const bytes = tinyModel({
      nodes: [node("Constant", [], ["c"]), node("Add", ["x", "c"], ["y"])],
      inputs: [["x", DataType.FLOAT, [2, 2]]],
      outputs: ["y"],
    });
    // Patch the Constant's attribute to the external tensor through the decoded form.
    const { decodeModelProto, encodeModel } = await import("@qforge/onnx");
    const m = decodeModelProto(bytes);
    m.graph!.node![0]!.attribute = [{ name: "value", type: 4, t: value }];
    const file = join(root, "m.onnx");
    writeFileSync(file, encodeModel(m));
    const ep = await importOnnx(file);
    expect(toNumbers(ep.graph.constants.c!.tensor)).toEqual([1, 2, 3, 4]);
  });

  it("refuses absolute locations", async () => {
    const { dir, model } = modelDir(externalW("/etc/passwd"));
    expect(await qforgeError(importOnnx(model))).toMatchObject({ code: "PATH_ESCAPE", node: "w" });
    const { model: m2 } = modelDir(externalW(join(dir, "weights.bin")));
    expect(await errorCode(importOnnx(m2))).toBe("PATH_ESCAPE");
  });

  it("refuses ../ escapes, also through sub-folders", async () => {
    for (const loc of ["../secret.bin", "data/../../secret.bin", ".."]) {
      const { model } = modelDir(externalW(loc, "16", "16"));
      expect(await errorCode(importOnnx(model))).toBe("PATH_ESCAPE");
    }
  });

  it("refuses symlinks whose target lies outside the folder, accepts links inside it", async () => {
    const { dir, model } = modelDir(externalW("link.bin", "16", "16"));
    symlinkSync(join(dir, "..", "secret.bin"), join(dir, "link.bin"));
    expect(await qforgeError(importOnnx(model))).toMatchObject({ code: "PATH_ESCAPE", node: "w" });

    const viaDir = modelDir(externalW("outside/secret.bin", "16", "16"));
    symlinkSync(join(viaDir.dir, ".."), join(viaDir.dir, "outside"));
    expect(await errorCode(importOnnx(viaDir.model))).toBe("PATH_ESCAPE");

    const inside = modelDir(externalW("alias.bin", "16", "16"));
    symlinkSync(join(inside.dir, "weights.bin"), join(inside.dir, "alias.bin"));
    expect(toNumbers(stateDict(await importOnnx(inside.model)).w!)).toEqual([1, 2, 3, 4]);
  });

  it("bounds-checks offset and length against the file", async () => {
    const cases: [string | undefined, string | undefined][] = [
      ["40", "16"], // offset past the end
      ["24", "16"], // runs past the end
      ["16", "8"], // fewer bytes than dims need
      ["0", undefined], // to the end: 32 bytes for a 16-byte tensor
      ["abc", "16"], // not a byte count
      ["-1", "16"],
    ];
    for (const [offset, length] of cases) {
      const { model } = modelDir(externalW("weights.bin", offset, length));
      expect(await qforgeError(importOnnx(model))).toMatchObject({ code: "BAD_MODEL", node: "w" });
    }
  });

  it("reports missing files, missing locations and folders as typed errors", async () => {
    expect(await errorCode(importOnnx(modelDir(externalW("nope.bin")).model))).toBe("IO_ERROR");
    const noLoc: TensorProto = { ...externalW("x"), external_data: [{ key: "offset", value: "0" }] };
    expect(await errorCode(importOnnx(modelDir(noLoc).model))).toBe("BAD_MODEL");
    const folder = modelDir(externalW("sub"));
    mkdirSync(join(folder.dir, "sub"));
    expect(await errorCode(importOnnx(folder.model))).toBe("BAD_MODEL");
  });

  it("checks the declared size against maxTensorBytes before reading", async () => {
    const big: TensorProto = { ...externalW("weights.bin"), dims: [1 << 16, 1 << 16] };
    const { model } = modelDir(big);
    expect(await errorCode(importOnnx(model))).toBe("BAD_MODEL");
    const { model: small } = modelDir(externalW("weights.bin", "16", "16"));
    expect(await errorCode(importOnnx(small, { maxTensorBytes: 8 }))).toBe("BAD_MODEL");
    expect(await errorCode(importOnnx(small, { maxTensorBytes: 16 }))).toBe("ok");
  });
});
