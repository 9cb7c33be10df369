import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  FLOAT8_E4M3FN_MAX, FLOAT8_E5M2_MAX,
  bfloat16BitsToFloat32, castNumber, decodeElement, encodeElement,
  float16BitsToFloat32, float32ToBfloat16Bits, float32ToFloat16Bits,
  float32ToFloat8E4M3FnBits, float32ToFloat8E5M2Bits, float8E4M3FnBitsToFloat32, float8E5M2BitsToFloat32,
  packSubByte, saturatingCast, unpackSubByte,
} from "../src/convert.js";
import { DTYPES, dtypeInfo, type DType } from "../src/dtype.js";
import { isQforgeError } from "../src/errors.js";
import { cast, fromArray, getElement, setElement, zeros } from "../src/tensor.js";

// ---------------------------------------------------------------------------------------------
// An independent model of each float format: decode by the textbook formula, encode by searching
// the sorted table of representable values (not by bit arithmetic as convert.ts does).

interface Fmt {
  name: string;
  bits: number;
  expBits: number;
  mantBits: number;
  bias: number;
  ieee: boolean; // all-ones exponent = Inf/NaN (else only S.1111.111 is NaN)
  nan: number;
  encode(x: number): number;
  decode(b: number): number;
}

const FORMATS: Fmt[] = [
  { name: "float16", bits: 16, expBits: 5, mantBits: 10, bias: 15, ieee: true, nan: 0x7e00, encode: float32ToFloat16Bits, decode: float16BitsToFloat32 },
  { name: "bfloat16", bits: 16, expBits: 8, mantBits: 7, bias: 127, ieee: true, nan: 0x7fc0, encode: float32ToBfloat16Bits, decode: bfloat16BitsToFloat32 },
  { name: "float8_e4m3fn", bits: 8, expBits: 4, mantBits: 3, bias: 7, ieee: false, nan: 0x7f, encode: (x) => float32ToFloat8E4M3FnBits(x), decode: float8E4M3FnBitsToFloat32 },
  { name: "float8_e5m2", bits: 8, expBits: 5, mantBits: 2, bias: 15, ieee: true, nan: 0x7f, encode: (x) => float32ToFloat8E5M2Bits(x), decode: float8E5M2BitsToFloat32 },
];

function refDecode(f: Fmt, b: number): number {
  const s = (b >> (f.bits - 1)) & 1 ? -1 : 1;
  const e = (b >> f.mantBits) & ((1 << f.expBits) - 1);
  const m = b & ((1 << f.mantBits) - 1);
  const eMax = (1 << f.expBits) - 1;
  if (f.ieee && e === eMax) return m === 0 ? s * Infinity : NaN;
  if (!f.ieee && e === eMax && m === (1 << f.mantBits) - 1) return NaN;
  if (e === 0) return s * (m / Math.pow(2, f.mantBits)) * Math.pow(2, 1 - f.bias);
  return s * (1 + m / Math.pow(2, f.mantBits)) * Math.pow(2, e - f.bias);
}

/** Positive finite patterns in increasing order (pattern order = value order for positives). */
function positiveFinite(f: Fmt): number[] {
  const out: number[] = [];
  for (let b = 0; b < 1 << (f.bits - 1); b++) if (Number.isFinite(refDecode(f, b))) out.push(b);
  return out;
}

const TABLES = new Map(FORMATS.map((f) => [f.name, positiveFinite(f)]));

/**
 * Nearest representable value, ties to the even pattern, with the overflow rule expressed as a
 * virtual pattern just past the largest finite one (max + one ulp): choosing it means overflow.
 */
