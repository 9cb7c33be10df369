import { describe, expect, it } from "vitest";
import { fromArray, getElement, getOp, hasOp, inferNode, isQforgeError, toNumbers, type AttrValue, type DType, type Tensor } from "@qforge/ir";
import { hasKernel, runOp } from "../src/index.js";

/** Hand-computed cases of the PyTorch-style quantized ops (PT2E lowering targets). */

const q = (dtype: DType, shape: number[], v: number[]): Tensor => fromArray(dtype, shape, v);
const s64 = (v: number): Tensor => fromArray("float64", [], [v]);
const zp = (v: number): Tensor => fromArray("int64", [], [v]);

function codeOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return isQforgeError(e) ? e.code : "not a QforgeError";
  }
  return undefined;
}

const QUANTIZED_OPS = [
  "quantize_linear", "dequantize_linear", "dynamic_quantize_linear", "matmul_integer", "conv_integer", "qlinear_matmul",
  "qlinear_conv", "quantized_linear", "quantized_conv2d", "dynamic_quantized_linear", "quantized_add", "quantized_mul",
  "quantized_cat", "quantized_relu", "quantized_hardswish", "quantized_sigmoid", "quantized_hardsigmoid", "quantized_tanh",
  "quantized_leaky_relu", "quantized_hardtanh", "quantized_max_pool2d", "quantized_avg_pool2d",
  "quantized_adaptive_avg_pool2d", "quantized_mean", "quantized_upsample_nearest2d",
];

describe("registry", () => {
  it("every quantized op has a schema and a reference kernel", () => {
    for (const op of QUANTIZED_OPS) {
      expect(hasOp(op), op).toBe(true);
      expect(hasKernel(op), op).toBe(true);
    }
  });

  it("engine-dependent ops default to qnnpack and declare fuse_relu where PyTorch fuses relu", () => {
    for (const op of ["quantized_linear", "quantized_conv2d", "dynamic_quantized_linear"]) expect(getOp(op).attrs["engine"]?.default).toBe("qnnpack");
    for (const op of ["quantized_linear", "quantized_conv2d", "quantized_add", "quantized_mul"]) expect(getOp(op).attrs["fuse_relu"]?.default).toBe(false);
  });
});

