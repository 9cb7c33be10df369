import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { DTYPES, fromArray, isQforgeError, numel, tensorsEqual, zeros, type DType, type Tensor } from "@qforge/ir";
import {
  DataType, decodeTensorProto, dtypeFromOnnx, encodeMessage, encodeTensor, int64ToBigInt, onnxFromDType,
  readTensorProto, tensorFromProto, type TensorProto,
} from "@qforge/onnx";

function code(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (isQforgeError(e)) return e.code;
    throw e;
  }
  return "no error";
}

function vals(t: Tensor): (number | bigint)[] {
  return Array.from(t.data as ArrayLike<number | bigint>);
}

const ONNX_DTYPES = DTYPES.filter((d) => onnxFromDType(d) !== undefined);

/** A tensor of `dtype` with random storage bytes (every bit pattern is a valid element). */
function arbTensor(dtype: DType): fc.Arbitrary<Tensor> {
  return fc.array(fc.integer({ min: 0, max: 5 }), { minLength: 0, maxLength: 3 }).chain((shape) => {
    const t = zeros(dtype, shape);
    const bytes = new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    return fc.uint8Array({ minLength: bytes.length, maxLength: bytes.length }).map((b) => {
      bytes.set(b);
      if (dtype === "bool") for (let i = 0; i < bytes.length; i++) bytes[i]! &= 1;
      return t;
    });
  });
}

describe("ONNX data types", () => {
  it("map both ways for every dtype ONNX has", () => {
    expect(ONNX_DTYPES).toEqual(expect.arrayContaining(["float32", "float16", "bfloat16", "int64", "bool", "int4", "uint4", "float8_e4m3fn"]));
    for (const d of ONNX_DTYPES) expect(dtypeFromOnnx(onnxFromDType(d)!)).toBe(d);
    expect(dtypeFromOnnx(DataType.STRING)).toBeUndefined();
    expect(dtypeFromOnnx(DataType.UINT64)).toBeUndefined();
    expect(dtypeFromOnnx(DataType.COMPLEX64)).toBeUndefined();
  });
});

