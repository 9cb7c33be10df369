/**
 * Opsets 9-21: one small model written in each opset's own operator forms (attributes that later
 * became inputs, Upsample vs Resize-10/11/13, Split's split/num_outputs, Softmax's 2-D coercion,
 * Dropout's ratio, quantize/dequantize (10+), a Shape -> Gather -> Unsqueeze -> Concat ->
 * Reshape chain over a symbolic batch) imports, and runs in the reference runtime with the outputs
 * onnxruntime-node computes for the same bytes.
 */
import { describe, expect, it } from "vitest";
import * as ort from "onnxruntime-node";
import { fromArray, numel, toFloat64, verifyGraph, type Tensor } from "@qforge/ir";
import {
  encodeModel, importOnnx, makeAttribute, makeGraph, makeModel, makeNode, makeTensorValueInfo,
  type AttributeValue, type FoldFn, type NodeProto,
} from "@qforge/onnx";
import { runOp, runProgram } from "@qforge/runtime";

const fold: FoldFn = (op, inputs, attrs, numOutputs) => runOp(op, inputs, { ...attrs }, { numOutputs });

/** Deterministic values in [-1, 1). */
function values(n: number, seed: number): number[] {
  let s = seed >>> 0;
  return Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

const f32 = (shape: number[], seed: number, scale = 1): Tensor => fromArray("float32", shape, values(numel(shape), seed).map((v) => v * scale));
const i64 = (v: number[]): Tensor => fromArray("int64", [v.length], v);

/** A node whose float attributes are typed FLOAT even when integral (ONNX checks attribute types). */
function nd(op: string, ins: string[], outs: string[], attrs: Record<string, AttributeValue> = {}, floats: Record<string, number> = {}): NodeProto {
  const n = makeNode(op, ins, outs, attrs);
  for (const [k, v] of Object.entries(floats)) n.attribute!.push(makeAttribute(k, v, "float"));
  return n;
}

/** The model in the forms of `opset`. Input x: float32 [N, 3, 8, 8]. */
function modelFor(opset: number): Uint8Array {
  const nodes: NodeProto[] = [];
  const inits: Record<string, Tensor> = {
    W: f32([4, 3, 3, 3], 1, 0.5), B: f32([4], 2, 0.1),
    bn_scale: fromArray("float32", [4], [1.1, 0.9, 1.2, 0.8]),
    bn_bias: fromArray("float32", [4], [0.1, -0.2, 0.05, 0]), bn_mean: fromArray("float32", [4], [0.01, 0.02, -0.03, 0]),
    bn_var: fromArray("float32", [4], [1, 0.5, 2, 1.5]),
    Wg: f32([16, 5], 4, 0.3), Bg: f32([5], 5, 0.1),
    q_scale: fromArray("float32", [], [0.02]), q_zp: fromArray("uint8", [], [128]),
    shape_tail: i64([16]), gather_idx: fromArray("int64", [], [0]),
  };
  nodes.push(nd("Conv", ["x", "W", "B"], ["conv"], { pads: [1, 1, 1, 1], kernel_shape: [3, 3] }));
  nodes.push(nd("BatchNormalization", ["conv", "bn_scale", "bn_bias", "bn_mean", "bn_var"], ["bn"], {}, { epsilon: 1e-5 }));
  if (opset < 11) {
    nodes.push(nd("Clip", ["bn"], ["clip"], {}, { min: 0, max: 6 }));
  } else {
    inits.clip_min = fromArray("float32", [], [0]);
    inits.clip_max = fromArray("float32", [], [6]);
    nodes.push(nd("Clip", ["bn", "clip_min", "clip_max"], ["clip"]));
  }
  nodes.push(nd("HardSigmoid", ["clip"], ["hsig"], { alpha: 0.2, beta: 0.5 }));
  nodes.push(nd("Mul", ["clip", "hsig"], ["hswish"]));
  nodes.push(nd("MaxPool", ["hswish"], ["mp"], { kernel_shape: [2, 2], strides: [2, 2] })); // [N,4,4,4]
  if (opset < 11) {
    nodes.push(nd("Pad", ["mp"], ["pad"], { pads: [0, 0, 1, 1, 0, 0, 1, 1], mode: "constant", value: 0.5 }));
  } else {
    inits.pad_value = fromArray("float32", [], [0.5]);
    if (opset < 18) {
      inits.pads = i64([0, 0, 1, 1, 0, 0, 1, 1]);
      nodes.push(nd("Pad", ["mp", "pads", "pad_value"], ["pad"], { mode: "constant" }));
    } else {
      inits.pads = i64([1, 1, 1, 1]);
      inits.pad_axes = i64([2, 3]);
      nodes.push(nd("Pad", ["mp", "pads", "pad_value", "pad_axes"], ["pad"], { mode: "constant" }));
    }
  }
  nodes.push(nd("AveragePool", ["pad"], ["ap"], { kernel_shape: [2, 2], strides: [2, 2] })); // [N,4,3,3]
  inits.scales = fromArray("float32", [4], [1, 1, 2, 2]);
  if (opset < 10) nodes.push(nd("Upsample", ["ap", "scales"], ["up"], { mode: "nearest" }));
  else if (opset < 11) nodes.push(nd("Resize", ["ap", "scales"], ["up"], { mode: "nearest" }));
  else if (opset < 13) {
    inits.roi = fromArray("float32", [0], []);
    nodes.push(nd("Resize", ["ap", "roi", "scales"], ["up"], { mode: "nearest", coordinate_transformation_mode: "asymmetric", nearest_mode: "floor" }));
  } else {
    nodes.push(nd("Resize", ["ap", "", "scales"], ["up"], { mode: "linear" }));
  } // [N,4,6,6]
  if (opset < 18) nodes.push(nd("ReduceMean", ["up"], ["rm"], { axes: [3], keepdims: 1 }));
  else {
    inits.rm_axes = i64([3]);
    nodes.push(nd("ReduceMean", ["up", "rm_axes"], ["rm"], { keepdims: 1 }));
  } // [N,4,6,1]
  if (opset < 13) nodes.push(nd("Squeeze", ["rm"], ["sq"], { axes: [3] }));
  else {
    inits.sq_axes = i64([3]);
    nodes.push(nd("Squeeze", ["rm", "sq_axes"], ["sq"]));
  } // [N,4,6]
  if (opset < 10) nodes.push(nd("Slice", ["sq"], ["sl"], { starts: [1], ends: [5], axes: [2] }));
  else {
    inits.sl_starts = i64([1]);
    inits.sl_ends = i64([5]);
    inits.sl_axes = i64([2]);
    nodes.push(nd("Slice", ["sq", "sl_starts", "sl_ends", "sl_axes"], ["sl"]));
  } // [N,4,4]
  if (opset < 13) nodes.push(nd("Split", ["sl"], ["s1", "s2"], { axis: 1, split: [2, 2] }));
  else if (opset < 18) {
    inits.split = i64([2, 2]);
    nodes.push(nd("Split", ["sl", "split"], ["s1", "s2"], { axis: 1 }));
  } else nodes.push(nd("Split", ["sl"], ["s1", "s2"], { axis: 1, num_outputs: 2 }));
  nodes.push(nd("Concat", ["s2", "s1"], ["cc"], { axis: 1 })); // [N,4,4]
  // Softmax over axis 1 of a rank-3 tensor: before 13 that means over the flattened [4*4] (2-D coercion).
  nodes.push(nd("Softmax", ["cc"], ["sm"], { axis: 1 }));
  // The exporter's reshape idiom: [N, 16] from Shape(x)[0].
  nodes.push(nd("Shape", ["x"], ["xs"]));
  nodes.push(nd("Gather", ["xs", "gather_idx"], ["n"], { axis: 0 }));
  if (opset < 13) nodes.push(nd("Unsqueeze", ["n"], ["n1"], { axes: [0] }));
  else {
    inits.unsq_axes = i64([0]);
    nodes.push(nd("Unsqueeze", ["n", "unsq_axes"], ["n1"]));
  }
  nodes.push(nd("Concat", ["n1", "shape_tail"], ["target"], { axis: 0 }));
  nodes.push(nd("Reshape", ["cc", "target"], ["rs"]));
  nodes.push(nd("Gemm", ["rs", "Wg", "Bg"], ["gm"], { alpha: 1.5 }));
  if (opset < 13) nodes.push(nd("ReduceSum", ["gm"], ["rsum"], { axes: [1], keepdims: 0 }));
  else {
    inits.rsum_axes = i64([1]);
    nodes.push(nd("ReduceSum", ["gm", "rsum_axes"], ["rsum"], { keepdims: 0 }));
  } // [N]
  const outputs = [
    makeTensorValueInfo("sm", "float32", ["N", 4, 4]), makeTensorValueInfo("rsum", "float32", ["N"]),
  ];
  let last = "gm";
  if (opset >= 10) {
    // QuantizeLinear/DequantizeLinear exist since opset 10.
    nodes.push(nd("QuantizeLinear", ["gm", "q_scale", "q_zp"], ["q"]));
    nodes.push(nd("DequantizeLinear", ["q", "q_scale", "q_zp"], ["dq"]));
    nodes.push(nd("Cast", ["q"], ["q_f"], { to: 1 }));
    outputs.push(makeTensorValueInfo("q_f", "float32", ["N", 5]));
    last = "dq";
  }
  nodes.push(opset < 12 ? nd("Dropout", [last], ["dr"], { ratio: 0.25 }) : nd("Dropout", [last], ["dr"]));
  outputs.push(makeTensorValueInfo("dr", "float32", ["N", 5]));
  const graph = makeGraph({
    nodes,
    inputs: [makeTensorValueInfo("x", "float32", ["N", 3, 8, 8])],
    outputs,
    initializers: inits,
  });
  return encodeModel(makeModel(graph, { opset, irVersion: opset >= 21 ? 10 : opset >= 19 ? 9 : 8 }));
}

async function ortRun(bytes: Uint8Array, x: Tensor): Promise<Tensor[]> {
  const s = await ort.InferenceSession.create(bytes);
  const out = await s.run({ x: new ort.Tensor("float32", x.data as Float32Array, [...x.shape]) });
  return s.outputNames.map((k) => {
    const t = out[k]!;
    return fromArray("float32", t.dims.map(Number), t.data as Float32Array);
  });
}

describe("opsets 9-21: the same model in each opset's operator forms", () => {
  const x = f32([2, 3, 8, 8], 99, 2);
  for (let opset = 9; opset <= 21; opset++) {
    it(`opset ${opset}: imports (symbolic and static batch) and matches onnxruntime`, async () => {
      const bytes = modelFor(opset);
      const want = await ortRun(bytes, x);
      for (const opts of [{ fold }, { fold, inputShapes: { x: [2, 3, 8, 8] } }]) {
        const ep = await importOnnx(bytes, opts);
        verifyGraph(ep.graph);
        expect(ep.meta.opset).toBe(opset);
        if ("inputShapes" in opts) {
          // The Shape -> Gather -> Unsqueeze -> Concat chain folded: Reshape reads a constant target.
          expect(ep.graph.nodes.map((n) => n.op)).not.toContain("shape");
          const reshape = ep.graph.nodes.find((n) => n.op === "reshape")!;
          expect(ep.graph.constants[reshape.inputs[1]!]).toBeDefined();
        } else {
          expect(ep.graph.values.x!.shape[0]).toBe("N");
        }
        const got = runProgram(ep, [x]);
        expect(got.map((t) => t.shape)).toEqual(want.map((t) => t.shape));
        got.forEach((g, i) => {
          const w = want[i]!;
          expect(g.dtype, ep.outputs[i]!.name).toBe(w.dtype);
          const a = toFloat64(g);
          const b = toFloat64(w);
          let maxDiff = 0;
          for (let j = 0; j < a.length; j++) maxDiff = Math.max(maxDiff, Math.abs(a[j]! - b[j]!));
          expect(maxDiff, `${ep.outputs[i]!.name} at opset ${opset}`).toBeLessThan(1e-5);
        });
      }
    });
  }
});
