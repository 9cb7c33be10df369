import { castNumber, dtypeInfo, fromArray, QforgeError, zeros, type DType, type Tensor } from "@qforge/ir";
import {
  affineQParamValues,
  MappingType as AffineMappingType,
  ZeroPointDomain as AffineZeroPointDomain,
  type ChooseQParamsAffineOptions,
} from "../primitives/affine.js";
import type { Granularity as BlockGranularity } from "../primitives/blocks.js";
import { f32, FLOAT32_EPS } from "../primitives/float32.js";
import { checkMergeKind, checkStateKind, foldMinMax, stateRanges } from "./common.js";
import { defaultQParams, type QParams } from "./qparams.js";
import { aminmax, aminmaxPerChannel, asFloat32, isEmpty, normalizeAxis } from "./reduce.js";
import type { AffineObserverOptionsJson, AffineQuantizedMinMaxObserverState, Observer } from "./types.js";

/** torchao `MappingType`, by the lower-case names that options and states use. */
export type MappingType = "symmetric" | "asymmetric" | "symmetric_no_clipping_err";
/** torchao `ZeroPointDomain`: integer zero point, float zero point (tinygemm), or none. */
export type ZeroPointDomain = "int" | "float" | "none";
/** torchao granularities: which elements share one scale/zero point (the primitives' `Granularity`). */
export type Granularity = BlockGranularity;

const MAPPING_TYPES: Record<MappingType, AffineMappingType> = {
  symmetric: AffineMappingType.SYMMETRIC,
  asymmetric: AffineMappingType.ASYMMETRIC,
  symmetric_no_clipping_err: AffineMappingType.SYMMETRIC_NO_CLIPPING_ERR,
};
const ZERO_POINT_DOMAINS: Record<ZeroPointDomain, AffineZeroPointDomain> = {
  int: AffineZeroPointDomain.INT,
  float: AffineZeroPointDomain.FLOAT,
  none: AffineZeroPointDomain.NONE,
};

/**
 * The knobs of `chooseQParamsAffine` that the observer passes on (the scale is returned in
 * `scaleDtype`: float32, float64, float16 or bfloat16), with the mapping type and zero point domain
 * by their lower-case names and a granularity instead of a block size.
 */
export interface AffineQuantizedMinMaxObserverOptions
  extends Pick<ChooseQParamsAffineOptions, "quantMin" | "quantMax" | "eps" | "scaleDtype" | "zeroPointDtype" | "preserveZero"> {
  mappingType: MappingType;
  /** Integer dtype of the quantized values (int8, uint8, int4, uint4, int16, ...). */
  targetDtype: DType;
  granularity: Granularity;
  /** Default "int". */
  zeroPointDomain?: ZeroPointDomain;
}

const KIND = "AffineQuantizedMinMaxObserver";

function bad(msg: string, hint?: string): QforgeError {
  return new QforgeError("BAD_CONFIG", `${KIND}: ${msg}`, hint !== undefined ? { hint } : {});
}

/**
 * torchao `_get_and_check_qmin_qmax`: the default range is the target dtype's; a given bound must lie
 * within it.
 */
function qminQmax(targetDtype: DType, quantMin: number | undefined, quantMax: number | undefined): { qmin: number; qmax: number } {
  const info = dtypeInfo(targetDtype);
  if (info.kind !== "int" && info.kind !== "uint") {
    throw new QforgeError("BAD_DTYPE", `${KIND}: targetDtype must be an integer dtype, got ${targetDtype}`);
  }
  const lower = info.min;
  const upper = info.max;
  const qmin = quantMin ?? lower;
  const qmax = quantMax ?? upper;
  if (!Number.isSafeInteger(qmin) || !Number.isSafeInteger(qmax)) throw bad(`quantMin/quantMax must be integers, got ${qmin}, ${qmax}`);
  if (qmin < lower) throw bad(`quant_min out of bound for dtype, quant_min_lower_bound: ${lower} quant_min: ${qmin}`);
  if (qmax > upper) throw bad(`quant_max out of bound for dtype, quant_max_upper_bound: ${upper} quant_max: ${qmax}`);
  if (!(qmin < qmax)) throw bad(`quantMin must be less than quantMax, got [${qmin}, ${qmax}]`);
  return { qmin, qmax };
}

