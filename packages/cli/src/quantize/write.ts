/**
 * Writing an output file atomically: the bytes go to a temporary file in the destination's folder
 * (same file system, so the rename is atomic), are flushed, and the temporary file is renamed over
 * the destination. A reader sees the old file or the new one, never half a model; on any error the
 * temporary file is removed and the destination is untouched.
 */
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { basename, dirname, join, resolve } from "node:path";
import { QforgeError } from "@qforge/ir";

/** The temporary name used while writing `path` (hidden, unique per call). */
export function tempPathFor(path: string): string {
  const abs = resolve(path);
  return join(dirname(abs), `.${basename(abs)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
}

/** Writes `bytes` to `path` atomically (see the module comment); failures are IO_ERROR naming `path`. */
export function writeFileAtomic(path: string, bytes: Uint8Array | string): void {
  const tmp = tempPathFor(path);
  let fd: number | undefined;
  try {
    fd = openSync(tmp, "wx", 0o644);
    const data = typeof bytes === "string" ? Buffer.from(bytes, "utf8") : bytes;
    let off = 0;
    while (off < data.length) off += writeSync(fd, data, off, data.length - off);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
  } catch (e) {
    if (fd !== undefined) {
      try {
        closeSync(fd);
      } catch {
        // already failing: the original error is the one to report
      }
    }
    rmSync(tmp, { force: true });
    throw new QforgeError("IO_ERROR", `cannot write '${path}': ${(e as Error).message}`, { node: path, cause: e });
  }
}
