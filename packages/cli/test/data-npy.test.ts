import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { fromArray, toNumbers, type DType } from "@qforge/ir";
import { encodeNpy, readNpy } from "@qforge/cli";

/** Files written by numpy 2.4 (np.save, and np.lib.format.write_array(version=(2, 0)) for v2). */
const NUMPY = {
  f4: "k05VTVBZAQB2AHsnZGVzY3InOiAnPGY0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDIsIDMpLCB9ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAMA/AAAAwAAAQEAAAIBAAACoQAAAwMA=",
  u1: "k05VTVBZAQB2AHsnZGVzY3InOiAnfHUxJywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDMsKSwgfSAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAgP8=",
  i8: "k05VTVBZAQB2AHsnZGVzY3InOiAnPGk4JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDIsIDIpLCB9ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAAAAAP///wEAAAAAAAAAAgAAAAAAAAADAAAAAAAAAA==",
  f8v2: "k05VTVBZAgB0AAAAeydkZXNjcic6ICc8ZjgnLCAnZm9ydHJhbl9vcmRlcic6IEZhbHNlLCAnc2hhcGUnOiAoKSwgfSAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAqamZmZmZm5Pw==",
  bigEndian: "k05VTVBZAQB2AHsnZGVzY3InOiAnPmY0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDIsKSwgfSAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAo/gAAAQAAAAA==",
  fortran: "k05VTVBZAQB2AHsnZGVzY3InOiAnPGY0JywgJ2ZvcnRyYW5fb3JkZXInOiBUcnVlLCAnc2hhcGUnOiAoMiwgMyksIH0gICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAAAAAABAQAAAgD8AAIBAAAAAQAAAoEA=",
  int32: "k05VTVBZAQB2AHsnZGVzY3InOiAnPGk0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDIsKSwgfSAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoBAAAAAgAAAA==",
};
const bytes = (k: keyof typeof NUMPY): Uint8Array => new Uint8Array(Buffer.from(NUMPY[k], "base64"));

describe("NPY reader", () => {
  it("reads numpy's files: float32, uint8, int64, and a v2 float64 scalar", () => {
    const f4 = readNpy(bytes("f4"), "f4.npy");
    expect(f4.dtype).toBe("float32");
    expect(f4.shape).toEqual([2, 3]);
    expect(toNumbers(f4)).toEqual([1.5, -2, 3, 4, 5.25, -6]);
    const u1 = readNpy(bytes("u1"));
    expect([u1.dtype, u1.shape, toNumbers(u1)]).toEqual(["uint8", [3], [0, 128, 255]]);
    const i8 = readNpy(bytes("i8"));
    expect(i8.dtype).toBe("int64");
    expect(Array.from(i8.data as BigInt64Array)).toEqual([-(2n ** 40n), 1n, 2n, 3n]);
    const f8 = readNpy(bytes("f8v2"));
    expect([f8.dtype, f8.shape, toNumbers(f8)]).toEqual(["float64", [], [0.1]]);
  });

  it("writes what numpy writes, byte for byte", () => {
    const t = fromArray("float32", [2, 3], [1.5, -2, 3, 4, 5.25, -6]);
    expect(Buffer.from(encodeNpy(t)).toString("base64")).toBe(NUMPY.f4);
    expect(Buffer.from(encodeNpy(fromArray("uint8", [3], [0, 128, 255]))).toString("base64")).toBe(NUMPY.u1);
  });

  it("refuses big-endian, Fortran order and other dtypes as UNSUPPORTED naming the file", () => {
    expect(() => readNpy(bytes("bigEndian"), "be.npy")).toThrow(/UNSUPPORTED: be\.npy: big-endian/);
    expect(() => readNpy(bytes("fortran"), "f.npy")).toThrow(/UNSUPPORTED: f\.npy: Fortran-order/);
    expect(() => readNpy(bytes("int32"), "i.npy")).toThrow(/UNSUPPORTED: i\.npy: dtype '<i4'/);
  });

  it("refuses truncated and foreign bytes as BAD_DATA naming the file", () => {
    const f4 = bytes("f4");
    expect(() => readNpy(f4.subarray(0, f4.length - 1), "cut.npy")).toThrow(/BAD_DATA: cut\.npy: .*needs 24 data bytes, the file has 23/);
    expect(() => readNpy(new TextEncoder().encode("hello world"), "x.npy")).toThrow(/BAD_DATA: x\.npy: not an NPY file/);
    expect(() => readNpy(f4.subarray(0, 40), "h.npy")).toThrow(/BAD_DATA: h\.npy: truncated NPY header/);
  });

  it("round-trips random arrays of every supported dtype (fast-check)", () => {
    const dtypes: DType[] = ["float32", "float64", "int64", "uint8"];
    const value = (d: DType): fc.Arbitrary<number> => d === "float32" ? fc.float({ noNaN: true }).map(Math.fround)
      : d === "float64" ? fc.double({ noNaN: true })
      : d === "int64" ? fc.integer({ min: -(2 ** 31), max: 2 ** 31 })
      : fc.integer({ min: 0, max: 255 });
    const arb = fc.constantFrom(...dtypes).chain((dtype) =>
      fc.array(fc.integer({ min: 0, max: 4 }), { maxLength: 4 }).chain((shape) => {
        const n = shape.reduce((a, b) => a * b, 1);
        return fc.record({ dtype: fc.constant(dtype), shape: fc.constant(shape), values: fc.array(value(dtype), { minLength: n, maxLength: n }) });
      }));
    fc.assert(fc.property(arb, ({ dtype, shape, values }) => {
      const t = fromArray(dtype, shape, values);
      const back = readNpy(encodeNpy(t), "rt.npy");
      expect(back.dtype).toBe(dtype);
      expect(back.shape).toEqual(shape);
      expect(toNumbers(back)).toEqual(toNumbers(t));
      // numpy aligns the data to 64 bytes
      const enc = encodeNpy(t);
      expect((enc.length - t.data.byteLength) % 64).toBe(0);
    }), { numRuns: 200 });
  });
});