describe("quantized_linear", () => {
  // x: scale 0.5, zp 10 -> [1, -1]; w: scale 0.25 -> [[0.5, -0.25], [0.25, 0.25]]; bias [0.25, -0.5]
  // y = [1 * 0.5 + 0.25 + 0.25, 0.25 - 0.25 - 0.5] = [1.0, -0.5] -> /0.1 + 128 = [138, 123]
  const inputs = (engine: string): [(Tensor | undefined)[], Record<string, AttrValue>] => [[
    q("uint8", [1, 2], [12, 8]), s64(0.5), zp(10),
    q("int8", [2, 2], [2, -1, 1, 1]), s64(0.25), zp(0), fromArray("float32", [2], [0.25, -0.5]),
    s64(0.1), zp(128),
  ], { engine }];

  it("both engines agree on an exactly representable case", () => {
    for (const engine of ["qnnpack", "onednn"]) {
      const [y] = runOp("quantized_linear", ...inputs(engine));
      expect(y!.dtype).toBe("uint8");
      expect(toNumbers(y!)).toEqual([138, 123]);
    }
  });

  it("fuse_relu clamps at the output zero point", () => {
    const [ins] = inputs("qnnpack");
    const [y] = runOp("quantized_linear", ins, { engine: "onednn", fuse_relu: true });
    expect(toNumbers(y!)).toEqual([138, 128]);
  });

  it("qnnpack quantizes the bias to int32 first, onednn adds it in float", () => {
    // acc = 0; bias 0.7 with x_scale * w_scale = 1 and y_scale 0.5:
    // qnnpack: rint(0.7) = 1, then 1 * 2 = 2 -> 102; onednn: rint(0.7 / 0.5) = rint(1.4) = 1 -> 101.
    const ins = [
      q("uint8", [1, 1], [10]), s64(1), zp(10), q("int8", [1, 1], [3]), s64(1), zp(0),
      fromArray("float32", [1], [0.7]), s64(0.5), zp(100),
    ];
    expect(getElement(runOp("quantized_linear", ins, { engine: "qnnpack" })[0]!, 0)).toBe(102);
    expect(getElement(runOp("quantized_linear", ins, { engine: "onednn" })[0]!, 0)).toBe(101);
  });

  it("per-channel weights scale each output channel", () => {
    const ins = [
      q("uint8", [1, 2], [3, 1]), s64(1), zp(0),
      q("int8", [2, 2], [1, 1, 1, 1]), fromArray("float64", [2], [1, 2]), fromArray("int64", [2], [0, 0]),
      undefined, s64(1), zp(0),
    ];
    for (const engine of ["qnnpack", "onednn"]) expect(toNumbers(runOp("quantized_linear", ins, { engine })[0]!)).toEqual([4, 8]);
  });

  it("qint8 activations (qnnpack runs XNNPACK) saturate to [-128, 127]", () => {
    const ins = [
      q("int8", [1, 2], [100, 100]), s64(1), zp(0), q("int8", [1, 2], [1, 1]), s64(1), zp(0), undefined, s64(1), zp(-10),
    ];
    const [y] = runOp("quantized_linear", ins, { engine: "qnnpack" });
    expect(y!.dtype).toBe("int8");
    expect(toNumbers(y!)).toEqual([127]);
  });

  it("onednn refuses a non-zero weight zero point; unknown engines are refused", () => {
    const ins = [q("uint8", [1, 1], [1]), s64(1), zp(0), q("int8", [1, 1], [1]), s64(1), zp(3), undefined, s64(1), zp(0)];
    expect(codeOf(() => runOp("quantized_linear", ins, { engine: "onednn" }))).toBe("UNSUPPORTED");
    expect(getElement(runOp("quantized_linear", ins, { engine: "qnnpack" })[0]!, 0)).toBe(0);
    expect(codeOf(() => runOp("quantized_linear", ins, { engine: "fbgemm" }))).toBe("BAD_ATTRIBUTE");
  });

  it("shape inference: [..., in] x [out, in] -> [..., out]; mismatched features fail", () => {
    const t = (dtype: DType, shape: (number | string)[]) => ({ dtype, shape });
    const ins = [t("uint8", ["N", 3, 4]), t("float32", []), t("int32", []), t("int8", [5, 4]), t("float32", []), t("int32", []), t("float32", [5]), t("float32", []), t("int32", [])];
    expect(inferNode("quantized_linear", "l", ins, {}, 1)[0]).toEqual({ dtype: "uint8", shape: ["N", 3, 5] });
    const bad = [...ins];
    bad[3] = t("int8", [5, 3]);
    expect(codeOf(() => inferNode("quantized_linear", "l", bad, {}, 1))).toBe("SHAPE_MISMATCH");
  });
});

