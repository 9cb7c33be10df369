import { QforgeError, type DType } from "@qforge/ir";
import { createObserver, OBSERVER_KINDS, type Observer, type ObserverKind, type ObserverOptionsByKind } from "@qforge/quant";
import type { FixedQParamsQuantizationSpec, QuantizationSpec, QScheme } from "@qforge/quantizer";

/**
 * PyTorch 1.13 FX QConfigMappings as golden fx_models cases write them (README: `qconfig_mapping`),
 * resolved per node the way torch/ao/quantization/fx/qconfig_mapping_utils.py
 * (`generate_node_name_to_qconfig`, `_update_qconfig_for_fusion`) does, and turned into the
 * QuantizationSpecs of @qforge/quantizer.
 */

/** `{"observer": class, "kwargs": {...}}`; unlisted kwargs take PyTorch's defaults. */
export interface FxObserverConfig {
  readonly observer: ObserverKind;
  readonly kwargs: Readonly<Record<string, unknown>>;
}

/** A QConfig: null anywhere a QConfigMapping entry is null (= leave in float). */
export interface FxQConfig {
  readonly activation: FxObserverConfig;
  readonly weight: FxObserverConfig | null;
}

export interface FxQConfigMapping {
  readonly global: FxQConfig | null;
  /** module_name entries; a parent path covers its submodules. */
  readonly moduleName: ReadonlyMap<string, FxQConfig | null>;
  /** module_name_regex entries, in order (the first full match wins). */
  readonly moduleNameRegex: readonly (readonly [string, FxQConfig | null])[];
  /** object_type entries keyed by PyTorch's qualified name ("torch.nn.Hardsigmoid", "torch.softmax", "operator.add"). */
  readonly objectType: ReadonlyMap<string, FxQConfig | null>;
}

const KNOWN_KEYS = new Set(["global", "module_name", "module_name_regex", "object_type"]);

