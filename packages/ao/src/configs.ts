/**
 * The built-in quantize_ configs (torchao/quantization/quant_api.py, version 2 of each config) and
 * their weight handlers. Formulas: docs/quantization-math.md, "torchao quantize_".
 */
import { QforgeError, type DType, type Tensor } from "@qforge/ir";
import { blockSizeFor, MappingType, PerAxis, PerGroup, ZeroPointDomain, type Granularity } from "@qforge/quant";
import type { ActivationDType, ActivationQuant } from "./activation.js";
import { codebookQuantizeWeight } from "./codebook.js";
import { ObservedLinear } from "./modules.js";
import { AOBaseConfig, isObservedLinear, isProgramSite, registerQuantizeWeightHandler, type WeightSite, type WeightSwap } from "./registry.js";
import { affineQuantizeWeight, type WeightLayout } from "./tensor.js";

/** torch.finfo(torch.float32).eps: the eps torchao's Int8Tensor / intx paths pass. */
const FLOAT32_EPS = 2 ** -23;
/** torch.finfo(torch.float32).smallest_normal: `_choose_qparams_affine_tinygemm`'s default eps. */
const FLOAT32_SMALLEST_NORMAL = 2 ** -126;

function weightBlockSize(granularity: Granularity, w: Tensor, what: string): [number, number] | string {
  const [n, k] = [w.shape[0]!, w.shape[1]!];
  if (granularity.kind === "per_group" && k % granularity.groupSize !== 0) {
    return `in_features ${k} is not divisible by group size ${granularity.groupSize}`;
  }
  if (granularity.kind === "per_axis" && granularity.axis !== 0 && granularity.axis !== -2) {
    throw new QforgeError("BAD_CONFIG", `${what}: weights are quantized per output row (PerAxis(0)), got PerAxis(${granularity.axis})`);
  }
  const b = blockSizeFor(granularity, [n, k]);
  return [b[0]!, b[1]!];
}

function swapOrSkip(w: Tensor, what: string, granularity: Granularity, quantize: (blockSize: [number, number]) => WeightSwap): WeightSwap {
  const b = weightBlockSize(granularity, w, what);
  return typeof b === "string" ? { skip: b } : quantize(b);
}

// ---- A16W8 ----------------------------------------------------------------------------------

/**
 * torchao `Int8WeightOnlyConfig`: symmetric int8 weights (range [-128, 127], scale = amax / 127.5),
 * per row by default (PerAxis(0), torchao's PerRow), or PerTensor / PerGroup(g).
 */
export class Int8WeightOnlyConfig extends AOBaseConfig {
  readonly granularity: Granularity;
  readonly layout: WeightLayout | undefined;
  constructor(opts: { granularity?: Granularity; layout?: WeightLayout } = {}) {
    super();
    this.granularity = opts.granularity ?? PerAxis(0);
    this.layout = opts.layout;
  }
}

registerQuantizeWeightHandler(Int8WeightOnlyConfig, (w, c) => swapOrSkip(w, "Int8WeightOnlyConfig", c.granularity, (blockSize) => ({
  weight: affineQuantizeWeight(w, {
    mappingType: MappingType.SYMMETRIC, blockSize, targetDtype: "int8", eps: FLOAT32_EPS, zeroPointDtype: "int8",
    ...(c.layout ? { layout: c.layout } : {}),
  }),
  act: { kind: "none" },
})));

// ---- A16W4 ----------------------------------------------------------------------------------

/**
 * torchao `Int4WeightOnlyConfig` (int4_choose_qparams_algorithm TINYGEMM, the default): asymmetric
 * uint4 per group along K, zero point in the FLOAT domain, 0.0 not necessarily representable:
 * scale = max((max - min) / 15, smallest_normal), zero = min + 8 * scale, q = round((x - min) / scale).
 * Weights whose K is not divisible by the group size are left in float (torchao logs and skips).
 */