/**
 * torchao's `AffineQuantizedMinMaxObserver`: min and max reduced per block (the block shape comes
 * from the granularity via `get_block_size`/`_get_reduction_params`), running min/max across
 * batches, and qparams by `choose_qparams_affine_with_min_max` (quant_primitives.py): the formula
 * of the primitives (`affineQParamValues`) with torchao's float32 operands, i.e. quant_min/quant_max
 * as float32 scalars where the formula divides or clamps, and the asymmetric range divided by
 * `f32(cast(qmax - qmin, scale_dtype))`.
 *
 * The scale and zero point have the reduced shape (e.g. [] per tensor, [C] per axis, [rows, K/G] per
 * group). Deviations, on purpose: statistics are float32 whatever the input dtype; a 'none' zero point
 * domain returns zeros (torchao returns None; quantizing with zero point 0 is the same thing);
 * configurations torchao only rejects when computing qparams are refused at construction; per_group
 * accepts any rank (blocks along the last axis); no data gives scale 1 / zero point 0 like PyTorch's
 * observers instead of an assertion.
 */
export class AffineQuantizedMinMaxObserver implements Observer {
  readonly kind = "AffineQuantizedMinMaxObserver" as const;
  readonly mappingType: MappingType;
  readonly targetDtype: DType;
  readonly granularity: Granularity;
  readonly quantMin: number;
  readonly quantMax: number;
  readonly eps: number;
  readonly scaleDtype: DType;
  readonly zeroPointDtype: DType;
  readonly preserveZero: boolean;
  readonly zeroPointDomain: ZeroPointDomain;
  private readonly options: AffineObserverOptionsJson;
  private shape: number[] | null = null;
  private minVals: Float32Array | null = null;
  private maxVals: Float32Array | null = null;

  constructor(options: AffineQuantizedMinMaxObserverOptions) {
    if (options === undefined || options.mappingType === undefined || options.targetDtype === undefined || options.granularity === undefined) {
      throw bad("mappingType, targetDtype and granularity are required");
    }
    const { mappingType, targetDtype, granularity } = options;
    if (!["symmetric", "asymmetric", "symmetric_no_clipping_err"].includes(mappingType)) throw bad(`Unsupported mapping type: ${String(mappingType)}`);
    const { qmin, qmax } = qminQmax(targetDtype, options.quantMin, options.quantMax);
    switch (granularity.kind) {
      case "per_tensor":
      case "per_token":
        break;
      case "per_axis":
        if (!Number.isInteger(granularity.axis)) throw bad(`per_axis axis must be an integer, got ${granularity.axis}`);
        break;
      case "per_group":
        if (!Number.isInteger(granularity.groupSize) || granularity.groupSize < 1) throw bad(`per_group groupSize must be a positive integer, got ${granularity.groupSize}`);
        break;
      default:
        throw bad(`Unsupported Granularity: ${JSON.stringify(granularity)}`);
    }
    const preserveZero = options.preserveZero ?? true;
    const zeroPointDomain = options.zeroPointDomain ?? "int";
    if (!["int", "float", "none"].includes(zeroPointDomain)) throw bad(`Unrecognized zero point domain: ${String(zeroPointDomain)}`);
    if (mappingType !== "asymmetric") {
      if (!preserveZero) throw bad("preserve_zero == False is not supported for symmetric quantization");
      if (zeroPointDomain === "float") throw bad("zero_point_domain should be ZeroPointDomain.INT or ZeroPointDomain.NONE for symmetric quantization");
      if (mappingType === "symmetric_no_clipping_err" && !(qmin < 0 && qmax > 0)) {
        throw bad(`symmetric_no_clipping_err needs a signed range around 0, got [${qmin}, ${qmax}]`, "use a signed targetDtype such as int8 or int4");
      }
    }
    const scaleDtype = options.scaleDtype ?? "float32";
    if (!["float32", "float64", "float16", "bfloat16"].includes(scaleDtype)) throw new QforgeError("BAD_DTYPE", `${KIND}: scaleDtype must be float32, float64, float16 or bfloat16, got ${scaleDtype}`);
    const zeroPointDtype = options.zeroPointDtype ?? (zeroPointDomain === "float" ? "float32" : "int32");
    dtypeInfo(zeroPointDtype);
    const eps = f32(options.eps ?? FLOAT32_EPS);
    if (!(eps >= 0) || !Number.isFinite(eps)) throw bad(`eps must be a finite non-negative number, got ${options.eps}`);
    this.mappingType = mappingType;
    this.targetDtype = targetDtype;
    this.granularity = { ...granularity };
    this.quantMin = qmin;
    this.quantMax = qmax;
    this.eps = eps;
    this.scaleDtype = scaleDtype;
    this.zeroPointDtype = zeroPointDtype;
    this.preserveZero = preserveZero;
    this.zeroPointDomain = zeroPointDomain;
    this.options = {
      mappingType,
      targetDtype,
      granularity: { ...granularity },
      quantMin: qmin,
      quantMax: qmax,
      eps,
      scaleDtype,
      zeroPointDtype,
      preserveZero,
      zeroPointDomain,
    };
  }

