import { QforgeError, tensor, type Tensor } from "@qforge/ir";
import type { UniformQuantConfig } from "./config.js";
import { isSymmetric } from "./config.js";
import { f32, rint, truncToInt32 } from "../primitives/float32.js";

/**
 * What `calculateQParams()` returns: float32 scales and integer zero points. PyTorch returns int32
 * zero points for affine schemes and int64 for symmetric ones and for the no-data default; qforge
 * always returns int32 (every zero point fits), with the same values.
 */
export interface QParams {
  /** float32 (torchao's observer: its scaleDtype), shape [1] per tensor or [C] per channel. */
  scale: Tensor;
  /** int32 (float32 for per_channel_affine_float_qparams and float zero point domains), shape of `scale`. */
  zeroPoint: Tensor;
}

/**
 * What PyTorch returns when an observer saw no data (`check_min_max_valid` is false):
 * `torch.tensor([1.0])`, `torch.tensor([0])`, shape [1] even for per-channel observers.
 */
export function defaultQParams(): QParams {
  return { scale: tensor("float32", [1], Float32Array.of(1)), zeroPoint: tensor("int32", [1], Int32Array.of(0)) };
}

/**
 * `UniformQuantizationObserverBase._calculate_qparams` (observer.py, PyTorch 1.13), elementwise over
 * channels, in float32 exactly as the tensor ops run:
 *
 *   min_neg = min(min_val, 0); max_pos = max(max_val, 0)
 *   symmetric:  scale = max(f32(max(-min_neg, max_pos) / f32((qmax - qmin) / 2)), eps)
 *               zp = 0, or 128 for quint8 ((qmin + qmax) // 2 with a customized range)
 *   float_qparams: scale = f32(f32(max - min) / f32(qmax - qmin)), 1 where scale <= eps;
 *               zp = f32(-min / scale) (a float zero point)
 *   affine:     scale = max(f32(f32(max_pos - min_neg) / f32(qmax - qmin)), eps)
 *               zp = clamp(qmin - int32(rint(f32(min_neg / scale))), qmin, qmax)
 *
 * `minVals`/`maxVals` hold float32 values. Throws BAD_DATA when min > max (PyTorch asserts).
 */
export function qparamsFromMinMax(kind: string, minVals: ArrayLike<number>, maxVals: ArrayLike<number>, cfg: UniformQuantConfig): QParams {
  const n = minVals.length;
  const scale = new Float32Array(n);
  const { quantMin: qmin, quantMax: qmax, eps } = cfg;
  for (let i = 0; i < n; i++) {
    const mn = minVals[i]!;
    const mx = maxVals[i]!;
    if (!(mn <= mx)) {
      throw new QforgeError("BAD_DATA", `${kind}: min ${mn} should be less than max ${mx}`);
    }
  }
  if (cfg.qscheme === "per_channel_affine_float_qparams") {
    const zp = new Float32Array(n);
    const range = f32(qmax - qmin);
    for (let i = 0; i < n; i++) {
      const mn = minVals[i]!;
      let s = f32(f32(maxVals[i]! - mn) / range);
      if (!(s > eps)) s = 1;
      scale[i] = s;
      zp[i] = f32(f32(-1 * mn) / s);
    }
    return { scale: tensor("float32", [n], scale), zeroPoint: tensor("float32", [n], zp) };
  }
  const zp = new Int32Array(n);
  if (isSymmetric(cfg.qscheme)) {
    const half = f32((qmax - qmin) / 2);
    const zpValue = cfg.dtype === "quint8" ? (cfg.hasCustomizedQrange ? Math.floor((qmin + qmax) / 2) : 128) : 0;
    for (let i = 0; i < n; i++) {
      const minNeg = Math.min(minVals[i]!, 0);
      const maxPos = Math.max(maxVals[i]!, 0);
      const absMax = Math.max(-minNeg, maxPos);
      const s = f32(absMax / half);
      scale[i] = s > eps ? s : eps;
      zp[i] = zpValue;
    }
  } else {
    const range = f32(qmax - qmin);
    for (let i = 0; i < n; i++) {
      const minNeg = Math.min(minVals[i]!, 0);
      const maxPos = Math.max(maxVals[i]!, 0);
      let s = f32(f32(maxPos - minNeg) / range);
      if (!(s > eps)) s = eps;
      scale[i] = s;
      // `quant_min - torch.round(min_val_neg / scale).to(torch.int)`: int32 arithmetic (wraps)
      const r = truncToInt32(rint(f32(minNeg / s)));
      let z = (qmin - r) | 0;
      if (z < qmin) z = qmin;
      if (z > qmax) z = qmax;
      zp[i] = z;
    }
  }
  return { scale: tensor("float32", [n], scale), zeroPoint: tensor("int32", [n], zp) };
}