export class Int4WeightOnlyConfig extends AOBaseConfig {
  readonly groupSize: 32 | 64 | 128 | 256;
  readonly layout: WeightLayout | undefined;
  constructor(opts: { groupSize?: 32 | 64 | 128 | 256; layout?: WeightLayout } = {}) {
    super();
    const g = opts.groupSize ?? 128;
    if (![32, 64, 128, 256].includes(g)) throw new QforgeError("BAD_CONFIG", `Int4WeightOnlyConfig: groupSize must be 32, 64, 128 or 256, got ${g}`);
    this.groupSize = g;
    this.layout = opts.layout;
  }
}

registerQuantizeWeightHandler(Int4WeightOnlyConfig, (w, c) => swapOrSkip(w, "Int4WeightOnlyConfig", PerGroup(c.groupSize), (blockSize) => ({
  weight: affineQuantizeWeight(w, {
    mappingType: MappingType.ASYMMETRIC, blockSize, targetDtype: "uint4", quantMin: 0, quantMax: 15,
    eps: FLOAT32_SMALLEST_NORMAL, preserveZero: false, zeroPointDomain: ZeroPointDomain.FLOAT, zeroPointDtype: "float32",
    ...(c.layout ? { layout: c.layout } : {}),
  }),
  act: { kind: "none" },
})));

// ---- A8W8 dynamic ---------------------------------------------------------------------------

/**
 * torchao `Int8DynamicActivationInt8WeightConfig`: int8 weights symmetric per row (or per tensor),
 * activations quantized per call to int8 per token (or per tensor), symmetric by default; the matmul
 * accumulates in int32 and rescales (torchao Int8Tensor + `_int_scaled_matmul`).
 */
export class Int8DynamicActivationInt8WeightConfig extends AOBaseConfig {
  readonly actMapping: MappingType;
  readonly actGranularity: "per_token" | "per_tensor";
  readonly granularity: Granularity;
  readonly layout: WeightLayout | undefined;
  constructor(opts: { actMapping?: MappingType; actGranularity?: "per_token" | "per_tensor"; granularity?: Granularity; layout?: WeightLayout } = {}) {
    super();
    this.actMapping = opts.actMapping ?? MappingType.SYMMETRIC;
    if (this.actMapping !== MappingType.SYMMETRIC && this.actMapping !== MappingType.ASYMMETRIC) {
      throw new QforgeError("BAD_CONFIG", "Int8DynamicActivationInt8WeightConfig: actMapping must be SYMMETRIC or ASYMMETRIC");
    }
    this.actGranularity = opts.actGranularity ?? "per_token";
    this.granularity = opts.granularity ?? PerAxis(0);
    if (this.granularity.kind !== "per_axis" && this.granularity.kind !== "per_tensor") {
      throw new QforgeError("BAD_CONFIG", "Int8DynamicActivationInt8WeightConfig: weight granularity must be PerAxis(0) or PerTensor()");
    }
    this.layout = opts.layout;
  }
}

registerQuantizeWeightHandler(Int8DynamicActivationInt8WeightConfig, (w, c, site) => {
  if (site.kind !== "linear") return { skip: "activation quantization applies to linear layers only" };
  return swapOrSkip(w, "Int8DynamicActivationInt8WeightConfig", c.granularity, (blockSize) => ({
    weight: affineQuantizeWeight(w, {
      mappingType: MappingType.SYMMETRIC, blockSize, targetDtype: "int8", eps: FLOAT32_EPS, zeroPointDtype: "int8",
      ...(c.layout ? { layout: c.layout } : {}),
    }),
    act: { kind: "dynamic", dtype: "int8", mapping: c.actMapping, granularity: c.actGranularity, compute: "integer" },
  }));
});

// ---- 8da-intx-w (ExecuTorch) ------------------------------------------------------------------

/**
 * torchao `Int8DynamicActivationIntxWeightConfig` (IntxUnpackedToInt8Tensor): intx weights (int1..int8)
 * per group along K (or per row), symmetric by default (scale = amax / ((qmax - qmin) / 2)), and
 * int8 per-token asymmetric activations, fake-quantized (quantize then dequantize) before a float
 * matmul with the dequantized weight: the ExecuTorch 8da-intx-w recipe.
 */
