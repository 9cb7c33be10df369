/**
 * NumPy's .npy format (numpy/lib/format.py, "NPY format version 1.0 / 2.0 / 3.0"): the magic string
 * `\x93NUMPY`, a major and minor version byte, the header length (uint16 little-endian in v1, uint32
 * in v2 and v3), then an ASCII (v3: UTF-8) Python dict literal
 * `{'descr': '<f4', 'fortran_order': False, 'shape': (1, 3, 48, 320), }` padded with spaces and a
 * newline so that the data starts at a multiple of 64 bytes, then the raw elements.
 *
 * qforge reads what calibration data needs: little-endian float32, float64, int64 and uint8 in C
 * order. Anything else (big-endian, Fortran order, other dtypes, object arrays) is a typed error
 * naming the file, never a guess.
 */
import { readFileSync } from "node:fs";
import { numel, QforgeError, tensor, type DType, type Tensor } from "@qforge/ir";

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

/** The descr strings qforge reads and writes, with the qforge dtype and element size. */
const DESCRS: ReadonlyMap<string, { dtype: DType; bytes: number }> = new Map([
  ["<f4", { dtype: "float32", bytes: 4 }],
  ["<f8", { dtype: "float64", bytes: 8 }],
  ["<i8", { dtype: "int64", bytes: 8 }],
  ["|u1", { dtype: "uint8", bytes: 1 }],
  ["<u1", { dtype: "uint8", bytes: 1 }],
]);

/** descr of each dtype `encodeNpy` writes (numpy's own spelling: `|u1` for one-byte types). */
const DESCR_OF: Readonly<Partial<Record<DType, string>>> = { float32: "<f4", float64: "<f8", int64: "<i8", uint8: "|u1" };

function bad(file: string, message: string, hint?: string): never {
  throw new QforgeError("BAD_DATA", `${file}: ${message}`, { node: file, hint });
}

function unsupported(file: string, message: string): never {
  throw new QforgeError("UNSUPPORTED", `${file}: ${message}`, {
    node: file,
    hint: "save C-order little-endian float32, float64, int64 or uint8 arrays (numpy.save(f, np.ascontiguousarray(a, dtype=np.float32)))",
  });
}

interface NpyHeader {
  readonly descr: string;
  readonly fortranOrder: boolean;
  readonly shape: number[];
}