function badConfig(message: string, hint?: string): never {
  throw new QforgeError("BAD_CONFIG", message, hint !== undefined ? { hint } : {});
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function parseObserverConfig(v: unknown, where: string): FxObserverConfig {
  if (!isRecord(v) || typeof v["observer"] !== "string") badConfig(`${where} must be {"observer": class, "kwargs": {...}}, got ${JSON.stringify(v)}`);
  const observer = v["observer"] as string;
  if (!(OBSERVER_KINDS as readonly string[]).includes(observer)) badConfig(`${where}: unknown observer class '${observer}'`, `one of ${OBSERVER_KINDS.join(", ")}`);
  const kwargs = v["kwargs"] ?? {};
  if (!isRecord(kwargs)) badConfig(`${where}.kwargs must be an object`);
  return { observer: observer as ObserverKind, kwargs };
}

function parseQConfig(v: unknown, where: string): FxQConfig | null {
  if (v === null) return null;
  if (!isRecord(v)) badConfig(`${where} must be a QConfig {activation, weight} or null, got ${JSON.stringify(v)}`);
  if (v["activation"] === null || v["activation"] === undefined) badConfig(`${where}.activation is missing`);
  return {
    activation: parseObserverConfig(v["activation"], `${where}.activation`),
    weight: v["weight"] === null || v["weight"] === undefined ? null : parseObserverConfig(v["weight"], `${where}.weight`),
  };
}

function parseTable(v: unknown, where: string): Map<string, FxQConfig | null> {
  const out = new Map<string, FxQConfig | null>();
  if (v === undefined) return out;
  if (!isRecord(v)) badConfig(`${where} must be an object`);
  for (const [k, q] of Object.entries(v)) out.set(k, parseQConfig(q, `${where}[${JSON.stringify(k)}]`));
  return out;
}

/** Parses a case's `qconfig_mapping`; an unknown section is refused rather than ignored. */
export function parseFxQConfigMapping(json: unknown): FxQConfigMapping {
  if (!isRecord(json)) badConfig("qconfig_mapping must be an object");
  for (const k of Object.keys(json)) {
    if (!KNOWN_KEYS.has(k)) badConfig(`qconfig_mapping section '${k}' is not supported`, `supported: ${[...KNOWN_KEYS].join(", ")}`);
  }
  return {
    global: json["global"] === undefined ? null : parseQConfig(json["global"], "qconfig_mapping.global"),
    moduleName: parseTable(json["module_name"], "qconfig_mapping.module_name"),
    moduleNameRegex: [...parseTable(json["module_name_regex"], "qconfig_mapping.module_name_regex")],
    objectType: parseTable(json["object_type"], "qconfig_mapping.object_type"),
  };
}

// ---- per-node resolution ---------------------------------------------------------------------

/** How FX sees a node: a call of module `path` (of classes `types`, several for a fused module) or of a function. */
export type FxCallee =
  | { readonly kind: "module"; readonly path: string; readonly types: readonly string[] }
  | { readonly kind: "function"; readonly op: string };

/** The torch function names (object_type keys) of each canonical op, for function nodes. */
const FUNCTION_NAMES: Readonly<Record<string, readonly string[]>> = {
  add: ["operator.add", "torch.add", "add"],
  mul: ["operator.mul", "torch.mul", "mul"],
  concat: ["torch.cat", "torch.concat"],
  flatten: ["torch.flatten", "flatten"],
  reshape: ["torch.flatten", "torch.reshape", "reshape", "view", "flatten"],
  softmax: ["torch.softmax", "torch.nn.functional.softmax", "softmax"],
  relu: ["torch.relu", "torch.nn.functional.relu", "relu"],
  hardswish: ["torch.nn.functional.hardswish"],
  hard_sigmoid: ["torch.nn.functional.hardsigmoid", "hardsigmoid"],
  max_pool: ["torch.nn.functional.max_pool2d"],
  adaptive_avg_pool2d: ["torch.nn.functional.adaptive_avg_pool2d"],
  layer_normalization: ["torch.nn.functional.layer_norm"],
  linear: ["torch.nn.functional.linear"],
  conv: ["torch.nn.functional.conv2d"],
};

/** The class name of an object_type key ("torch.nn.Hardsigmoid" -> "Hardsigmoid"), or undefined for a function name. */
function moduleClassOf(key: string): string | undefined {
  const last = key.split(".").pop() ?? key;
  return /^[A-Z]/.test(last) ? last : undefined;
}

function objectTypeEntry(m: FxQConfigMapping, pick: (key: string) => boolean): { found: boolean; qconfig: FxQConfig | null } {
  for (const [k, q] of m.objectType) if (pick(k)) return { found: true, qconfig: q };
  return { found: false, qconfig: null };
}

/** torch's `_get_module_name_qconfig`: the entry for the path or its closest parent; "" falls back. */
function moduleNameQConfig(m: FxQConfigMapping, path: string, fallback: FxQConfig | null): FxQConfig | null {
  let p = path;
  while (p !== "") {
    if (m.moduleName.has(p)) return m.moduleName.get(p)!;
    const dot = p.lastIndexOf(".");
    p = dot < 0 ? "" : p.slice(0, dot);
  }
  return fallback;
}

function moduleNameRegexQConfig(m: FxQConfigMapping, path: string, fallback: FxQConfig | null): FxQConfig | null {
  for (const [re, q] of m.moduleNameRegex) if (new RegExp(`^(?:${re})$`).test(path)) return q;
  return fallback;
}

/**
 * The QConfig FX 1.13 gives a node (precedence: module_name > module_name_regex > object_type >
 * global). A fused module gets an object_type entry only through `_update_qconfig_for_fusion`: the
 * entry of its first module's class, which every other class of the fusion must repeat (FX raises
 * LookupError otherwise; here BAD_CONFIG). Function nodes are called from the root module, where
 * module_name entries do not apply.
 */
export function resolveFxQConfig(m: FxQConfigMapping, callee: FxCallee): FxQConfig | null {
  if (callee.kind === "function") {
    const names = FUNCTION_NAMES[callee.op] ?? [];
    const e = objectTypeEntry(m, (k) => names.includes(k));
    return e.found ? e.qconfig : m.global;
  }
  const entries = callee.types.map((t) => objectTypeEntry(m, (k) => moduleClassOf(k) === t));
  let typed = m.global;
  if (callee.types.length === 1) {
    if (entries[0]!.found) typed = entries[0]!.qconfig;
  } else if (entries.some((e) => e.found)) {
    const first = JSON.stringify(entries[0]!.found ? entries[0]!.qconfig : null);
    entries.forEach((e, i) => {
      if (JSON.stringify(e.found ? e.qconfig : null) !== first) {
        badConfig(`module '${callee.path}' fuses ${callee.types.join(" + ")}, whose object_type qconfigs differ (${callee.types[i]})`,
          "FX needs the same qconfig for every module type of a fused module");
      }
    });
    if (entries[0]!.found) typed = entries[0]!.qconfig;
  }
  return moduleNameQConfig(m, callee.path, moduleNameRegexQConfig(m, callee.path, typed));
}

// ---- observers and specs -----------------------------------------------------------------------

/** snake_case PyTorch kwargs -> camelCase qforge observer options. */
export function observerOptions(kwargs: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(kwargs)) out[k.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase())] = v;
  return out;
}

/** What FX's prepare looks at on an observer: its class, dtype, range, scheme and eps. */
export interface ObserverFacts {
  readonly kind: ObserverKind;
  readonly dtype: "quint8" | "qint8" | "qint32";
  readonly qscheme: QScheme;
  readonly quantMin: number;
  readonly quantMax: number;
  /** float32 eps (undefined for FixedQParamsObserver, which has none). */
  readonly eps?: number;
  readonly chAxis?: number;
  /** FixedQParamsObserver's qparams. */
  readonly fixed?: { readonly scale: number; readonly zeroPoint: number };
}

