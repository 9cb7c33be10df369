import {
  fromArray, full, GraphBuilder, programFromGraph, QforgeError, type AttrValue, type DType, type ExportedProgram, type NodeMeta,
  type Tensor,
} from "@qforge/ir";
import { goldenTensor } from "./tensors.js";

/**
 * The float model of a golden fx_models case (`architecture` + `state_dict`) as a qforge
 * ExportedProgram, built with GraphBuilder the way @qforge/export traces the same PyTorch modules:
 * one canonical op per architecture node (node and output value named like the node), parameters
 * and buffers named by their state_dict keys, and `meta.moduleStack = [{path, type}]` on module
 * nodes so module-name and module-type filters see what FX's QConfigMapping sees.
 */

/** An architecture node (README: fx_models `architecture.nodes`). */
export interface FxArchNode {
  readonly name: string;
  readonly op: string;
  readonly inputs?: readonly string[];
  readonly attrs?: Readonly<Record<string, unknown>>;
  readonly module?: string;
  readonly params?: Readonly<Record<string, string>>;
  /** `input` nodes: the example shape and dtype. */
  readonly shape?: readonly number[];
  readonly dtype?: string;
}

export interface FxArchitecture {
  readonly inputs: readonly string[];
  readonly outputs: readonly string[];
  readonly nodes: readonly FxArchNode[];
}

/** The PyTorch class of the module behind each architecture op (torch.nn.<Class>). */
export const FX_MODULE_CLASS: Readonly<Record<string, string>> = {
  linear: "Linear",
  conv2d: "Conv2d",
  batch_norm2d: "BatchNorm2d",
  relu: "ReLU",
  hardswish: "Hardswish",
  hardsigmoid: "Hardsigmoid",
  max_pool2d: "MaxPool2d",
  adaptive_avg_pool2d: "AdaptiveAvgPool2d",
  layer_norm: "LayerNorm",
  softmax: "Softmax",
  flatten: "Flatten",
};

function bad(node: FxArchNode, message: string): never {
  throw new QforgeError("BAD_DATA", `architecture node '${node.name}' (${node.op}): ${message}`, { node: node.name });
}

function attr(node: FxArchNode, key: string): unknown {
  return node.attrs?.[key];
}

/** torch's `_pair`: an int or a 2-sequence of ints. */
function pair(node: FxArchNode, key: string, fallback?: [number, number]): [number, number] {
  const v = attr(node, key);
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    bad(node, `attribute '${key}' is missing`);
  }
  if (typeof v === "number" && Number.isInteger(v)) return [v, v];
  if (Array.isArray(v) && v.length === 2 && v.every((x) => Number.isInteger(x))) return [v[0] as number, v[1] as number];
  if (Array.isArray(v) && v.length === 1 && Number.isInteger(v[0])) return [v[0] as number, v[0] as number];
  return bad(node, `attribute '${key}' must be an int or a pair of ints, got ${JSON.stringify(v)}`);
}

function numberAttr(node: FxArchNode, key: string, fallback?: number): number {
  const v = attr(node, key);
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    bad(node, `attribute '${key}' is missing`);
  }
  if (typeof v !== "number") bad(node, `attribute '${key}' must be a number, got ${JSON.stringify(v)}`);
  return v;
}

function rankOf(b: GraphBuilder, v: string): number {
  return b.typeOf(v).shape.length;
}

function staticShape(b: GraphBuilder, v: string, node: FxArchNode): number[] {
  const s = b.typeOf(v).shape;
  if (!s.every((d): d is number => typeof d === "number")) bad(node, `input '${v}' has a symbolic shape [${s.join(",")}]`);
  return s as number[];
}

/** torch's dim wrapping (maybe_wrap_dim). */
function wrapDim(dim: number, rank: number, node: FxArchNode): number {
  if (!Number.isInteger(dim) || dim < -rank || dim >= rank) bad(node, `dim ${dim} is out of range for rank ${rank}`);
  return dim < 0 ? dim + rank : dim;
}