function refEncode(f: Fmt, x: number, overflow: "inf" | "nan" | "saturate"): number {
  const sign = 1 << (f.bits - 1);
  if (Number.isNaN(x)) return f.nan;
  const xf = Math.fround(x); // PyTorch converts through float
  const neg = xf < 0 || Object.is(xf, -0);
  const a = Math.abs(xf);
  const table = TABLES.get(f.name)!;
  const maxBits = table[table.length - 1]!;
  const maxVal = refDecode(f, maxBits);
  const ulpAtMax = maxVal - refDecode(f, maxBits - 1);
  const over = (): number => {
    const mag = overflow === "saturate" ? maxBits : overflow === "nan" ? f.nan : ((1 << f.expBits) - 1) << f.mantBits;
    return overflow === "nan" ? (neg ? sign : 0) | f.nan : (neg ? sign : 0) | mag;
  };
  let chosen: number;
  if (a === Infinity) return over();
  if (a >= maxVal) {
    const mid = maxVal + ulpAtMax / 2;
    if (a < mid) chosen = maxBits;
    else if (a > mid) return over();
    else if (((maxBits + 1) & 1) === 0) return over();
    else chosen = maxBits;
  } else {
    // binary search: largest index with value <= a
    let lo = 0;
    let hi = table.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (refDecode(f, table[mid]!) <= a) lo = mid;
      else hi = mid - 1;
    }
    const lb = table[lo]!;
    const ub = table[lo + 1]!;
    const dl = a - refDecode(f, lb);
    const du = refDecode(f, ub) - a;
    chosen = dl < du ? lb : du < dl ? ub : (lb & 1) === 0 ? lb : ub;
  }
  return (neg ? sign : 0) | chosen;
}

describe("narrow float formats: decode", () => {
  for (const f of FORMATS) {
    it(`${f.name}: every bit pattern decodes to the textbook value`, () => {
      for (let b = 0; b < 1 << f.bits; b++) {
        const want = refDecode(f, b);
        const got = f.decode(b);
        if (Number.isNaN(want)) expect(got, `0x${b.toString(16)}`).toBeNaN();
        else expect(Object.is(got, want), `0x${b.toString(16)}: ${got} vs ${want}`).toBe(true);
      }
    });
  }

  it("known constants", () => {
    expect(float16BitsToFloat32(0x3c00)).toBe(1);
    expect(float16BitsToFloat32(0x7bff)).toBe(65504);
    expect(float16BitsToFloat32(0x0001)).toBe(2 ** -24);
    expect(float16BitsToFloat32(0x0400)).toBe(2 ** -14);
    expect(float16BitsToFloat32(0x7c00)).toBe(Infinity);
    expect(float16BitsToFloat32(0xfc00)).toBe(-Infinity);
    expect(Object.is(float16BitsToFloat32(0x8000), -0)).toBe(true);
    expect(float16BitsToFloat32(0x7e00)).toBeNaN();
    expect(bfloat16BitsToFloat32(0x3f80)).toBe(1);
    expect(bfloat16BitsToFloat32(0x7f7f)).toBe(3.3895313892515355e38);
    expect(bfloat16BitsToFloat32(0x0001)).toBe(2 ** -133);
    expect(bfloat16BitsToFloat32(0x7f80)).toBe(Infinity);
    expect(float8E4M3FnBitsToFloat32(0x7e)).toBe(448);
    expect(float8E4M3FnBitsToFloat32(0x7e)).toBe(FLOAT8_E4M3FN_MAX);
    expect(float8E4M3FnBitsToFloat32(0x01)).toBe(2 ** -9);
    expect(float8E4M3FnBitsToFloat32(0x08)).toBe(2 ** -6);
    expect(float8E4M3FnBitsToFloat32(0x78)).toBe(256); // e=1111 is finite in the fn format
    expect(float8E4M3FnBitsToFloat32(0x7f)).toBeNaN();
    expect(float8E4M3FnBitsToFloat32(0xff)).toBeNaN();
    expect(float8E5M2BitsToFloat32(0x7b)).toBe(FLOAT8_E5M2_MAX);
    expect(float8E5M2BitsToFloat32(0x7b)).toBe(57344);
    expect(float8E5M2BitsToFloat32(0x01)).toBe(2 ** -16);
    expect(float8E5M2BitsToFloat32(0x7c)).toBe(Infinity);
    expect(float8E5M2BitsToFloat32(0xfc)).toBe(-Infinity);
    expect(float8E5M2BitsToFloat32(0x7d)).toBeNaN();
  });
});