/** Builds the observer (refusing what PyTorch refuses at construction) and reads its effective settings. */
export function observerFacts(cfg: FxObserverConfig): ObserverFacts {
  const o: Observer & Record<string, unknown> = createObserver(cfg.observer, observerOptions(cfg.kwargs) as ObserverOptionsByKind[typeof cfg.observer]) as never;
  const config = o["config"] as { dtype: ObserverFacts["dtype"]; qscheme: QScheme; eps: number } | undefined;
  const dtype = (config?.dtype ?? o["dtype"]) as ObserverFacts["dtype"] | undefined;
  const qscheme = (config?.qscheme ?? o["qscheme"]) as QScheme | undefined;
  const quantMin = o["quantMin"];
  const quantMax = o["quantMax"];
  if (dtype === undefined || qscheme === undefined || typeof quantMin !== "number" || typeof quantMax !== "number") {
    badConfig(`${cfg.observer} cannot quantize a static activation or weight (it has no dtype and range)`);
  }
  const chAxis = o["chAxis"];
  const fixed = cfg.observer === "FixedQParamsObserver" ? { scale: o["scale"] as number, zeroPoint: o["zeroPoint"] as number } : undefined;
  return {
    kind: cfg.observer, dtype, qscheme, quantMin, quantMax,
    ...(config?.eps !== undefined ? { eps: config.eps } : {}),
    ...(typeof chAxis === "number" ? { chAxis } : {}),
    ...(fixed !== undefined ? { fixed } : {}),
  };
}

/** PyTorch's quantized dtype -> the integer storage dtype of qforge's QDQ ops. */
export function storageDType(d: ObserverFacts["dtype"]): DType {
  return d === "quint8" ? "uint8" : d === "qint8" ? "int8" : "int32";
}

/**
 * The QuantizationSpec of an FX observer config: the observer's dtype and scheme, and its range when
 * the kwargs customize it (a default range stays implicit, so the observer keeps PyTorch's default-
 * range formulas, e.g. the quint8 symmetric zero point 128). A FixedQParamsObserver becomes a
 * FixedQParamsQuantizationSpec.
 */
export function fxSpec(cfg: FxObserverConfig): QuantizationSpec | FixedQParamsQuantizationSpec {
  const f = observerFacts(cfg);
  const dtype = storageDType(f.dtype);
  if (f.fixed !== undefined) {
    return { kind: "fixed", dtype, scale: f.fixed.scale, zeroPoint: f.fixed.zeroPoint, quantMin: f.quantMin, quantMax: f.quantMax, qscheme: f.qscheme };
  }
  const custom = cfg.kwargs["quant_min"] !== undefined && cfg.kwargs["quant_max"] !== undefined;
  return {
    kind: "spec",
    dtype,
    qscheme: f.qscheme,
    ...(custom ? { quantMin: cfg.kwargs["quant_min"] as number, quantMax: cfg.kwargs["quant_max"] as number } : {}),
    ...(f.chAxis !== undefined ? { chAxis: f.chAxis } : {}),
    isDynamic: false,
    observerOrFakeQuant: { kind: cfg.observer, options: observerOptions(cfg.kwargs) },
  };
}

// ---- the qnnpack BackendConfig's dtype configs -------------------------------------------------

/** Pattern families of `get_qnnpack_backend_config()` and the dtype configs each accepts. */
export type FxPatternFamily = "weighted" | "binary" | "cat" | "default" | "fixed" | "share" | "bn";

/**
 * Whether a qconfig satisfies one of the qnnpack BackendConfig's DTypeConfigs for the family
 * (torch/ao/quantization/backend_config/qnnpack.py of that release, and prepare's
 * `_qconfig_satisfies_dtype_config_constraints`):
 *   quint8 activations (and qint8 weights for conv/linear): no constraints;
 *   qint8 activations: observer eps >= 2^-12; qint8 weights then also within [-127, 127] with eps >= 2^-12.
 * A fixed-qparams op (hardsigmoid, sigmoid, tanh, nn.Softmax) additionally needs a FixedQParamsObserver
 * activation (the qconfig FX's default mapping installs for them). Returns why not, or undefined.
 */
export function qnnpackUnsupportedReason(family: FxPatternFamily, q: FxQConfig): string | undefined {
  const act = observerFacts(q.activation);
  if (act.dtype !== "quint8" && act.dtype !== "qint8") return `activation dtype ${act.dtype} is not quint8 or qint8`;
  if (family === "fixed" && act.fixed === undefined) return `a fixed-qparams op needs a FixedQParamsObserver activation, got ${act.kind}`;
  const minScale = 2 ** -12;
  if (act.dtype === "qint8" && !(act.eps !== undefined && act.eps >= minScale)) {
    return `qint8 activations need eps >= 2^-12 (scale_min_lower_bound), got ${act.eps ?? "no eps"}`;
  }
  if (family !== "weighted") return undefined;
  if (q.weight === null) return "conv/linear need a weight observer";
  const w = observerFacts(q.weight);
  if (w.dtype !== "qint8") return `weight dtype ${w.dtype} is not qint8`;
  if (act.dtype === "qint8") {
    if (w.quantMin < -127 || w.quantMax > 127) return `qint8 weights must stay within [-127, 127], got [${w.quantMin}, ${w.quantMax}]`;
    if (!(w.eps !== undefined && w.eps >= minScale)) return `qint8 weights need eps >= 2^-12, got ${w.eps ?? "no eps"}`;
  }
  return undefined;
}