describe("quantized_conv2d", () => {
  // x - zp = [[1, 2, 3], [4, 5, 6], [7, 8, 9]], 2x2 kernel of ones, padding 1, stride 2.
  const x = q("uint8", [1, 1, 3, 3], [11, 12, 13, 14, 15, 16, 17, 18, 19]);
  const w = q("int8", [1, 1, 2, 2], [1, 1, 1, 1]);

  it("padding is the real zero (the input zero point), stride skips windows", () => {
    for (const engine of ["qnnpack", "onednn"]) {
      const [y] = runOp("quantized_conv2d", [x, s64(1), zp(10), w, s64(1), zp(0), undefined, s64(1), zp(0)], {
        engine, stride: [2, 2], padding: [1, 1],
      });
      expect(y!.shape).toEqual([1, 1, 2, 2]);
      expect(toNumbers(y!)).toEqual([1, 5, 11, 28]);
    }
  });

  it("dilation spreads the kernel", () => {
    const [y] = runOp("quantized_conv2d", [x, s64(1), zp(10), w, s64(1), zp(0), undefined, s64(1), zp(0)], { dilation: [2, 2] });
    expect(toNumbers(y!)).toEqual([1 + 3 + 7 + 9]);
  });

  it("depthwise (groups = channels) with per-channel weights", () => {
    const xd = q("uint8", [1, 2, 1, 2], [1, 2, 3, 4]);
    const wd = q("int8", [2, 1, 1, 1], [2, 3]);
    const [y] = runOp("quantized_conv2d", [
      xd, s64(1), zp(0), wd, fromArray("float64", [2], [0.5, 1]), fromArray("int64", [2], [0, 0]), undefined, s64(1), zp(0),
    ], { groups: 2 });
    expect(toNumbers(y!)).toEqual([1, 2, 9, 12]);
  });

  it("shape inference checks channels against groups", () => {
    const t = (dtype: DType, shape: number[]) => ({ dtype, shape });
    const ins = [t("uint8", [1, 4, 8, 8]), t("float32", []), t("int32", []), t("int8", [6, 2, 3, 3]), t("float32", []), t("int32", []), undefined, t("float32", []), t("int32", [])];
    expect(inferNode("quantized_conv2d", "c", ins, { groups: 2, stride: [2, 2], padding: [1, 1] }, 1)[0]!.shape).toEqual([1, 6, 4, 4]);
    expect(codeOf(() => inferNode("quantized_conv2d", "c", ins, { groups: 1 }, 1))).toBe("SHAPE_MISMATCH");
  });
});

describe("dynamic_quantized_linear", () => {
  // x = [0, 1, 3], w = 0.5 * ones: the float result is 2. ATen picks scale 3/255 (x -> [0, 85, 255], acc 340) or,
  // with reduce_range, 3/127 (x -> [0, 42.33 -> 42, 127], acc 169).
  const ins = (): (Tensor | undefined)[] => [
    fromArray("float32", [1, 3], [0, 1, 3]), q("int8", [1, 3], [1, 1, 1]), s64(0.5), zp(0), fromArray("float32", [1], [0.25]),
  ];
  const run = (engine: string, reduce: boolean) => getElement(runOp("dynamic_quantized_linear", ins(), { engine, reduce_range: reduce })[0]!, 0);

  it("qnnpack ignores reduce_range; onednn honours it", () => {
    expect(run("qnnpack", true)).toBe(run("qnnpack", false));
    expect(run("qnnpack", false)).toBeCloseTo((340 * 1.5) / 255 + 0.25, 5);
    expect(run("onednn", false)).toBeCloseTo((340 * 1.5) / 255 + 0.25, 5);
    expect(run("onednn", true)).toBeCloseTo((169 * 1.5) / 127 + 0.25, 5);
  });

  it("returns float32 with the weight's output features", () => {
    const [y] = runOp("dynamic_quantized_linear", ins(), { engine: "qnnpack" });
    expect(y!.dtype).toBe("float32");
    expect(y!.shape).toEqual([1, 1]);
  });
});