describe("narrow float formats: encode", () => {
  for (const f of FORMATS) {
    it(`${f.name}: every non-NaN pattern round-trips through its value; NaNs become the canonical NaN`, () => {
      for (let b = 0; b < 1 << f.bits; b++) {
        const v = f.decode(b);
        if (Number.isNaN(v)) expect(f.encode(v)).toBe(f.nan);
        else expect(f.encode(v), `0x${b.toString(16)}`).toBe(b);
      }
    });

    it(`${f.name}: exact midpoints round to the even pattern, anything off the midpoint to the nearer one`, () => {
      const table = TABLES.get(f.name)!;
      for (let k = 0; k + 1 < table.length; k++) {
        const lb = table[k]!;
        const ub = table[k + 1]!;
        const lo = f.decode(lb);
        const hi = f.decode(ub);
        const mid = (lo + hi) / 2;
        expect(Math.fround(mid)).toBe(mid); // the tie is representable in float32, so it reaches the rounding
        const even = (lb & 1) === 0 ? lb : ub;
        expect(f.encode(mid), `${f.name} tie ${lo}..${hi}`).toBe(even);
        expect(f.encode(-mid)).toBe(even | (1 << (f.bits - 1)));
        // one float32 ulp either side of the tie
        const below = nextFloat32Toward(mid, -Infinity);
        const above = nextFloat32Toward(mid, Infinity);
        if (below > lo) expect(f.encode(below)).toBe(lb);
        if (above < hi) expect(f.encode(above)).toBe(ub);
      }
    });

    it(`${f.name}: agrees with the table search on random doubles and floats (fast-check)`, () => {
      const overflow = f.name === "float8_e4m3fn" ? "nan" : "inf";
      fc.assert(
        fc.property(fc.oneof(fc.double(), fc.float().map(Number), fc.double({ min: -2 * refMax(f), max: 2 * refMax(f) })), (x) => {
          expect(f.encode(x)).toBe(refEncode(f, x, overflow));
        }),
        { numRuns: 2000 },
      );
    });

    it(`${f.name}: encode(decode(bits)) == bits for non-NaN bits (fast-check)`, () => {
      fc.assert(
        fc.property(fc.integer({ min: 0, max: 2 ** f.bits - 1 }), (b) => {
          fc.pre(!Number.isNaN(f.decode(b)));
          expect(f.encode(f.decode(b))).toBe(b);
        }),
        { numRuns: 1000 },
      );
    });

    it(`${f.name}: the encoded value is at least as near as both neighbours (fast-check)`, () => {
      fc.assert(
        fc.property(fc.double({ min: -refMax(f), max: refMax(f), noNaN: true }), (x) => {
          const xf = Math.fround(x);
          const b = f.encode(x);
          const r = f.decode(b);
          const mag = b & ((1 << (f.bits - 1)) - 1);
          for (const n of [mag - 1, mag + 1]) {
            if (n < 0) continue;
            const v = f.decode(n);
            if (!Number.isFinite(v)) continue;
            const signed = r < 0 || Object.is(r, -0) ? -v : v;
            expect(Math.abs(r - xf)).toBeLessThanOrEqual(Math.abs(signed - xf));
          }
        }),
        { numRuns: 1000 },
      );
    });
  }

  it("float16 specials: overflow threshold, signed zero, subnormal ties", () => {
    expect(float32ToFloat16Bits(65504)).toBe(0x7bff);
    expect(float32ToFloat16Bits(65519.99)).toBe(0x7bff);
    expect(float32ToFloat16Bits(65520)).toBe(0x7c00); // tie with the (odd) max goes up to Inf
    expect(float32ToFloat16Bits(-1e6)).toBe(0xfc00);
    expect(float32ToFloat16Bits(Infinity)).toBe(0x7c00);
    expect(float32ToFloat16Bits(-0)).toBe(0x8000);
    expect(float32ToFloat16Bits(2 ** -25)).toBe(0x0000); // half the smallest subnormal: tie to even (0)
    expect(float32ToFloat16Bits(-(2 ** -25))).toBe(0x8000);
    expect(float32ToFloat16Bits(1.5 * 2 ** -25)).toBe(0x0001);
    expect(float32ToFloat16Bits(3 * 2 ** -25)).toBe(0x0002); // tie between 1 and 2 -> 2
    expect(float32ToFloat16Bits(2 ** -14 - 2 ** -25)).toBe(0x0400); // rounds up into the normals
    expect(float32ToFloat16Bits(NaN)).toBe(0x7e00);
    expect(float32ToFloat16Bits(1 + 2 ** -11)).toBe(0x3c00); // tie, 1.0 is even
    expect(float32ToFloat16Bits(1 + 3 * 2 ** -11)).toBe(0x3c02);
  });

  it("bfloat16 follows c10 round_to_nearest_even", () => {
    expect(float32ToBfloat16Bits(1)).toBe(0x3f80);
    expect(float32ToBfloat16Bits(1 + 2 ** -8)).toBe(0x3f80); // tie -> even
    expect(float32ToBfloat16Bits(1 + 3 * 2 ** -8)).toBe(0x3f82);
    expect(float32ToBfloat16Bits(3.4028234663852886e38)).toBe(0x7f80); // FLT_MAX carries into Inf
    expect(float32ToBfloat16Bits(-Infinity)).toBe(0xff80);
    expect(float32ToBfloat16Bits(NaN)).toBe(0x7fc0);
    expect(float32ToBfloat16Bits(2 ** -149)).toBe(0); // float32 subnormals: bf16 has the float32 exponent range
    expect(float32ToBfloat16Bits(2 ** -133)).toBe(1);
    expect(float32ToBfloat16Bits(-(2 ** -126))).toBe(0x8080);
  });

  it("float8_e4m3fn: PyTorch's overflow rule (no Inf; overflow, Inf and NaN -> NaN) and saturation", () => {
    expect(float32ToFloat8E4M3FnBits(448)).toBe(0x7e);
    expect(float32ToFloat8E4M3FnBits(464)).toBe(0x7e); // tie between 448 (even) and 480 (would be 0x7F)
    expect(float32ToFloat8E4M3FnBits(464.01)).toBe(0x7f);
    expect(float32ToFloat8E4M3FnBits(480)).toBe(0x7f);
    expect(float32ToFloat8E4M3FnBits(-1000)).toBe(0xff);
    expect(float32ToFloat8E4M3FnBits(Infinity)).toBe(0x7f);
    expect(float32ToFloat8E4M3FnBits(-Infinity)).toBe(0xff);
    expect(float32ToFloat8E4M3FnBits(NaN)).toBe(0x7f);
    expect(float32ToFloat8E4M3FnBits(2 ** -10)).toBe(0x00); // half the smallest subnormal -> 0
    expect(float32ToFloat8E4M3FnBits(3 * 2 ** -10)).toBe(0x02);
    expect(float32ToFloat8E4M3FnBits(1e9, { saturate: true })).toBe(0x7e);
    expect(float32ToFloat8E4M3FnBits(470, { saturate: true })).toBe(0x7e);
    expect(float32ToFloat8E4M3FnBits(-Infinity, { saturate: true })).toBe(0xfe);
    expect(float32ToFloat8E4M3FnBits(NaN, { saturate: true })).toBe(0x7f);
    expect(float32ToFloat8E4M3FnBits(300, { saturate: true })).toBe(float32ToFloat8E4M3FnBits(300));
    expect(saturatingCast("float8_e4m3fn", 1e9)).toBe(448);
    expect(saturatingCast("float8_e4m3fn", -Infinity)).toBe(-448);
    expect(saturatingCast("float8_e4m3fn", 0.3)).toBe(0.3125);
    expect(saturatingCast("float8_e4m3fn", NaN)).toBeNaN();
  });

  it("float8_e5m2: overflow -> Inf, saturation -> ±57344", () => {
    expect(float32ToFloat8E5M2Bits(57344)).toBe(0x7b);
    expect(float32ToFloat8E5M2Bits(61439)).toBe(0x7b);
    expect(float32ToFloat8E5M2Bits(61440)).toBe(0x7c); // tie, max is odd -> Inf
    expect(float32ToFloat8E5M2Bits(-65536)).toBe(0xfc);
    expect(float32ToFloat8E5M2Bits(NaN)).toBe(0x7f);
    expect(float32ToFloat8E5M2Bits(Infinity, { saturate: true })).toBe(0x7b);
    expect(float32ToFloat8E5M2Bits(-1e6, { saturate: true })).toBe(0xfb);
    expect(saturatingCast("float8_e5m2", 1e6)).toBe(57344);
    expect(saturatingCast("float8_e5m2", 3)).toBe(3);
  });

  it("saturating fp8 casts equal clamp-then-cast (fast-check)", () => {
    fc.assert(
      fc.property(fc.double(), fc.constantFrom("float8_e4m3fn" as const, "float8_e5m2" as const), (x, dt) => {
        const max = dt === "float8_e4m3fn" ? 448 : 57344;
        const clamped = Number.isNaN(x) ? x : Math.min(max, Math.max(-max, x));
        const enc = dt === "float8_e4m3fn" ? float32ToFloat8E4M3FnBits : float32ToFloat8E5M2Bits;
        expect(enc(x, { saturate: true })).toBe(enc(clamped));
      }),
      { numRuns: 1000 },
    );
  });
});

