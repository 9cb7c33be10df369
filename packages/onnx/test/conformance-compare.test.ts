import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { fromArray, type Tensor } from "@qforge/ir";
import { BFLOAT16_RTOL, compareOutput } from "../../cli/src/conformance/onnx.js";

/** bfloat16 bits of a float32 by truncation (ONNX 1.12's test generator) and by round-to-nearest-even. */
function bf16Bits(x: number): { trunc: number; rne: number } {
  const u = new Uint32Array(new Float32Array([x]).buffer)[0]!;
  const trunc = u >>> 16;
  const rne = ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
  return { trunc, rne };
}

const bf16 = (bits: number[]): Tensor => ({ dtype: "bfloat16", shape: [bits.length], data: Uint16Array.from(bits) });

describe("the node-test runner's bfloat16 comparison", () => {
  it("accepts one ulp (truncation vs round-to-nearest-even), refuses two", () => {
    expect(BFLOAT16_RTOL).toBe(2 ** -7);
    expect(compareOutput("y", bf16([0x3f00]), bf16([0x3eff]))).toBeUndefined(); // 0.5 vs 0.498046875
    expect(compareOutput("y", bf16([0x3f01]), bf16([0x3eff]))).toMatch(/element 0/);
    expect(compareOutput("y", bf16([0x7fc0, 0x7f80]), bf16([0x7fc0, 0x7f80]))).toBeUndefined(); // NaN, inf
    expect(compareOutput("y", bf16([0x7f80]), bf16([0xff80]))).toMatch(/element 0: got Infinity, want -Infinity/);
    expect(compareOutput("y", fromArray("float32", [2], [1, -Infinity]), fromArray("float32", [2], [1, Infinity]))).toMatch(/element 1/);
    expect(compareOutput("y", fromArray("float32", [1], [1e38]), fromArray("float32", [1], [Infinity]))).toMatch(/element 0/);
    // float32 keeps ONNX's rtol 1e-3.
    expect(compareOutput("y", fromArray("float32", [1], [0.5]), fromArray("float32", [1], [0.498046875]))).toMatch(/element 0/);
  });

  it("property: for any finite float32, its truncated and its rounded bfloat16 compare equal", () => {
    fc.assert(
      fc.property(fc.float({ noNaN: true, noDefaultInfinity: true, min: Math.fround(-3e38), max: Math.fround(3e38) }), (x) => {
        const { trunc, rne } = bf16Bits(x);
        if ((rne & 0x7f80) === 0x7f80) return; // rounding overflowed to infinity
        expect(compareOutput("y", bf16([rne]), bf16([trunc]))).toBeUndefined();
      }),
      { numRuns: 500, seed: 3 },
    );
  });
});