export class Int8DynamicActivationIntxWeightConfig extends AOBaseConfig {
  readonly weightDtype: DType;
  readonly granularity: Granularity;
  readonly weightMappingType: MappingType;
  readonly layout: WeightLayout | undefined;
  constructor(opts: { weightDtype?: DType; granularity?: Granularity; weightMappingType?: MappingType; layout?: WeightLayout } = {}) {
    super();
    this.weightDtype = opts.weightDtype ?? "int8";
    if (!/^int[1-8]$/.test(this.weightDtype)) throw new QforgeError("BAD_CONFIG", `weightDtype must be int1..int8, got ${this.weightDtype}`);
    this.granularity = opts.granularity ?? PerGroup(32);
    if (this.granularity.kind !== "per_group" && this.granularity.kind !== "per_axis") {
      throw new QforgeError("BAD_CONFIG", "weight granularity must be PerGroup(g) or PerAxis(0)");
    }
    this.weightMappingType = opts.weightMappingType ?? MappingType.SYMMETRIC;
    this.layout = opts.layout;
  }
}

/** ExecuTorch's 8da4w: Int8DynamicActivationIntxWeightConfig with int4 weights per group (default 32). */
export class Int8DynamicActivationInt4WeightConfig extends Int8DynamicActivationIntxWeightConfig {
  readonly groupSize: number;
  constructor(opts: { groupSize?: number; layout?: WeightLayout } = {}) {
    super({ weightDtype: "int4", granularity: PerGroup(opts.groupSize ?? 32), ...(opts.layout ? { layout: opts.layout } : {}) });
    this.groupSize = opts.groupSize ?? 32;
  }
}

registerQuantizeWeightHandler(Int8DynamicActivationIntxWeightConfig, (w, c, site) => {
  if (site.kind !== "linear") return { skip: "activation quantization applies to linear layers only" };
  return swapOrSkip(w, "Int8DynamicActivationIntxWeightConfig", c.granularity, (blockSize) => ({
    weight: affineQuantizeWeight(w, {
      mappingType: c.weightMappingType, blockSize, targetDtype: c.weightDtype, eps: FLOAT32_EPS, zeroPointDtype: "int8",
      ...(c.layout ? { layout: c.layout } : {}),
    }),
    act: { kind: "dynamic", dtype: "int8", mapping: MappingType.ASYMMETRIC, granularity: "per_token", compute: "dequantize" },
  }));
});

// ---- float8 ---------------------------------------------------------------------------------

type Float8DType = "float8_e4m3fn" | "float8_e5m2";

function checkFloat8(d: string, what: string): Float8DType {
  if (d !== "float8_e4m3fn" && d !== "float8_e5m2") throw new QforgeError("BAD_CONFIG", `${what} must be float8_e4m3fn or float8_e5m2, got ${d}`);
  return d;
}

/**
 * torchao `Float8WeightOnlyConfig`: fp8 weights scaled per row (default) or per tensor,
 * scale = amax / finfo(fp8).max (`_choose_scale_float8`), q = fp8(clamp(x / scale)); the matmul runs
 * in float32 on the dequantized weight.
 */
export class Float8WeightOnlyConfig extends AOBaseConfig {
  readonly weightDtype: Float8DType;
  readonly granularity: Granularity;
  readonly layout: WeightLayout | undefined;
  constructor(opts: { weightDtype?: Float8DType; granularity?: Granularity; layout?: WeightLayout } = {}) {
    super();
    this.weightDtype = checkFloat8(opts.weightDtype ?? "float8_e4m3fn", "weightDtype");
    this.granularity = opts.granularity ?? PerAxis(0);
    this.layout = opts.layout;
  }
}

function float8Weight(w: Tensor, dtype: Float8DType, blockSize: [number, number], layout: WeightLayout | undefined) {
  return affineQuantizeWeight(w, {
    mappingType: MappingType.SYMMETRIC, blockSize, targetDtype: dtype, zeroPointDomain: ZeroPointDomain.NONE, eps: FLOAT32_EPS,
    ...(layout ? { layout } : {}),
  });
}

