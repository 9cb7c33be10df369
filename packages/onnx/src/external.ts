import { closeSync, fstatSync, openSync, readSync, realpathSync, statSync } from "node:fs";
import { isAbsolute, relative, resolve, sep } from "node:path";
import { QforgeError } from "@qforge/ir";
import type { StringStringEntryProto } from "./proto/types.js";

/** Where an external tensor's bytes live (TensorProto.external_data, onnx/external_data_helper.py keys). */
export interface ExternalDataRef {
  readonly location: string;
  readonly offset: number;
  /** Undefined: to the end of the file. */
  readonly length: number | undefined;
}

/** Parses the key/value list; unknown keys (checksum, basepath) are ignored like onnx's loader does. */
export function parseExternalData(entries: readonly StringStringEntryProto[], tensor: string): ExternalDataRef {
  let location: string | undefined;
  let offset = 0;
  let length: number | undefined;
  for (const e of entries) {
    const key = e.key ?? "";
    const value = e.value ?? "";
    if (key === "location") location = value;
    else if (key === "offset") offset = parseByteCount(value, "offset", tensor);
    else if (key === "length") length = parseByteCount(value, "length", tensor);
  }
  if (location === undefined || location === "") {
    throw new QforgeError("BAD_MODEL", `tensor '${tensor}' is stored externally but names no location`, { node: tensor });
  }
  return { location, offset, length };
}

function parseByteCount(s: string, what: string, tensor: string): number {
  if (!/^\d{1,16}$/.test(s) || Number(s) > Number.MAX_SAFE_INTEGER) {
    throw new QforgeError("BAD_MODEL", `tensor '${tensor}': external data ${what} '${s}' is not a byte count`, { node: tensor });
  }
  return Number(s);
}

function inside(base: string, target: string): boolean {
  const rel = relative(base, target);
  return rel !== "" && rel !== ".." && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
}

/**
 * Resolves `location` against the model's folder and refuses anything that leaves it: absolute paths,
 * `..` segments that climb out, and symlinks whose target lies outside (checked on the realpath of
 * both ends, the way onnx's `_validate_external_data_path` guards against escapes).
 */
export function resolveExternalPath(baseDir: string, location: string, tensor: string): string {
  if (location.includes("\0")) {
    throw new QforgeError("PATH_ESCAPE", `tensor '${tensor}': external data location contains a NUL byte`, { node: tensor });
  }
  if (isAbsolute(location) || /^[A-Za-z]:[\\/]/.test(location) || location.startsWith("\\")) {
    throw new QforgeError("PATH_ESCAPE", `tensor '${tensor}': external data location '${location}' is absolute`, {
      node: tensor, hint: "external data must be a path relative to the model's folder",
    });
  }
  const base = resolve(baseDir);
  const full = resolve(base, location);
  if (!inside(base, full)) {
    throw new QforgeError("PATH_ESCAPE", `tensor '${tensor}': external data location '${location}' resolves outside the model's folder`, {
      node: tensor, hint: "external data must be a path relative to the model's folder",
    });
  }
  let realBase: string;
  let realFull: string;
  try {
    realBase = realpathSync(base);
    realFull = realpathSync(full);
  } catch (e) {
    throw new QforgeError("IO_ERROR", `tensor '${tensor}': cannot open external data '${location}': ${(e as Error).message}`, { node: tensor, cause: e });
  }
  if (!inside(realBase, realFull)) {
    throw new QforgeError("PATH_ESCAPE", `tensor '${tensor}': external data location '${location}' is a link to '${realFull}', outside the model's folder`, {
      node: tensor, hint: "external data must be a path relative to the model's folder",
    });
  }
  return realFull;
}

/**
 * Reads exactly `expectedBytes` bytes of an external tensor into fresh (hence aligned) storage after
 * checking the path and that offset/length lie within the file.
 */
export function readExternalData(ref: ExternalDataRef, baseDir: string | undefined, expectedBytes: number, tensor: string): Uint8Array {
  if (baseDir === undefined) {
    throw new QforgeError("BAD_MODEL", `tensor '${tensor}' is stored in external data '${ref.location}', but the model's folder is unknown`, {
      node: tensor, hint: "import the model from a file path, or pass { baseDir } when importing bytes",
    });
  }
  const path = resolveExternalPath(baseDir, ref.location, tensor);
  if (!statSync(path).isFile()) {
    throw new QforgeError("BAD_MODEL", `tensor '${tensor}': external data '${ref.location}' is not a regular file`, { node: tensor });
  }
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    throw new QforgeError("IO_ERROR", `tensor '${tensor}': cannot open external data '${ref.location}': ${(e as Error).message}`, { node: tensor, cause: e });
  }
  try {
    const size = fstatSync(fd).size;
    if (ref.offset > size) {
      throw new QforgeError("BAD_MODEL", `tensor '${tensor}': external data offset ${ref.offset} is past the end of '${ref.location}' (${size} bytes)`, { node: tensor });
    }
    const length = ref.length ?? size - ref.offset;
    if (ref.offset + length > size) {
      throw new QforgeError("BAD_MODEL", `tensor '${tensor}': external data [${ref.offset}, ${ref.offset + length}) lies outside '${ref.location}' (${size} bytes)`, { node: tensor });
    }
    if (length !== expectedBytes) {
      throw new QforgeError("BAD_MODEL", `tensor '${tensor}': external data holds ${length} bytes, its dtype and dims need ${expectedBytes}`, { node: tensor });
    }
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const n = readSync(fd, out, done, Math.min(length - done, 1 << 30), ref.offset + done);
      if (n === 0) {
        throw new QforgeError("IO_ERROR", `tensor '${tensor}': external data '${ref.location}' ended after ${done} of ${length} bytes`, { node: tensor });
      }
      done += n;
    }
    return out;
  } finally {
    closeSync(fd);
  }
}