describe("elementwise and cat", () => {
  it("add with broadcasting and fused relu", () => {
    // a = ([10, 20] - 10) * 0.5 = [0, 5] as [2, 1]; b = ([0, 4, 2] - 2) * 1 = [-2, 2, 0]
    const a = q("uint8", [2, 1], [10, 20]);
    const b = q("uint8", [3], [0, 4, 2]);
    const ins = [a, s64(0.5), zp(10), b, s64(1), zp(2), s64(0.5), zp(10)];
    const [y] = runOp("quantized_add", ins);
    expect(y!.shape).toEqual([2, 3]);
    // sums [[-2, 2, 0], [3, 7, 5]] / 0.5 + 10
    expect(toNumbers(y!)).toEqual([6, 14, 10, 16, 24, 20]);
    expect(toNumbers(runOp("quantized_add", ins, { fuse_relu: true })[0]!)).toEqual([10, 14, 10, 16, 24, 20]);
  });

  it("mul", () => {
    const ins = [q("int8", [3], [2, -4, 6]), s64(0.5), zp(0), q("int8", [3], [3, 3, -1]), s64(1), zp(1), s64(0.25), zp(0)];
    // [1, -2, 3] * [2, 2, -2] = [2, -4, -6] / 0.25
    expect(toNumbers(runOp("quantized_mul", ins)[0]!)).toEqual([8, -16, -24]);
  });

  it("cat requantizes every input to the output qparams", () => {
    const [y] = runOp("quantized_cat", [
      s64(0.5), zp(0), q("uint8", [1, 2], [1, 3]), s64(1), zp(0), q("uint8", [1, 1], [10]), s64(0.25), zp(2),
    ], { dim: 1 });
    expect(y!.shape).toEqual([1, 3]);
    expect(toNumbers(y!)).toEqual([2, 6, 4]);
  });

  it("cat refuses inputs that are not triples", () => {
    const x = q("uint8", [1], [1]);
    expect(codeOf(() => runOp("quantized_cat", [s64(1), zp(0), x, s64(1), zp(0), x]))).toBe("SHAPE_MISMATCH");
  });
});

describe("activations", () => {
  const x = q("uint8", [5], [0, 64, 128, 192, 255]); // scale 1/32, zp 128 -> [-4, -2, 0, 2, 3.97]
  const run = (op: string, attrs: Record<string, AttrValue> = {}, out: Tensor[] = []) => toNumbers(runOp(op, [x, s64(1 / 32), zp(128), ...out], attrs)[0]!);

  it("relu keeps the input qparams by default", () => {
    expect(run("quantized_relu")).toEqual([128, 128, 128, 192, 255]);
  });

  it("sigmoid / hardsigmoid default to scale 1/256, zero point 0; tanh to 2/256, 128", () => {
    const sig = run("quantized_sigmoid");
    expect(sig[2]).toBe(128);
    expect(sig).toEqual([-4, -2, 0, 2, 127 / 32].map((v) => Math.min(255, Math.round(256 / (1 + Math.exp(-v))))));
    expect(run("quantized_hardsigmoid")).toEqual([0, 43, 128, 213, 255]);
    const th = run("quantized_tanh");
    expect(th[2]).toBe(128);
    expect(th[0]).toBe(128 + Math.round(Math.tanh(-4) * 128));
  });

  it("int8 fixed qparams: sigmoid zero point -128, tanh zero point 0", () => {
    const xi = q("int8", [1], [0]);
    expect(getElement(runOp("quantized_sigmoid", [xi, s64(0.1), zp(0)])[0]!, 0)).toBe(0);
    expect(getElement(runOp("quantized_tanh", [xi, s64(0.1), zp(0)])[0]!, 0)).toBe(0);
  });

  it("hardswish, leaky_relu, hardtanh with explicit output qparams", () => {
    // hardswish([-4, -2, 0, 2, 3.96875]) = [0, -1/3, 0, 5/3, 3.96875]; out scale 1/16, zp 64 (63.5 -> 64, half to even)
    expect(run("quantized_hardswish", {}, [s64(1 / 16), zp(64)])).toEqual([64, 59, 64, 91, 128]);
    expect(run("quantized_leaky_relu", { negative_slope: 0.25 }, [s64(1 / 32), zp(128)])).toEqual([96, 112, 128, 192, 255]);
    expect(run("quantized_hardtanh", { min_val: -1, max_val: 1 })).toEqual([96, 96, 128, 160, 160]);
  });

  it("giving only one of y_scale / y_zero_point is refused", () => {
    expect(codeOf(() => runOp("quantized_relu", [x, s64(1), zp(0), s64(1)]))).toBe("SHAPE_MISMATCH");
  });
});