  get initialized(): boolean {
    return this.minVals !== null;
  }

  /** Shape of the reduced statistics / qparams, or null before any data. */
  get qparamsShape(): number[] | null {
    return this.shape ? [...this.shape] : null;
  }

  /** Per-block observed range (float32 values), or null before any data. */
  get range(): { min: Float32Array; max: Float32Array } | null {
    return this.minVals && this.maxVals ? { min: this.minVals.slice(), max: this.maxVals.slice() } : null;
  }

  observe(x: Tensor): void {
    if (isEmpty(x)) return;
    const data = asFloat32(x);
    const { shape, mins, maxs } = this.reduce(data, x.shape);
    if (this.shape !== null && this.shape.join(",") !== shape.join(",")) {
      throw new QforgeError("BAD_SHAPE", `${KIND}: Can't update existing min_val - shape mismatch, self.min_val:[${this.shape}] != min_val:[${shape}]`);
    }
    this.update(shape, mins, maxs);
  }

  private update(shape: number[], mins: Float32Array, maxs: Float32Array): void {
    if (this.minVals === null || this.maxVals === null) {
      this.shape = shape;
      this.minVals = mins;
      this.maxVals = maxs;
      return;
    }
    foldMinMax(this.minVals, this.maxVals, mins, maxs);
  }

  /**
   * Block min/max. `_get_reduction_params(block_size, shape)`: a dim whose block equals the dim is
   * reduced unless it is 1 (size-1 dims stay in the output shape), a block of 1 keeps the dim, and a
   * block in between splits the dim into (dim / block, block) and reduces the block part.
   */
  private reduce(data: Float32Array, inShape: readonly number[]): { shape: number[]; mins: Float32Array; maxs: Float32Array } {
    const rank = inShape.length;
    const g = this.granularity;
    const block = [...inShape];
    if (g.kind === "per_axis") {
      if (rank === 0) throw new QforgeError("BAD_SHAPE", `${KIND}: per_axis needs a tensor of rank >= 1`);
      block[normalizeAxis(KIND, g.axis, rank)] = 1;
    } else if (g.kind === "per_token" || g.kind === "per_group") {
      if (rank === 0) throw new QforgeError("BAD_SHAPE", `${KIND}: ${g.kind} needs a tensor of rank >= 1`);
      for (let i = 0; i < rank - 1; i++) block[i] = 1;
      if (g.kind === "per_group") {
        const last = inShape[rank - 1]!;
        if (last % g.groupSize !== 0) {
          throw new QforgeError("BAD_SHAPE", `${KIND}: Expecting input size at ${rank - 1} dimension: ${last} to be divisible by block_size at ${rank - 1} dimension: ${g.groupSize}`);
        }
        block[rank - 1] = g.groupSize;
      }
    }
    const outShape: number[] = [];
    for (let i = 0; i < rank; i++) {
      const b = block[i]!;
      const d = inShape[i]!;
      if (b !== d && b > 1) outShape.push(d / b);
      else if (b === 1) outShape.push(d);
    }
    let outSize = 1;
    for (const d of outShape) outSize *= d;
    const mins = new Float32Array(outSize);
    const maxs = new Float32Array(outSize);
    if (g.kind === "per_tensor") {
      const r = aminmax(KIND, data);
      mins[0] = r.min;
      maxs[0] = r.max;
    } else if (g.kind === "per_axis") {
      aminmaxPerChannel(KIND, data, inShape, normalizeAxis(KIND, g.axis, rank), mins, maxs);
    } else {
      // blocks are runs of `size` consecutive elements along the last axis, in output order
      const size = g.kind === "per_group" ? g.groupSize : inShape[rank - 1]!;
      aminmaxPerChannel(KIND, data, [outSize, size], 0, mins, maxs);
    }
    return { shape: outShape, mins, maxs };
  }

