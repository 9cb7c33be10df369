import { P } from "ts-pattern";
import { QforgeError } from "../errors.js";
import { rewritePass, rule, type RewriteRule } from "../rewrite/engine.js";
import { fromArray, numel, toFloat64, type Tensor } from "../tensor.js";

/** A constant float32 parameter view (pattern fragment). */
const constF32 = { kind: "constant", tensor: { dtype: "float32" } } as const;

/**
 * identity(x) -> x and inference dropout(x) -> x (only when its mask output is unused and no
 * training_mode input is given).
 */
export const removeIdentityRule: RewriteRule = rule({
  name: "remove-identity",
  pattern: { kind: "node", op: P.union("identity", "dropout") },
  rewrite: (m, rw) => {
    const n = m.node;
    if (n.op === "dropout" && (n.inputs.length > 2 && n.inputs[2] !== "")) return false;
    if (n.outputs.length > 1 && n.outputs[1] !== "" && rw.graph.nodes.some((x) => x.inputs.includes(n.outputs[1]!))) return false;
    if (rw.graph.outputs.includes(n.outputs[1] ?? "\u0000")) return false;
    const x = n.inputs[0]!;
    // Keep a graph output that would otherwise alias a graph input or appear twice.
    if (rw.graph.outputs.includes(m.value) && (rw.graph.inputs.includes(x) || rw.graph.outputs.includes(x))) return false;
    rw.replaceUses(m.value, x);
  },
});

const f32 = Math.fround;

/**
 * The folded float32 weight and bias of conv(W, b) followed by batch_norm(gamma, beta, mean, var, eps),
 * with torch.nn.utils.fusion.fuse_conv_bn_weights' float32 arithmetic (every step a separate float32
 * tensor op, no fused multiply-add, so each is rounded once):
 *   r = f32(1 / f32(sqrt(f32(var[c] + f32(eps)))))      (ATen rsqrt)
 *   W'[c] = f32(W[c] * f32(gamma[c] * r))
 *   b'[c] = f32(f32(f32(f32(b[c] - mean[c]) * r) * gamma[c]) + beta[c])
 */
export function foldConvBnWeights(
  w: Tensor, b: Tensor | undefined, gamma: Tensor, beta: Tensor, mean: Tensor, variance: Tensor, eps: number, node?: string,
): { weight: Tensor; bias: Tensor } {
  const cout = w.shape[0]!;
  const per = numel(w.shape) / cout;
  const wv = toFloat64(w);
  const g = toFloat64(gamma);
  const be = toFloat64(beta);
  const mu = toFloat64(mean);
  const v = toFloat64(variance);
  const bv = b !== undefined ? toFloat64(b) : new Float64Array(cout);
  for (const [name, t] of [["gamma", g], ["beta", be], ["mean", mu], ["var", v], ["bias", bv]] as const) {
    if (t.length !== cout) throw new QforgeError("BAD_SHAPE", `conv-bn folding: ${name} has ${t.length} entries for ${cout} output channels`, node !== undefined ? { node } : {});
  }
  const epsF = f32(eps);
  const w2 = new Float32Array(wv.length);
  const b2 = new Float32Array(cout);
  for (let c = 0; c < cout; c++) {
    const r = f32(1 / f32(Math.sqrt(f32(v[c]! + epsF))));
    const s = f32(g[c]! * r);
    for (let k = 0; k < per; k++) w2[c * per + k] = f32(wv[c * per + k]! * s);
    b2[c] = f32(f32(f32(f32(bv[c]! - mu[c]!) * r) * g[c]!) + be[c]!);
  }
  return { weight: fromArray("float32", w.shape, w2), bias: fromArray("float32", [cout], b2) };
}

/**
 * batch_norm(conv(x, W, b)) -> conv(x, W', b') with PyTorch's float32 arithmetic (foldConvBnWeights,
 * as torch.nn.utils.fusion.fuse_conv_bn_weights, which FX and PT2E fusion call), so folded weights are
 * bit-identical to PyTorch's. The conv keeps its name, attributes and meta (module stack). Applies only when the conv output feeds nothing but the batch norm and every parameter is constant.
 */
export const foldConvBatchNormRule: RewriteRule = rule({
  name: "fold-conv-batchnorm",
  pattern: {
    kind: "node",
    op: "batch_norm",
    attrs: P.when((a) => (a["training_mode"] ?? 0) === 0),
    inputs: [
      { kind: "node", op: "conv", users: 1, inputs: P.union([P._, constF32], [P._, constF32, P.union(constF32, { kind: "none" })]) },
      constF32, constF32, constF32, constF32,
    ],
  },
  rewrite: (m, rw) => {
    if (m.node.outputs.slice(1).some((o) => o !== "")) return false;
    const conv = (m.inputs[0] as typeof m).node;
    const tensorOf = (v: string): Tensor => {
      const t = rw.constantTensor(v);
      if (t === undefined) throw new QforgeError("BAD_INPUT", `expected constant '${v}'`, { node: m.name });
      return t;
    };
    const hasBias = conv.inputs.length > 2 && conv.inputs[2] !== "";
    const [, gamma, beta, mean, variance] = m.node.inputs;
    const { weight, bias } = foldConvBnWeights(
      tensorOf(conv.inputs[1]!), hasBias ? tensorOf(conv.inputs[2]!) : undefined,
      tensorOf(gamma!), tensorOf(beta!), tensorOf(mean!), tensorOf(variance!), (m.attrs["epsilon"] as number | undefined) ?? 1e-5,
      m.name,
    );
    const wName = rw.addConstant(`${conv.inputs[1]}_fused`, weight, "parameter");
    const bName = rw.addConstant(hasBias ? `${conv.inputs[2]}_fused` : `${conv.name}.bias_fused`, bias, "parameter");
    const [y] = rw.addNode("conv", [conv.inputs[0]!, wName, bName], { ...conv.attrs }, {
      name: conv.name,
      meta: { ...conv.meta, fusedFrom: [conv.name, m.name] },
    });
    rw.replaceUses(m.value, y!);
  },
});

export const removeIdentityPass = rewritePass("remove-identity", [removeIdentityRule]);
export const foldConvBatchNormPass = rewritePass("fold-conv-batchnorm", [foldConvBatchNormRule]);