registerQuantizeWeightHandler(Float8WeightOnlyConfig, (w, c) => swapOrSkip(w, "Float8WeightOnlyConfig", c.granularity, (blockSize) => ({
  weight: float8Weight(w, c.weightDtype, blockSize, c.layout),
  act: { kind: "none" },
})));

/**
 * torchao `Float8DynamicActivationFloat8WeightConfig`: fp8 weights and fp8 activations scaled per
 * call, both per tensor (default, torchao's PerTensor) or both per row (PerRow: activations per
 * token, weights per output row). The product of the dequantized operands is accumulated in float
 * (what a scaled fp8 matmul with float32 accumulation computes, up to summation order).
 */
export class Float8DynamicActivationFloat8WeightConfig extends AOBaseConfig {
  readonly activationDtype: Float8DType;
  readonly weightDtype: Float8DType;
  readonly granularity: "per_tensor" | "per_row";
  readonly layout: WeightLayout | undefined;
  constructor(opts: { activationDtype?: Float8DType; weightDtype?: Float8DType; granularity?: "per_tensor" | "per_row"; layout?: WeightLayout } = {}) {
    super();
    this.activationDtype = checkFloat8(opts.activationDtype ?? "float8_e4m3fn", "activationDtype");
    this.weightDtype = checkFloat8(opts.weightDtype ?? "float8_e4m3fn", "weightDtype");
    this.granularity = opts.granularity ?? "per_tensor";
    this.layout = opts.layout;
  }
}

registerQuantizeWeightHandler(Float8DynamicActivationFloat8WeightConfig, (w, c, site) => {
  if (site.kind !== "linear") return { skip: "activation quantization applies to linear layers only" };
  const [n, k] = [w.shape[0]!, w.shape[1]!];
  const blockSize: [number, number] = c.granularity === "per_row" ? [1, k] : [n, k];
  return {
    weight: float8Weight(w, c.weightDtype, blockSize, c.layout),
    act: { kind: "dynamic", dtype: c.activationDtype, mapping: MappingType.SYMMETRIC, granularity: c.granularity === "per_row" ? "per_token" : "per_tensor", compute: "dequantize" },
  };
});

// ---- static ---------------------------------------------------------------------------------

export interface StaticQParams {
  readonly scale: number;
  readonly zeroPoint: number;
}

/**
 * torchao `Int8StaticActivationInt8WeightConfig`: int8 weights symmetric per row (Int8Tensor.from_hp)
 * and activations quantized per tensor with fixed qparams, int32 accumulation. The qparams come from
 * the ObservedLinear's observer (the static-quantization tutorial flow: insertObservers_, calibrate,
 * quantize_ with the default filter isObservedLinear), or are given: `actQParams` for every layer,
 * or per layer by fully qualified name (ExportedPrograms; see calibrateLinearInputs).
 */
export class Int8StaticActivationInt8WeightConfig extends AOBaseConfig {
  readonly actDtype: ActivationDType;
  readonly actQParams: StaticQParams | Readonly<Record<string, StaticQParams>> | undefined;
  readonly granularity: Granularity;
  readonly layout: WeightLayout | undefined;
  constructor(opts: { actDtype?: "int8" | "uint8"; actQParams?: StaticQParams | Readonly<Record<string, StaticQParams>>; granularity?: Granularity; layout?: WeightLayout } = {}) {
    super();
    this.actDtype = opts.actDtype ?? "int8";
    this.actQParams = opts.actQParams;
    this.granularity = opts.granularity ?? PerAxis(0);
    if (this.granularity.kind !== "per_axis" && this.granularity.kind !== "per_tensor") {
      throw new QforgeError("BAD_CONFIG", "Int8StaticActivationInt8WeightConfig: weight granularity must be PerAxis(0) or PerTensor()");
    }
    this.layout = opts.layout;
  }
}

function isQParams(x: unknown): x is StaticQParams {
  return typeof x === "object" && x !== null && typeof (x as StaticQParams).scale === "number";
}