function nextFloat32Toward(x: number, dir: number): number {
  const f = new Float32Array([x]);
  const u = new Int32Array(f.buffer);
  if (x === 0) return dir > 0 ? 2 ** -149 : -(2 ** -149);
  u[0]! += (x > 0) === (dir > 0) ? 1 : -1;
  return f[0]!;
}

function refMax(f: Fmt): number {
  const table = TABLES.get(f.name)!;
  return refDecode(f, table[table.length - 1]!);
}

// ---------------------------------------------------------------------------------------------

const INT_DTYPES = DTYPES.filter((d) => dtypeInfo(d).kind === "int" || dtypeInfo(d).kind === "uint");

/** Oracle for integer conversion: truncate, wrap modulo 2^bits via BigInt; NaN/Inf -> 0. */
function refInt(dtype: DType, v: number): number {
  const { bits, kind } = dtypeInfo(dtype);
  if (!Number.isFinite(v)) return 0;
  const t = BigInt(Math.trunc(v));
  return Number(kind === "int" ? BigInt.asIntN(bits, t) : BigInt.asUintN(bits, t));
}

describe("integer and bool targets", () => {
  it("truncates toward zero and wraps out-of-range values modulo 2^bits", () => {
    expect(castNumber("int8", 127.9)).toBe(127);
    expect(castNumber("int8", -128.9)).toBe(-128);
    expect(castNumber("int8", 128)).toBe(-128);
    expect(castNumber("int8", 200.7)).toBe(-56);
    expect(castNumber("uint8", -1)).toBe(255);
    expect(castNumber("uint8", 256)).toBe(0);
    expect(castNumber("uint8", -0.9)).toBe(0);
    expect(castNumber("int32", 2 ** 40 + 5)).toBe(5);
    expect(castNumber("uint32", -1)).toBe(4294967295);
    expect(castNumber("int64", 2 ** 63)).toBe(-(2 ** 63));
    expect(castNumber("int64", 1e300)).toBe(0); // 1e300 is a multiple of 2^64 as a double
    expect(castNumber("int4", 9)).toBe(-7);
    expect(castNumber("uint4", -1)).toBe(15);
    expect(castNumber("int1", 1)).toBe(-1);
    expect(castNumber("int7", -65.5)).toBe(63);
  });

  it("NaN and ±Inf become 0 for every integer dtype, and -0 becomes +0", () => {
    for (const d of INT_DTYPES) {
      for (const v of [NaN, Infinity, -Infinity]) expect(castNumber(d, v), `${d} ${v}`).toBe(0);
      expect(Object.is(castNumber(d, -0), 0), d).toBe(true);
      expect(Object.is(castNumber(d, -0.5), 0), d).toBe(true);
    }
  });

  it("matches the BigInt wrap oracle for every integer dtype (fast-check)", () => {
    fc.assert(
      fc.property(fc.constantFrom(...INT_DTYPES), fc.oneof(fc.double(), fc.integer(), fc.double({ min: -1e20, max: 1e20 })), (d, v) => {
        expect(castNumber(d, v)).toBe(refInt(d, v));
      }),
      { numRuns: 2000 },
    );
  });

  it("int64 storage accepts bigint and number", () => {
    const t = zeros("int64", [4]);
    setElement(t, 0, 2n ** 64n + 3n);
    setElement(t, 1, -7.9);
    setElement(t, 2, 2n ** 63n);
    setElement(t, 3, 9007199254740993n);
    expect([...(t.data as BigInt64Array)]).toEqual([3n, -7n, -(2n ** 63n), 9007199254740993n]);
    expect(getElement(t, 1)).toBe(-7);
    expect(castNumber("int8", 300n)).toBe(44);
    expect(castNumber("uint16", -1n)).toBe(65535);
    expect(castNumber("int3", 5n)).toBe(-3);
  });

  it("bool: nonzero (NaN included) -> 1", () => {
    expect(castNumber("bool", 0.1)).toBe(1);
    expect(castNumber("bool", -3)).toBe(1);
    expect(castNumber("bool", NaN)).toBe(1);
    expect(castNumber("bool", 0)).toBe(0);
    expect(castNumber("bool", -0)).toBe(0);
    expect(castNumber("bool", 0n)).toBe(0);
    expect(castNumber("bool", 5n)).toBe(1);
  });

  it("float targets: float32 rounds with Math.fround, float64 keeps the number, bigints convert", () => {
    expect(castNumber("float32", 0.1)).toBe(Math.fround(0.1));
    expect(castNumber("float64", 0.1)).toBe(0.1);
    expect(castNumber("float64", 2n ** 60n + 1n)).toBe(2 ** 60);
    expect(castNumber("float16", 0.1)).toBe(float16BitsToFloat32(0x2e66));
    expect(castNumber("bfloat16", 1n)).toBe(1);
  });
});

