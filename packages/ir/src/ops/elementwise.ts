import { QforgeError } from "../errors.js";
import type { DType } from "../dtype.js";
import type { AttrSpec, OpFamily } from "./registry.js";
import { broadcastShapes, registerOp, req, sameDType } from "./registry.js";

/**
 * Elementwise ops. Semantics are ONNX's (latest opset) with snake_case names; the torch-only ones
 * (hardswish, gelu, relu6 via clip) follow torch. Binary ops broadcast numpy-style.
 */

function unary(name: string, doc: string, attrs: Record<string, AttrSpec> = {}, family: OpFamily = "compute"): void {
  registerOp({
    name, family, doc, attrs,
    inputs: [{ name: "X" }],
    outputs: [{ name: "Y" }],
    infer: (ctx) => [{ ...req(ctx, 0) }],
  });
}

unary("relu", "max(x, 0)");
unary("leaky_relu", "x if x >= 0 else alpha * x (ONNX LeakyRelu)", { alpha: { type: "float", default: 0.01 } });
unary("sigmoid", "1 / (1 + exp(-x))");
unary("tanh", "tanh(x)");
unary("hard_sigmoid", "max(0, min(1, alpha * x + beta)) (ONNX HardSigmoid; torch's hardsigmoid is alpha=1/6)", {
  alpha: { type: "float", default: 0.2 }, beta: { type: "float", default: 0.5 },
});
unary("hardswish", "x * max(0, min(1, x/6 + 1/2)) (ONNX HardSwish, torch.nn.Hardswish)");
unary("gelu", "x * Phi(x); approximate='tanh' uses the tanh formula (torch.nn.GELU)", { approximate: { type: "string", default: "none" } });
unary("erf", "the error function");
unary("sqrt", "square root");
unary("exp", "e^x");
unary("log", "natural logarithm");
unary("neg", "-x");
unary("abs", "|x|");
unary("reciprocal", "1 / x");
unary("floor", "floor(x)");
unary("ceil", "ceil(x)");
unary("round", "round half to even");
unary("identity", "y = x", {}, "other");
unary("softplus", "log(1 + exp(x))");

registerOp({
  name: "dropout",
  family: "other",
  doc: "ONNX Dropout in inference: y = x (mask all true). Training mode is not supported by the reference runtime.",
  attrs: { seed: { type: "int" } },
  inputs: [{ name: "data" }, { name: "ratio", optional: true }, { name: "training_mode", optional: true }],
  outputs: [{ name: "output" }, { name: "mask", optional: true }],
  infer: (ctx) => {
    const x = req(ctx, 0);
    return [{ ...x }, { dtype: "bool", shape: x.shape }];
  },
});

registerOp({
  name: "clip",
  family: "compute",
  doc: "min(max(x, min), max); min/max are optional scalar inputs (ONNX Clip-13). torch.clamp and relu6 lower to it.",
  attrs: {},
  inputs: [{ name: "input" }, { name: "min", optional: true }, { name: "max", optional: true }],
  outputs: [{ name: "output" }],
  infer: (ctx) => [{ ...req(ctx, 0) }],
});

function binary(name: string, doc: string, out: "same" | "bool" = "same"): void {
  registerOp({
    name, family: "compute", doc, attrs: {},
    inputs: [{ name: "A" }, { name: "B" }],
    outputs: [{ name: "C" }],
    infer: (ctx) => {
      const a = req(ctx, 0);
      const b = req(ctx, 1);
      const dtype: DType = out === "bool" ? "bool" : sameDType(ctx, 0, 1);
      return [{ dtype, shape: broadcastShapes(ctx, a.shape, b.shape) }];
    },
  });
}

binary("add", "a + b (broadcasting)");
binary("sub", "a - b (broadcasting)");
binary("mul", "a * b (broadcasting)");
binary("div", "a / b (broadcasting; integer division truncates, as ONNX Div)");
binary("max", "elementwise maximum of two tensors (broadcasting)");
binary("min", "elementwise minimum of two tensors (broadcasting)");
binary("equal", "a == b (broadcasting)", "bool");
binary("less", "a < b (broadcasting)", "bool");
binary("greater", "a > b (broadcasting)", "bool");

registerOp({
  name: "pow",
  family: "compute",
  doc: "a ^ b (ONNX Pow-15: the output has a's dtype; exponent may have another dtype)",
  attrs: {},
  inputs: [{ name: "X" }, { name: "Y" }],
  outputs: [{ name: "Z" }],
  infer: (ctx) => {
    const a = req(ctx, 0);
    return [{ dtype: a.dtype, shape: broadcastShapes(ctx, a.shape, req(ctx, 1).shape) }];
  },
});

registerOp({
  name: "where",
  family: "compute",
  doc: "cond ? x : y (broadcasting over all three)",
  attrs: {},
  inputs: [{ name: "condition" }, { name: "X" }, { name: "Y" }],
  outputs: [{ name: "output" }],
  infer: (ctx) => {
    const c = req(ctx, 0);
    if (c.dtype !== "bool") {
      throw new QforgeError("DTYPE_MISMATCH", `where: condition must be bool, got ${c.dtype}`, { node: ctx.node });
    }
    const dtype = sameDType(ctx, 1, 2);
    return [{ dtype, shape: broadcastShapes(ctx, c.shape, req(ctx, 1).shape, req(ctx, 2).shape) }];
  },
});