/** Parses the header dict: only the three keys numpy writes, in any order, with Python literal syntax. */
function parseHeader(text: string, file: string): NpyHeader {
  const body = text.trim();
  if (!body.startsWith("{") || !body.endsWith("}")) bad(file, `the NPY header is not a dict: ${JSON.stringify(body.slice(0, 80))}`);
  const descr = /['"]descr['"]\s*:\s*(['"])([^'"]*)\1/.exec(body)?.[2];
  const fortran = /['"]fortran_order['"]\s*:\s*(True|False)/.exec(body)?.[1];
  const shapeText = /['"]shape['"]\s*:\s*\(([^)]*)\)/.exec(body)?.[1];
  if (descr === undefined) {
    // An object array or a structured dtype has a list here instead of a string.
    if (/['"]descr['"]\s*:\s*\[/.test(body)) unsupported(file, "structured NPY dtypes are not supported");
    bad(file, "the NPY header has no 'descr'");
  }
  if (fortran === undefined) bad(file, "the NPY header has no 'fortran_order'");
  if (shapeText === undefined) bad(file, "the NPY header has no 'shape' tuple");
  const parts = shapeText.split(",").map((s) => s.trim()).filter((s) => s !== "");
  const shape = parts.map((p) => {
    const d = /^\d+L?$/.test(p) ? Number.parseInt(p, 10) : NaN;
    if (!Number.isSafeInteger(d)) bad(file, `bad dimension '${p}' in the NPY shape (${shapeText})`);
    return d;
  });
  return { descr, fortranOrder: fortran === "True", shape };
}

/** Decodes .npy bytes into a tensor; `file` names the source in errors. The tensor owns its storage. */
export function readNpy(bytes: Uint8Array, file = "<npy>"): Tensor {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) bad(file, "not an NPY file (no \\x93NUMPY magic)");
  const major = bytes[6]!;
  const minor = bytes[7]!;
  if (major < 1 || major > 3) unsupported(file, `NPY format version ${major}.${minor} is not supported (1.0, 2.0 and 3.0 are)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const lenBytes = major === 1 ? 2 : 4;
  if (bytes.length < 8 + lenBytes) bad(file, "truncated NPY header");
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = 8 + lenBytes + headerLen;
  if (start > bytes.length) bad(file, `truncated NPY header (${headerLen} bytes declared, ${bytes.length - 8 - lenBytes} present)`);
  const headerBytes = bytes.subarray(8 + lenBytes, start);
  const text = new TextDecoder(major === 3 ? "utf-8" : "latin1").decode(headerBytes);
  const header = parseHeader(text, file);
  const kind = DESCRS.get(header.descr);
  if (kind === undefined) {
    const why = header.descr.startsWith(">") ? "big-endian data" : `dtype '${header.descr}'`;
    unsupported(file, `${why} is not supported`);
  }
  if (header.fortranOrder && header.shape.filter((d) => d !== 1).length > 1) {
    unsupported(file, "Fortran-order arrays are not supported");
  }
  const n = numel(header.shape);
  const want = n * kind.bytes;
  const have = bytes.length - start;
  if (have !== want) bad(file, `shape (${header.shape.join(", ")}) of ${kind.dtype} needs ${want} data bytes, the file has ${have}`);
  // Copy into a buffer of its own: the data offset is aligned relative to the file, not to the
  // buffer, and `bytes` may be a view of a larger (pooled) Buffer.
  const raw = new Uint8Array(want);
  raw.set(bytes.subarray(start, start + want));
  const data = kind.dtype === "float32" ? new Float32Array(raw.buffer)
    : kind.dtype === "float64" ? new Float64Array(raw.buffer)
    : kind.dtype === "int64" ? new BigInt64Array(raw.buffer)
    : raw;
  return tensor(kind.dtype, header.shape, data);
}

/** Reads a .npy file (IO problems are IO_ERROR naming it). */
export function readNpyFile(file: string): Tensor {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    throw new QforgeError("IO_ERROR", `cannot read '${file}': ${(e as Error).message}`, { node: file, cause: e });
  }
  return readNpy(bytes, file);
}

/**
 * Encodes a float32, float64, int64 or uint8 tensor as NPY: version 1.0 when the header fits its
 * 16-bit length, else 2.0, with the data 64-byte aligned as numpy's `write_array` does.
 */
export function encodeNpy(t: Tensor): Uint8Array {
  const descr = DESCR_OF[t.dtype];
  if (descr === undefined) throw new QforgeError("UNSUPPORTED", `encodeNpy: dtype ${t.dtype} is not one of float32, float64, int64, uint8`);
  const shape = t.shape.length === 1 ? `(${t.shape[0]},)` : `(${t.shape.join(", ")})`;
  const dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  const encodeWith = (lenBytes: number): Uint8Array => {
    const unpadded = MAGIC.length + 2 + lenBytes + dict.length + 1; // + the final newline
    const pad = (64 - (unpadded % 64)) % 64;
    const header = `${dict}${" ".repeat(pad)}\n`;
    const data = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    const out = new Uint8Array(MAGIC.length + 2 + lenBytes + header.length + data.length);
    out.set(MAGIC, 0);
    out[6] = lenBytes === 2 ? 1 : 2;
    out[7] = 0;
    const view = new DataView(out.buffer);
    if (lenBytes === 2) view.setUint16(8, header.length, true);
    else view.setUint32(8, header.length, true);
    for (let i = 0; i < header.length; i++) out[8 + lenBytes + i] = header.charCodeAt(i);
    out.set(data, 8 + lenBytes + header.length);
    return out;
  };
  return dict.length + 64 < 0xffff ? encodeWith(2) : encodeWith(4);
}