// ---------------------------------------------------------------------------------------------

const SUB_BYTE = DTYPES.filter((d) => dtypeInfo(d).packed);

/** Reference packing: one big little-endian integer with element i at bit i*bits. */
function refPack(dtype: DType, values: number[]): Uint8Array {
  const { bits } = dtypeInfo(dtype);
  let acc = 0n;
  values.forEach((v, i) => { acc |= BigInt.asUintN(bits, BigInt(v)) << BigInt(i * bits); });
  const out = new Uint8Array(Math.ceil((values.length * bits) / 8));
  for (let k = 0; k < out.length; k++) out[k] = Number((acc >> BigInt(8 * k)) & 0xffn);
  return out;
}

describe("packed sub-byte integers", () => {
  it("layout: low bits first; 3/5/6/7-bit types as a little-endian bit stream", () => {
    expect([...packSubByte("uint4", [1, 2, 3])]).toEqual([0x21, 0x03]);
    expect([...packSubByte("int4", [-1, 7])]).toEqual([0x7f]);
    expect([...packSubByte("uint2", [1, 2, 3, 0])]).toEqual([0x39]);
    expect([...packSubByte("uint1", [1, 0, 1, 1, 0, 0, 0, 0, 1])]).toEqual([0x0d, 0x01]);
    expect([...packSubByte("uint3", [7, 0, 5])]).toEqual([0x47, 0x01]);
    expect([...packSubByte("int3", [-1, -4, 3])]).toEqual([0xe7, 0x00]);
    expect([...packSubByte("uint7", [127, 1])]).toEqual([0xff, 0x00]);
    expect([...packSubByte("int6", [-32, 31])]).toEqual([0xe0, 0x07]);
    expect(unpackSubByte("int4", new Uint8Array([0x7f]), 2)).toEqual([-1, 7]);
    expect(unpackSubByte("int3", new Uint8Array([0xe7, 0x00]), 3)).toEqual([-1, -4, 3]);
  });

  for (const d of SUB_BYTE) {
    it(`${d}: pack matches the bit-stream reference, unpack inverts it, tensors read the same values (fast-check)`, () => {
      const { min, max, bits } = dtypeInfo(d);
      fc.assert(
        fc.property(fc.array(fc.integer({ min, max }), { maxLength: 40 }), (vals) => {
          const packed = packSubByte(d, vals);
          expect(packed.length).toBe(Math.ceil((vals.length * bits) / 8));
          expect([...packed]).toEqual([...refPack(d, vals)]);
          expect(unpackSubByte(d, packed, vals.length)).toEqual(vals);
          const t = fromArray(d, [vals.length], vals);
          expect([...t.data]).toEqual([...packed]);
          vals.forEach((v, i) => expect(getElement(t, i)).toBe(v));
        }),
        { numRuns: 200 },
      );
    });
  }

  it("setElement rewrites one element and leaves its neighbours alone", () => {
    for (const d of SUB_BYTE) {
      const { max } = dtypeInfo(d);
      const t = fromArray(d, [5], [max, max, max, max, max]);
      setElement(t, 2, 0);
      expect([0, 1, 2, 3, 4].map((i) => getElement(t, i)), d).toEqual([max, max, 0, max, max]);
    }
  });

  it("rejects out-of-range or fractional values, non-packed dtypes and short storage", () => {
    const code = (f: () => unknown): string | undefined => {
      try { f(); } catch (e) { return isQforgeError(e) ? e.code : "other"; }
      return undefined;
    };
    expect(code(() => packSubByte("int4", [8]))).toBe("BAD_DATA");
    expect(code(() => packSubByte("uint2", [-1]))).toBe("BAD_DATA");
    expect(code(() => packSubByte("int4", [1.5]))).toBe("BAD_DATA");
    expect(code(() => packSubByte("int8", [1]))).toBe("BAD_DTYPE");
    expect(code(() => unpackSubByte("float32", new Uint8Array(4), 1))).toBe("BAD_DTYPE");
    expect(code(() => unpackSubByte("uint3", new Uint8Array(1), 3))).toBe("BAD_TENSOR");
  });
});

