/**
 * The quantization choices of the example, in one place (README.md, "Choices", explains each).
 */
import type { ActivationObserver } from "./pipeline.js";

/**
 * The activation observer: ORT's percentile calibrator. MinMax reads as well (99.89 % characters)
 * but its ranges, stretched by rare outliers, leave coarse int8 steps: onnxruntime's execution of the
 * exported QDQ model then disagrees with qforge's on 1.3 % of the time steps. torch's
 * HistogramObserver (XNNPACK's default) collapses (15 % characters).
 */
export const DEFAULT_OBSERVER: ActivationObserver = "percentile";

/** Keep 99.99 % of the calibration values in range (99.9 clips real signal: 87 % characters). */
export const DEFAULT_PERCENTILE = 99.99;

/** Rec nodes kept in float (their whole pattern), by ONNX node name: none is needed. */
export const DEFAULT_FLOAT_NODES: readonly string[] = [];

/**
 * Det nodes kept in float by default: DB's head after the feature pyramid (the 3x3 conv + BN + relu,
 * the bias adds of its two transposed convs, the sigmoid). The numeric debugger puts its int8 relu at
 * 1.6 dB SQNR (the transposed convs have no integer op and stay float anyway).
 */
export const DET_FLOAT_NODES: readonly string[] = ["p2o.Conv.61", "p2o.Relu.10", "p2o.Add.278", "p2o.Relu.11", "p2o.Add.280", "p2o.Sigmoid.0"];
