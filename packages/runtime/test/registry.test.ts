import { describe, expect, it } from "vitest";
import { isQforgeError, listOps, registerOp, req } from "@qforge/ir";
import { getKernel, hasKernel, listKernels, registerKernel } from "../src/index.js";

describe("kernel registry", () => {
  it("every op registered in the IR has a reference kernel", () => {
    const ops = listOps();
    expect(ops.length).toBeGreaterThan(60);
    expect(ops.filter((op) => !hasKernel(op))).toEqual([]);
  });

  it("every built-in kernel belongs to a registered op", () => {
    const ops = new Set(listOps());
    expect(listKernels().filter((k) => !ops.has(k))).toEqual([]);
  });

  it("includes the ops this package declares schemas for", () => {
    for (const op of ["max_pool", "average_pool", "global_average_pool", "global_max_pool", "adaptive_avg_pool2d", "softmax",
      "log_softmax", "layer_normalization", "reduce_mean", "reduce_sum", "reduce_max", "reduce_min", "resize", "reshape",
      "transpose", "flatten", "squeeze", "unsqueeze", "concat", "split", "slice", "gather", "expand", "pad", "shape", "size",
      "cast", "cast_like", "constant_of_shape", "range", "tile"]) {
      expect(listOps()).toContain(op);
      expect(hasKernel(op)).toBe(true);
    }
  });

  it("getKernel of an op without a kernel is NO_KERNEL naming the node", () => {
    registerOp({ name: "test_registry_no_kernel", family: "other", doc: "test", attrs: {}, inputs: [{ name: "x" }], outputs: [{ name: "y" }], infer: (ctx) => [req(ctx, 0)] });
    try {
      getKernel("test_registry_no_kernel", "n1");
      expect.unreachable();
    } catch (e) {
      expect(isQforgeError(e, "NO_KERNEL")).toBe(true);
      expect((e as Error).message).toContain("n1");
    }
  });

  it("registering a second kernel for an op is DUPLICATE_NAME", () => {
    expect(() => registerKernel("relu", () => [])).toThrow(/DUPLICATE_NAME/);
  });
});