function staticQParams(c: Int8StaticActivationInt8WeightConfig, site: WeightSite): StaticQParams | undefined {
  const given = c.actQParams;
  if (isQParams(given)) return given;
  if (given !== undefined && given[site.fqn] !== undefined) return given[site.fqn];
  if (site.module instanceof ObservedLinear) {
    const qp = site.module.actObserver.calculateQParams();
    return { scale: qp.scale.data[0] as number, zeroPoint: Number(qp.zeroPoint.data[0]) };
  }
  return undefined;
}

registerQuantizeWeightHandler(Int8StaticActivationInt8WeightConfig, (w, c, site) => {
  if (site.kind !== "linear") return { skip: "static activation quantization applies to linear layers only" };
  const qp = staticQParams(c, site);
  if (qp === undefined) {
    throw new QforgeError("BAD_CONFIG", `Int8StaticActivationInt8WeightConfig: no activation qparams for '${site.fqn}'`, {
      node: site.fqn,
      hint: "insertObservers_ and calibrate first (Modules), or pass actQParams (a pair, or a record by layer name from calibrateLinearInputs)",
    });
  }
  const act: ActivationQuant = { kind: "static", dtype: c.actDtype, scale: Math.fround(qp.scale), zeroPoint: qp.zeroPoint, compute: "integer" };
  return swapOrSkip(w, "Int8StaticActivationInt8WeightConfig", c.granularity, (blockSize) => ({
    weight: affineQuantizeWeight(w, {
      mappingType: MappingType.SYMMETRIC, blockSize, targetDtype: "int8", eps: FLOAT32_EPS, zeroPointDtype: "int8",
      ...(c.layout ? { layout: c.layout } : {}),
    }),
    act,
  }));
}, {
  // The tutorial quantizes observed linears; plain Linears qualify when qparams are given.
  defaultFilter: (t) => isObservedLinear(t) || (isProgramSite(t) && t.type === "Linear"),
});

// ---- codebook -------------------------------------------------------------------------------

/**
 * Codebook (lookup-table) weight-only quantization (torchao prototype `CodebookWeightOnlyConfig`,
 * scalar entries): 2^bits k-means entries per block; blocks are rows by default, or groups of
 * `groupSize` along K, or any `blockSize`.
 */
export class CodebookWeightOnlyConfig extends AOBaseConfig {
  readonly bits: number;
  readonly groupSize: number | undefined;
  readonly blockSize: readonly [number, number] | undefined;
  readonly iterations: number;
  readonly layout: WeightLayout | undefined;
  constructor(opts: { bits?: number; groupSize?: number; blockSize?: readonly [number, number]; iterations?: number; layout?: WeightLayout } = {}) {
    super();
    this.bits = opts.bits ?? 4;
    if (!Number.isInteger(this.bits) || this.bits < 1 || this.bits > 8) throw new QforgeError("BAD_CONFIG", `CodebookWeightOnlyConfig: bits must be 1..8, got ${this.bits}`);
    if (opts.groupSize !== undefined && opts.blockSize !== undefined) throw new QforgeError("BAD_CONFIG", "CodebookWeightOnlyConfig: give groupSize or blockSize, not both");
    this.groupSize = opts.groupSize;
    this.blockSize = opts.blockSize;
    this.iterations = opts.iterations ?? 30;
    this.layout = opts.layout;
  }
}

registerQuantizeWeightHandler(CodebookWeightOnlyConfig, (w, c, site) => {
  if (site.kind !== "linear") return { skip: "codebook quantization applies to linear layers only" };
  const [n, k] = [w.shape[0]!, w.shape[1]!];
  const blockSize = c.blockSize ?? [1, c.groupSize ?? k];
  if (n % blockSize[0] !== 0 || k % blockSize[1] !== 0) return { skip: `block size [${blockSize.join(",")}] does not divide the weight [${n},${k}]` };
  return {
    weight: codebookQuantizeWeight(w, { bits: c.bits, blockSize, iterations: c.iterations, ...(c.layout ? { layout: c.layout } : {}) }),
    act: { kind: "none" },
  };
});