describe("pooling, mean, upsampling", () => {
  const x = q("uint8", [1, 1, 4, 4], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]);
  const run = (op: string, attrs: Record<string, AttrValue>) => runOp(op, [x, s64(1), zp(0)], attrs)[0]!;

  it("max_pool2d with stride, padding and ceil_mode", () => {
    expect(toNumbers(run("quantized_max_pool2d", { kernel_size: [2, 2] }))).toEqual([6, 8, 14, 16]);
    const floor = run("quantized_max_pool2d", { kernel_size: [3, 3], stride: [2, 2], padding: [1, 1] });
    expect(floor.shape).toEqual([1, 1, 2, 2]);
    expect(toNumbers(floor)).toEqual([6, 8, 14, 16]);
    // ceil_mode adds a last window starting at row/col 3 (inside the input).
    const ceil = run("quantized_max_pool2d", { kernel_size: [3, 3], stride: [2, 2], padding: [1, 1], ceil_mode: true });
    expect(ceil.shape).toEqual([1, 1, 3, 3]);
    expect(toNumbers(ceil)).toEqual([6, 8, 8, 14, 16, 16, 14, 16, 16]);
  });

  it("avg_pool2d: count_include_pad and divisor_override", () => {
    // window at (0, 0) with padding 1 covers x[0:2, 0:2] = 1 + 2 + 5 + 6 = 14 over 4 (or 9 with padding)
    const inc = run("quantized_avg_pool2d", { kernel_size: [3, 3], stride: [2, 2], padding: [1, 1], count_include_pad: true });
    const exc = run("quantized_avg_pool2d", { kernel_size: [3, 3], stride: [2, 2], padding: [1, 1], count_include_pad: false });
    expect(getElement(inc, 0)).toBe(2); // 1.56
    expect(getElement(exc, 0)).toBe(4); // 3.5, half to even
    const ov = run("quantized_avg_pool2d", { kernel_size: [2, 2], divisor_override: 2 });
    expect(toNumbers(ov)).toEqual([7, 11, 23, 27]);
  });

  it("adaptive_avg_pool2d uses PyTorch's overlapping windows", () => {
    const x3 = q("uint8", [1, 1, 3, 3], [0, 2, 4, 6, 8, 10, 12, 14, 16]);
    const [y] = runOp("quantized_adaptive_avg_pool2d", [x3, s64(1), zp(0)], { output_size: [2, 2] });
    // windows rows/cols [0, 2) and [1, 3)
    expect(toNumbers(y!)).toEqual([4, 6, 10, 12]);
  });

  it("mean over H and W, with and without keepdim", () => {
    const keep = run("quantized_mean", { dim: [2, 3], keepdim: true });
    expect(keep.shape).toEqual([1, 1, 1, 1]);
    expect(toNumbers(keep)).toEqual([8]); // 8.5 rounds half to even
    const rows = run("quantized_mean", { dim: [-1] });
    expect(rows.shape).toEqual([1, 1, 4]);
    expect(toNumbers(rows)).toEqual([2, 6, 10, 14]); // 2.5, 6.5, 10.5, 14.5 -> even
  });

  it("upsample_nearest2d by scale factor and to an output size", () => {
    const small = q("uint8", [1, 1, 2, 2], [1, 2, 3, 4]);
    const [up] = runOp("quantized_upsample_nearest2d", [small, s64(1), zp(0)], { scale_factor: [2] });
    expect(toNumbers(up!)).toEqual([1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4]);
    const [odd] = runOp("quantized_upsample_nearest2d", [small, s64(1), zp(0)], { output_size: [3, 3] });
    // source index floor(dst * 2/3): 0, 0, 1
    expect(toNumbers(odd!)).toEqual([1, 1, 2, 1, 1, 2, 3, 3, 4]);
    expect(codeOf(() => runOp("quantized_upsample_nearest2d", [small, s64(1), zp(0)], {}))).toBe("BAD_ATTRIBUTE");
  });
});
