/**
 * The quantized program as ONNX bytes (@qforge/onnx exportOnnx): QDQ form (QuantizeLinear /
 * DequantizeLinear around float ops, what ONNX Runtime's quantize_static writes with
 * QuantFormat.QDQ) or QOperator form (QLinearConv / QLinearMatMul / MatMulInteger where a pattern
 * allows, QuantFormat.QOperator). The exporter picks the lowest opset every node allows: 21 for int4
 * and blocked (per-group) DequantizeLinear.
 */
import { isQforgeError, QforgeError, valueUsers, type ExportedProgram } from "@qforge/ir";
import { exportOnnx, type ExportForm } from "@qforge/onnx";
import { bareMessage } from "../data/errors.js";

export type OnnxForm = ExportForm;

/**
 * Exports the result of `quantizeModel`. When the exporter refuses a weight-only dequantize (e.g. a
 * weight dtype or block layout it cannot write), the error is UNSUPPORTED and names the layer that
 * reads the weight, not the helper node.
 */
export function exportQuantized(ep: ExportedProgram, form: OnnxForm): Uint8Array {
  try {
    return exportOnnx(ep, { form });
  } catch (e) {
    if (!isQforgeError(e) || e.node === undefined) throw e;
    const dq = ep.graph.nodes.find((n) => n.name === e.node);
    const info = dq?.meta["weightOnly"] as { weight?: string; dtype?: string; groupSize?: number } | undefined;
    if (dq === undefined || info === undefined) throw e;
    const layers = (valueUsers(ep.graph).get(dq.outputs[0]!) ?? []).map((n) => n.name);
    const layer = layers[0] ?? dq.name;
    const what = `${info.dtype ?? "quantized"} weight${info.groupSize ? ` in groups of ${info.groupSize}` : ""}`;
    throw new QforgeError("UNSUPPORTED", `layer '${layer}': its ${what} cannot be written to ONNX: ${bareMessage(e)}`, {
      node: layer, cause: e,
      hint: "int4 and per-group weights need DequantizeLinear with block_size (opset 21); try --weight-only int8 --group-size 0",
    });
  }
}