  calculateQParams(): QParams {
    if (this.minVals === null || this.maxVals === null || this.shape === null) return defaultQParams();
    const { quantMin: qmin, quantMax: qmax } = this;
    const { scale, zeroPoint } = affineQParamValues(this.minVals, this.maxVals, {
      mappingType: MAPPING_TYPES[this.mappingType],
      zeroPointDomain: ZERO_POINT_DOMAINS[this.zeroPointDomain],
      preserveZero: this.preserveZero,
      quantMin: qmin,
      quantMax: qmax,
      eps: this.eps,
      // torch.tensor(float(quant_max - quant_min), dtype=scale_dtype); the bounds as float32 scalars
      floatOperands: { quantMin: f32(qmin), quantMax: f32(qmax), range: f32(castNumber(this.scaleDtype, qmax - qmin)) },
    });
    return {
      scale: fromArray(this.scaleDtype, this.shape, scale),
      // a 'none' domain has no zero point in torchao; zero point 0 quantizes the same way
      zeroPoint: zeroPoint === null ? zeros("int32", this.shape) : fromArray(this.zeroPointDtype, this.shape, zeroPoint),
    };
  }

  /** Exact: block-wise min/max of both (the reduced shapes must agree). */
  merge(other: this): void {
    checkMergeKind(this, other);
    if (other.minVals === null || other.maxVals === null || other.shape === null) return;
    if (this.shape !== null && this.shape.join(",") !== other.shape.join(",")) {
      throw new QforgeError("BAD_SHAPE", `${KIND}.merge: reduced shapes differ ([${this.shape}] vs [${other.shape}])`);
    }
    this.update([...other.shape], other.minVals.slice(), other.maxVals.slice());
  }

  state(): AffineQuantizedMinMaxObserverState {
    return {
      kind: KIND,
      version: 1,
      options: { ...this.options, granularity: { ...this.options.granularity } },
      shape: this.shape ? [...this.shape] : null,
      minVal: this.minVals ? Array.from(this.minVals) : null,
      maxVal: this.maxVals ? Array.from(this.maxVals) : null,
    };
  }

  static fromState(state: AffineQuantizedMinMaxObserverState): AffineQuantizedMinMaxObserver {
    checkStateKind(KIND, state);
    const o = new AffineQuantizedMinMaxObserver(state.options);
    if (state.minVal === null && state.maxVal === null) return o;
    const shape = state.shape;
    if (!Array.isArray(shape) || !Array.isArray(state.minVal) || !Array.isArray(state.maxVal)) {
      throw new QforgeError("BAD_DATA", `${KIND}: state needs shape, minVal and maxVal`);
    }
    const n = shape.reduce((a, b) => a * b, 1);
    if (state.minVal.length !== n || state.maxVal.length !== n) throw new QforgeError("BAD_DATA", `${KIND}: state minVal/maxVal must have ${n} entries`);
    const { mins, maxs } = stateRanges(KIND, "block", state.minVal, state.maxVal);
    o.update([...shape], mins, maxs);
    return o;
  }
}