describe("readTensorProto", () => {
  it("round-trips every ONNX dtype bit-exactly through raw_data", () => {
    for (const dtype of ONNX_DTYPES) {
      fc.assert(fc.property(arbTensor(dtype), (t) => {
        const back = readTensorProto(encodeTensor(t, "t"));
        expect(back.dtype).toBe(dtype);
        expect(back.shape).toEqual(t.shape);
        expect(tensorsEqual(back, t)).toBe(true);
      }), { numRuns: 25 });
    }
  });

  it("views aligned raw_data without copying and copies unaligned raw_data", () => {
    const t = fromArray("float32", [2, 2], [1, 2, 3, 4]);
    const bytes = encodeTensor(t);
    const proto = decodeTensorProto(bytes);
    const raw = proto.raw_data!;
    // Place the same raw bytes at an aligned and at an unaligned offset of a bigger buffer.
    const aligned = new Uint8Array(new ArrayBuffer(raw.length + 8), 8, raw.length);
    aligned.set(raw);
    const a = tensorFromProto({ ...proto, raw_data: aligned });
    expect(a.data.buffer).toBe(aligned.buffer);
    expect(Array.from(a.data as Float32Array)).toEqual([1, 2, 3, 4]);
    const unaligned = new Uint8Array(new ArrayBuffer(raw.length + 3), 3, raw.length);
    unaligned.set(raw);
    const u = tensorFromProto({ ...proto, raw_data: unaligned });
    expect(u.data.buffer).not.toBe(unaligned.buffer);
    expect(Array.from(u.data as Float32Array)).toEqual([1, 2, 3, 4]);
  });

  it("reads the typed data fields of each dtype", () => {
    const read = (p: TensorProto): Tensor => readTensorProto(encodeMessage("TensorProto", p));
    expect(vals(read({ dims: [2], data_type: DataType.FLOAT, float_data: [1.5, -2] }))).toEqual([1.5, -2]);
    expect(vals(read({ dims: [2], data_type: DataType.DOUBLE, double_data: [0.1, 1e300] }))).toEqual([0.1, 1e300]);
    const i64 = read({ dims: [3], data_type: DataType.INT64, int64_data: ["9223372036854775807", -1, 5] });
    expect(vals(i64)).toEqual([9223372036854775807n, -1n, 5n]);
    expect(vals(read({ dims: [2], data_type: DataType.UINT32, uint64_data: [4294967295, 7] }))).toEqual([4294967295, 7]);
    expect(vals(read({ dims: [3], data_type: DataType.INT8, int32_data: [-128, 127, -1] }))).toEqual([-128, 127, -1]);
    expect(vals(read({ dims: [2], data_type: DataType.UINT8, int32_data: [255, 0] }))).toEqual([255, 0]);
    // float16 and bfloat16 keep their bit patterns (1.0 = 0x3c00 / 0x3f80).
    const h = read({ dims: [1], data_type: DataType.FLOAT16, int32_data: [0x3c00] });
    expect(h.dtype).toBe("float16");
    expect(h.data).toBeInstanceOf(Uint16Array);
    expect(h.data[0]).toBe(0x3c00);
    expect(read({ dims: [1], data_type: DataType.BFLOAT16, int32_data: [0x3f80] }).data[0]).toBe(0x3f80);
    const b = read({ dims: [3], data_type: DataType.BOOL, int32_data: [1, 0, 1] });
    expect(b.dtype).toBe("bool");
    expect(vals(b)).toEqual([1, 0, 1]);
    // int4: two elements per int32_data entry, first in the low nibble (as qforge packs them).
    const i4 = read({ dims: [3], data_type: DataType.INT4, int32_data: [0x7f, 0x08] });
    expect(i4.dtype).toBe("int4");
    expect(vals(i4)).toEqual([0x7f, 0x08]);
  });

  it("reads bool raw bytes other than 0/1 as true", () => {
    const t = tensorFromProto({ dims: [3], data_type: DataType.BOOL, raw_data: new Uint8Array([0, 2, 255]) });
    expect(vals(t)).toEqual([0, 1, 1]);
  });

  it("reports malformed tensors as BAD_MODEL and non-numeric dtypes as UNSUPPORTED", () => {
    expect(code(() => tensorFromProto({ dims: [3], data_type: DataType.FLOAT, raw_data: new Uint8Array(8) }))).toBe("BAD_MODEL");
    expect(code(() => tensorFromProto({ dims: [3], data_type: DataType.FLOAT, float_data: [1] }))).toBe("BAD_MODEL");
    expect(code(() => tensorFromProto({ dims: [2], data_type: DataType.INT64, float_data: [1, 2] }))).toBe("BAD_MODEL");
    expect(code(() => tensorFromProto({ dims: [-1], data_type: DataType.FLOAT }))).toBe("BAD_MODEL");
    expect(code(() => tensorFromProto({ dims: [1], data_type: 0 }))).toBe("BAD_MODEL");
    expect(code(() => tensorFromProto({ dims: [1], data_type: 99 }))).toBe("BAD_MODEL");
    expect(code(() => tensorFromProto({ dims: [1], data_type: DataType.STRING, string_data: [new Uint8Array([65])] }))).toBe("UNSUPPORTED");
    expect(code(() => tensorFromProto({ dims: [1], data_type: DataType.UINT64, uint64_data: [1] }))).toBe("UNSUPPORTED");
    expect(code(() => tensorFromProto({ dims: [1], data_type: DataType.COMPLEX64, float_data: [1, 2] }))).toBe("UNSUPPORTED");
    expect(code(() => tensorFromProto({ dims: [1], data_type: DataType.FLOAT, segment: { begin: 0, end: 1 }, float_data: [1] }))).toBe("UNSUPPORTED");
    expect(code(() => tensorFromProto({ dims: [1], data_type: DataType.FLOAT, data_location: 7, float_data: [1] }))).toBe("BAD_MODEL");
  });

  it("refuses declared sizes over maxTensorBytes before allocating", () => {
    const huge: TensorProto = { name: "w", dims: [1 << 20, 1 << 20], data_type: DataType.FLOAT, raw_data: new Uint8Array(4) };
    expect(code(() => tensorFromProto(huge))).toBe("BAD_MODEL");
    const small: TensorProto = { dims: [4], data_type: DataType.FLOAT, float_data: [1, 2, 3, 4] };
    expect(code(() => tensorFromProto(small, { maxTensorBytes: 15 }))).toBe("BAD_MODEL");
    expect(numel(tensorFromProto(small, { maxTensorBytes: 16 }).shape)).toBe(4);
    expect(code(() => tensorFromProto({ dims: ["99999999999999999999"], data_type: DataType.FLOAT }))).toBe("BAD_MODEL");
  });

  it("keeps int64 extremes exact", () => {
    expect(int64ToBigInt({ low: -1, high: 0x7fffffff })).toBe(9223372036854775807n);
    expect(int64ToBigInt({ low: 0, high: -0x80000000 })).toBe(-9223372036854775808n);
    expect(int64ToBigInt({ low: -1, high: -1, unsigned: true })).toBe(18446744073709551615n);
    const t = fromArray("int64", [2], [-9223372036854775808n, 9223372036854775807n]);
    expect(vals(readTensorProto(encodeTensor(t)))).toEqual([-9223372036854775808n, 9223372036854775807n]);
  });

  it("treats truncated tensor bytes as BAD_MODEL", () => {
    const bytes = encodeTensor(fromArray("float32", [8], [1, 2, 3, 4, 5, 6, 7, 8]), "x");
    for (const n of [1, 5, bytes.length - 1]) expect(code(() => readTensorProto(bytes.subarray(0, n)))).toBe("BAD_MODEL");
  });
});