describe("tensor.ts goes through these conversions", () => {
  it("fromArray / getElement / cast", () => {
    const h = fromArray("float16", [4], [1, 65520, NaN, -0]);
    expect([...h.data]).toEqual([0x3c00, 0x7c00, 0x7e00, 0x8000]);
    const f8 = cast(fromArray("float32", [3], [500, -0.3, 1e-9]), "float8_e4m3fn");
    expect([...f8.data]).toEqual([0x7f, float32ToFloat8E4M3FnBits(-0.3), 0]);
    const i8 = cast(fromArray("float32", [4], [1.9, -1.9, 300, NaN]), "int8");
    expect([...i8.data]).toEqual([1, -1, 44, 0]);
    const back = cast(fromArray("int4", [3], [-8, 0, 7]), "float32");
    expect([...back.data]).toEqual([-8, 0, 7]);
  });

  it("decodeElement/encodeElement round-trip every dtype's own values", () => {
    for (const d of DTYPES) {
      const t = zeros(d, [3]);
      const { min, max } = dtypeInfo(d);
      const vals = [min, 0, max];
      vals.forEach((v, i) => encodeElement(d, t.data, i, v));
      vals.forEach((v, i) => expect(decodeElement(d, t.data, i), d).toBe(v));
    }
  });
});
