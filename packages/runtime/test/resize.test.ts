import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { isQforgeError } from "@qforge/ir";
import { runOp } from "../src/index.js";
import { arbTensor, expectClose, f32, i64, t, vals } from "./helpers.js";

const x22 = f32([1, 1, 2, 2], [1, 2, 3, 4]);
const resize = (x: Parameters<typeof runOp>[1][number], attrs: Record<string, number | string | number[]>, scales?: number[], sizes?: number[], roi?: number[]) =>
  runOp("resize", [x, roi === undefined ? undefined : f32([roi.length], roi), scales === undefined ? undefined : f32([scales.length], scales), sizes === undefined ? undefined : i64(sizes)], attrs)[0];

describe("resize (ONNX Resize-19)", () => {
  it("nearest, half_pixel + round_prefer_floor (test_resize_upsample_scales_nearest)", () => {
    expectClose(resize(x22, { mode: "nearest" }, [1, 1, 2, 3]), [1, 1, 4, 6], [1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 3, 3, 3, 4, 4, 4]);
  });

  it("nearest, asymmetric + floor; round_prefer_ceil picks the upper tie", () => {
    expectClose(resize(x22, { mode: "nearest", coordinate_transformation_mode: "asymmetric", nearest_mode: "floor" }, [1, 1, 2, 2]), [1, 1, 4, 4],
      [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4]);
    const row = f32([1, 4], [10, 20, 30, 40]);
    // half_pixel downsample by 0.5: x_original = 2x + 0.5, a tie every time.
    expectClose(resize(row, { mode: "nearest", nearest_mode: "round_prefer_floor" }, [1, 0.5]), [1, 2], [10, 30]);
    expectClose(resize(row, { mode: "nearest", nearest_mode: "round_prefer_ceil" }, [1, 0.5]), [1, 2], [20, 40]);
    expectClose(resize(row, { mode: "nearest", coordinate_transformation_mode: "tf_half_pixel_for_nn" }, [1, 0.5]), [1, 2], [20, 40]);
    expectClose(resize(f32([1, 3], [10, 20, 30]), { mode: "nearest", nearest_mode: "round_prefer_floor", coordinate_transformation_mode: "asymmetric" }, [1, 2 / 3]), [1, 2], [10, 20]);
  });

  it("linear, half_pixel upsample (test_resize_upsample_scales_linear)", () => {
    expectClose(resize(x22, { mode: "linear" }, [1, 1, 2, 2]), [1, 1, 4, 4],
      [1, 1.25, 1.75, 2, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3, 3.25, 3.75, 4]);
  });

  it("linear, align_corners uses scale * in as the resized length (test_resize_downsample_scales_linear_align_corners)", () => {
    const x = f32([1, 1, 2, 4], [1, 2, 3, 4, 5, 6, 7, 8]);
    expectClose(resize(x, { mode: "linear", coordinate_transformation_mode: "align_corners" }, [1, 1, 0.6, 0.6]), [1, 1, 1, 2], [1, 3.142857142857143], 1e-6);
  });

  it("cubic: Keys' kernel with A = -0.5 reproduces a linear ramp away from the edges; exclude_outside renormalizes", () => {
    const ramp = f32([1, 8], [0, 1, 2, 3, 4, 5, 6, 7]);
    const y = vals(resize(ramp, { mode: "cubic", cubic_coeff_a: -0.5, coordinate_transformation_mode: "align_corners" }, undefined, [1, 15]));
    // output i samples x = i/2; taps reach x-1 .. x+2, all inside for 1 <= x <= 5.
    for (let i = 2; i <= 10; i++) expect(y[i]).toBeCloseTo(i / 2, 5);
    // at the edge the replicated border pulls the value: A = -0.75 at x = 0.5 gives 0.40625.
    const edge = vals(resize(ramp, { mode: "cubic", coordinate_transformation_mode: "align_corners" }, undefined, [1, 15]));
    expect(edge[1]).toBeCloseTo(0.40625, 6);
    const ex = vals(resize(f32([1, 2], [0, 1]), { mode: "cubic", exclude_outside: 1, coordinate_transformation_mode: "asymmetric" }, [1, 2]));
    // x_original 0.5: taps -1..2, only 0 and 1 inside: weights renormalize to 1/2 each.
    expect(ex[1]).toBeCloseTo(0.5, 6);
  });

  it("sizes with keep_aspect_ratio_policy not_larger / not_smaller", () => {
    const x = f32([1, 2, 4], [1, 2, 3, 4, 5, 6, 7, 8]);
    expect(resize(x, { mode: "nearest", axes: [1, 2], keep_aspect_ratio_policy: "not_larger" }, undefined, [4, 4])!.shape).toEqual([1, 2, 4]);
    expect(resize(x, { mode: "nearest", axes: [1, 2], keep_aspect_ratio_policy: "not_smaller" }, undefined, [4, 4])!.shape).toEqual([1, 4, 8]);
    expect(resize(x, { mode: "nearest", axes: [1, 2] }, undefined, [4, 4])!.shape).toEqual([1, 4, 4]);
  });

  it("tf_crop_and_resize maps into the roi and extrapolates outside the input", () => {
    const x = f32([1, 4], [1, 2, 3, 4]);
    // x_original = 1.5 x + 1.5: 1.5 -> 2.5, 3 -> 4, 4.5 is outside [0, 3] -> extrapolation_value.
    expectClose(resize(x, { mode: "linear", coordinate_transformation_mode: "tf_crop_and_resize", axes: [1], extrapolation_value: 10 }, undefined, [3], [0.5, 1.5]), [1, 3], [2.5, 4, 10]);
  });

  it("integer inputs truncate the interpolated value", () => {
    const [y] = runOp("resize", [t("uint8", [1, 2], [0, 3]), undefined, f32([2], [1, 2])], { mode: "linear" });
    expect(y!.dtype).toBe("uint8");
    expect(vals(y)).toEqual([0, 0, 2, 3]);
  });

  it("antialias=1 is UNSUPPORTED", () => {
    try {
      resize(x22, { mode: "linear", antialias: 1 }, [1, 1, 0.5, 0.5]);
      expect.unreachable();
    } catch (e) {
      expect(isQforgeError(e, "UNSUPPORTED")).toBe(true);
    }
  });

  it("laws: scale 1 is the identity in every mode; interpolating a constant gives the constant", () => {
    const modes = ["nearest", "linear", "cubic"];
    const coords = ["half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_crop_and_resize"];
    fc.assert(fc.property(arbTensor([1, 2, 3, 4]), fc.constantFrom(...modes), fc.constantFrom(...coords), fc.double({ min: 0.3, max: 3, noNaN: true }), (x, mode, coord, s) => {
      const roi = coord === "tf_crop_and_resize" ? [0, 0, 0, 0, 1, 1, 1, 1] : undefined;
      expectClose(resize(x, { mode, coordinate_transformation_mode: coord }, [1, 1, 1, 1], undefined, roi), [1, 2, 3, 4], vals(x));
      const c = f32([1, 1, 3, 4], new Array(12).fill(2.5));
      const y = resize(c, { mode, coordinate_transformation_mode: coord }, [1, 1, s, s], undefined, roi)!;
      vals(y).forEach((v) => expect(v).toBeCloseTo(2.5, 5));
    }), { numRuns: 60 });
  });
});