/** Conv padding as ONNX pads [top, left, bottom, right]: an int, a pair, "valid" or "same" (aten _convolution_mode). */
function convPads(node: FxArchNode, kernel: readonly number[], dilation: [number, number], stride: [number, number]): number[] {
  const p = attr(node, "padding");
  if (p === "valid") return [0, 0, 0, 0];
  if (p === "same") {
    if (stride[0] !== 1 || stride[1] !== 1) bad(node, "padding='same' needs stride 1");
    const total = [0, 1].map((i) => dilation[i]! * (kernel[i]! - 1));
    const left = total.map((t) => Math.floor(t / 2));
    return [left[0]!, left[1]!, total[0]! - left[0]!, total[1]! - left[1]!];
  }
  const [ph, pw] = pair(node, "padding", [0, 0]);
  return [ph, pw, ph, pw];
}

/**
 * Builds the float program. Throws BAD_DATA naming the node for an unknown op, a missing
 * parameter, an input that is not defined earlier or a malformed attribute.
 */
export function buildFxModelProgram(arch: FxArchitecture, stateDict: Readonly<Record<string, unknown>>, meta: Record<string, unknown> = {}): ExportedProgram {
  if (typeof arch !== "object" || arch === null || !Array.isArray(arch.nodes) || !Array.isArray(arch.inputs) || !Array.isArray(arch.outputs)) {
    throw new QforgeError("BAD_DATA", "architecture must have inputs, outputs and nodes lists");
  }
  const b = new GraphBuilder();
  const params = new Map<string, string>();
  const param = (node: FxArchNode, role: string, required: boolean): string | undefined => {
    const key = node.params?.[role];
    if (key === undefined) {
      if (required) bad(node, `has no '${role}' parameter`);
      return undefined;
    }
    const known = params.get(key);
    if (known !== undefined) return known;
    if (!(key in stateDict)) bad(node, `parameter '${role}' names '${key}', which is not in state_dict`);
    const t = goldenTensor(stateDict[key], `state_dict['${key}']`);
    const kind = role === "running_mean" || role === "running_var" ? "buffer" : "parameter";
    const v = b.constant(key, t, kind);
    params.set(key, v);
    return v;
  };
  const filler = (node: FxArchNode, what: string, t: Tensor): string => b.freshConstant(`${node.name}.${what}`, t, "constant");

  for (const node of arch.nodes) {
    const inputs = node.inputs ?? [];
    for (const v of inputs) {
      try {
        b.typeOf(v);
      } catch {
        bad(node, `input '${v}' is not an earlier node`);
      }
    }
    const meta: NodeMeta = node.module !== undefined
      ? { moduleStack: [{ path: node.module, type: FX_MODULE_CLASS[node.op] ?? node.op }] }
      : {};
    const emit = (op: string, ins: readonly string[], attrs: Record<string, AttrValue> = {}): void => {
      b.node1(op, ins, attrs, { name: node.name, meta });
    };
    const x = inputs[0] ?? "";
    switch (node.op) {
      case "input": {
        if (!Array.isArray(node.shape)) bad(node, "an input needs a shape");
        const dtype = (node.dtype ?? "float32") as DType;
        b.input(node.name, dtype, node.shape);
        break;
      }
      case "linear": {
        const w = param(node, "weight", true)!;
        const bias = param(node, "bias", false);
        emit("linear", bias !== undefined ? [x, w, bias] : [x, w]);
        break;
      }
      case "conv2d": {
        const w = param(node, "weight", true)!;
        const bias = param(node, "bias", false);
        const mode = attr(node, "padding_mode");
        if (mode !== undefined && mode !== "zeros") bad(node, `padding_mode '${String(mode)}' is not supported`);
        const stride = pair(node, "stride", [1, 1]);
        const dilation = pair(node, "dilation", [1, 1]);
        const kernel = staticShape(b, w, node).slice(2);
        const pads = convPads(node, kernel, dilation, stride);
        emit("conv", bias !== undefined ? [x, w, bias] : [x, w], {
          strides: stride, pads, dilations: dilation, group: numberAttr(node, "groups", 1),
        });
        break;
      }
      case "batch_norm2d": {
        const c = numberAttr(node, "num_features");
        const mean = param(node, "running_mean", true)!;
        const variance = param(node, "running_var", true)!;
        const scale = param(node, "weight", false) ?? filler(node, "weight", full("float32", [c], 1));
        const shift = param(node, "bias", false) ?? filler(node, "bias", full("float32", [c], 0));
        emit("batch_norm", [x, scale, shift, mean, variance], { epsilon: numberAttr(node, "eps", 1e-5) });
        break;
      }
      case "layer_norm": {
        const ns = attr(node, "normalized_shape");
        const shape = typeof ns === "number" ? [ns] : Array.isArray(ns) ? (ns as number[]) : bad(node, "normalized_shape is missing");
        const scale = param(node, "weight", false) ?? filler(node, "weight", full("float32", shape, 1));
        const bias = param(node, "bias", false);
        emit("layer_normalization", bias !== undefined ? [x, scale, bias] : [x, scale], { axis: -shape.length, epsilon: numberAttr(node, "eps", 1e-5) });
        break;
      }
      case "relu":
        emit("relu", [x]);
        break;
      case "hardswish":
        emit("hardswish", [x]);
        break;
      case "hardsigmoid":
        // torch.nn.functional.hardsigmoid = relu6(x + 3) / 6: ONNX HardSigmoid with alpha 1/6, beta 1/2.
        emit("hard_sigmoid", [x], { alpha: 1 / 6, beta: 0.5 });
        break;
      case "max_pool2d": {
        const k = pair(node, "kernel_size");
        const s = pair(node, "stride", k);
        const p = pair(node, "padding", [0, 0]);
        const d = pair(node, "dilation", [1, 1]);
        emit("max_pool", [x], { kernel_shape: k, strides: s, pads: [p[0], p[1], p[0], p[1]], dilations: d, ceil_mode: attr(node, "ceil_mode") === true ? 1 : 0 });
        break;
      }
      case "adaptive_avg_pool2d": {
        const shape = staticShape(b, x, node);
        const raw = attr(node, "output_size");
        const req = typeof raw === "number" ? [raw, raw] : Array.isArray(raw) && raw.length === 2 ? raw : bad(node, "output_size must be an int or a pair");
        // A None entry keeps the input's size (torch's adaptive pooling).
        const size = req.map((v, i) => (v === null ? shape[2 + i]! : (v as number)));
        emit("adaptive_avg_pool2d", [x], { output_size: size });
        break;
      }
      case "add":
      case "mul": {
        if (inputs.length === 2) {
          emit(node.op, [x, inputs[1]!]);
        } else if (inputs.length === 1 && typeof attr(node, "other") === "number") {
          emit(node.op, [x, filler(node, "other", fromArray("float32", [], [attr(node, "other") as number]))]);
        } else {
          bad(node, "needs two inputs (or one input and a numeric 'other')");
        }
        break;
      }
      case "cat": {
        if (inputs.length === 0) bad(node, "needs at least one input");
        emit("concat", inputs, { axis: wrapDim(numberAttr(node, "dim", 0), rankOf(b, x), node) });
        break;
      }
      case "flatten": {
        // torch.flatten(x, start_dim, end_dim): ONNX Flatten(axis 1) when it flattens dims 1..end into one,
        // otherwise the reshape to the merged shape.
        const shape = staticShape(b, x, node);
        const rank = shape.length;
        const start = wrapDim(numberAttr(node, "start_dim", node.module !== undefined ? 1 : 0), Math.max(rank, 1), node);
        const end = wrapDim(numberAttr(node, "end_dim", -1), Math.max(rank, 1), node);
        if (start === 1 && end === rank - 1) {
          emit("flatten", [x], { axis: 1 });
        } else {
          const merged = shape.slice(start, end + 1).reduce((p, d) => p * d, 1);
          const target = [...shape.slice(0, start), merged, ...shape.slice(end + 1)];
          emit("reshape", [x, filler(node, "shape", fromArray("int64", [target.length], target.map((d) => BigInt(d))))]);
        }
        break;
      }
      case "softmax":
        emit("softmax", [x], { axis: wrapDim(numberAttr(node, "dim"), rankOf(b, x), node) });
        break;
      default:
        bad(node, "unknown op");
    }
  }
  b.output(...arch.outputs);
  const graph = b.build();
  const declared = new Set(graph.inputs);
  for (const v of arch.inputs) {
    if (!declared.has(v)) throw new QforgeError("BAD_DATA", `architecture input '${v}' is not an input node`);
  }
  if (arch.inputs.length !== graph.inputs.length) {
    throw new QforgeError("BAD_DATA", `architecture lists inputs [${arch.inputs.join(", ")}] but has input nodes [${graph.inputs.join(", ")}]`);
  }
  // The signature follows `architecture.inputs` (the order the model is called with).
  const program = programFromGraph(graph, { source: "golden-fx", ...meta });
  return { ...program, inputs: arch.inputs.map((v) => ({ name: v, value: v })) };
}
