import { DTYPES, dtypeInfo, QforgeError, type DType } from "@qforge/ir";
import { OBSERVER_KINDS } from "@qforge/quant";
import { match } from "ts-pattern";
import { hasDeriveQParamsFn } from "./derive.js";
import type { EdgeOrNode, ObserverSpec, QScheme, QuantizationSpecBase } from "./spec.js";

const QSCHEMES: readonly QScheme[] = [
  "per_tensor_affine", "per_tensor_symmetric", "per_channel_affine", "per_channel_symmetric", "per_channel_affine_float_qparams",
];
const FAKE_QUANT_KINDS = ["FakeQuantize", "FusedMovingAvgObsFakeQuantize", "FixedQParamsFakeQuantize"] as const;

export function isPerChannelQScheme(q: QScheme): boolean {
  return q === "per_channel_affine" || q === "per_channel_symmetric" || q === "per_channel_affine_float_qparams";
}

function fail(node: string, where: string, msg: string, hint?: string): never {
  throw new QforgeError("BAD_CONFIG", `${where} of node '${node}': ${msg}`, hint !== undefined ? { node, hint } : { node });
}

function checkDType(d: unknown, node: string, where: string): DType {
  if (typeof d !== "string" || !(DTYPES as readonly string[]).includes(d)) fail(node, where, `unknown dtype ${JSON.stringify(d)}`);
  return d as DType;
}

function checkQScheme(q: unknown, node: string, where: string): QScheme {
  if (typeof q !== "string" || !(QSCHEMES as readonly string[]).includes(q)) {
    fail(node, where, `unknown qscheme ${JSON.stringify(q)}`, `one of ${QSCHEMES.join(", ")}`);
  }
  return q as QScheme;
}

/** quant_min <= quant_max (torch's QuantizationSpec.__post_init__), integers inside the dtype's range. */
function checkRange(dtype: DType, qmin: unknown, qmax: unknown, node: string, where: string): void {
  for (const [name, v] of [["quantMin", qmin], ["quantMax", qmax]] as const) {
    if (v !== undefined && !Number.isSafeInteger(v)) fail(node, where, `${name} must be an integer, got ${JSON.stringify(v)}`);
  }
  if (typeof qmin === "number" && typeof qmax === "number" && qmin > qmax) {
    fail(node, where, `quant_min ${qmin} must be less than or equal to quant_max ${qmax}`);
  }
  const info = dtypeInfo(dtype);
  if (info.kind === "int" || info.kind === "uint") {
    if (typeof qmin === "number" && qmin < info.min) fail(node, where, `quantMin ${qmin} is below the ${dtype} range [${info.min}, ${info.max}]`);
    if (typeof qmax === "number" && qmax > info.max) fail(node, where, `quantMax ${qmax} is above the ${dtype} range [${info.min}, ${info.max}]`);
  }
}

function checkObserver(o: unknown, node: string, where: string): void {
  const spec = o as Partial<ObserverSpec> | null;
  if (typeof spec !== "object" || spec === null || !(OBSERVER_KINDS as readonly unknown[]).includes(spec.kind)) {
    fail(node, where, `unknown observer ${JSON.stringify(spec?.kind ?? spec)}`, `one of ${OBSERVER_KINDS.join(", ")}`);
  }
  if (spec.options !== undefined && (typeof spec.options !== "object" || spec.options === null || Array.isArray(spec.options))) {
    fail(node, where, "observer options must be an object");
  }
}

function checkEdgeOrNode(e: unknown, node: string, where: string): void {
  const t = e as Partial<EdgeOrNode> | null;
  const ok = typeof t === "object" && t !== null && typeof t.node === "string" &&
    (t.kind === "node" || (t.kind === "edge" && typeof (t as { value?: unknown }).value === "string"));
  if (!ok) fail(node, where, `malformed edge-or-node ${JSON.stringify(e)}`, '{kind: "edge", value, node} or {kind: "node", node}');
}

/**
 * Structural checks of one spec (the parts that do not need the graph): known dtype, qscheme and
 * observer kinds, a sane range, a non-negative channel axis, positive block sizes, positive fixed
 * scales, registered derive functions. Throws BAD_CONFIG naming `node` and `where` ("input 'x'",
 * "output").
 */
export function validateSpec(spec: QuantizationSpecBase, node: string, where: string): void {
  if (typeof spec !== "object" || spec === null) fail(node, where, `expected a quantization spec, got ${JSON.stringify(spec)}`);
  match(spec)
    .with({ kind: "spec" }, (s) => {
      const dtype = checkDType(s.dtype, node, where);
      const qscheme = checkQScheme(s.qscheme, node, where);
      checkRange(dtype, s.quantMin, s.quantMax, node, where);
      if (s.chAxis !== undefined && !(Number.isSafeInteger(s.chAxis) && s.chAxis >= 0)) fail(node, where, `chAxis must be a non-negative integer, got ${s.chAxis}`);
      if (s.blockSize !== undefined && !(Array.isArray(s.blockSize) && s.blockSize.every((b) => Number.isSafeInteger(b) && b > 0))) {
        fail(node, where, `blockSize must be a list of positive integers, got ${JSON.stringify(s.blockSize)}`);
      }
      if (s.blockSize !== undefined && !isPerChannelQScheme(qscheme)) fail(node, where, "a blockSize (per-group) needs a per-channel qscheme");
      const o = s.observerOrFakeQuant as unknown as { kind?: unknown; observer?: unknown } | undefined;
      if (o === undefined || o === null) fail(node, where, "observerOrFakeQuant is missing");
      if ((FAKE_QUANT_KINDS as readonly unknown[]).includes(o.kind)) checkObserver(o.observer, node, where);
      else checkObserver(o, node, where);
    })
    .with({ kind: "fixed" }, (s) => {
      const dtype = checkDType(s.dtype, node, where);
      const qscheme = checkQScheme(s.qscheme, node, where);
      if (isPerChannelQScheme(qscheme)) fail(node, where, "fixed qparams are per tensor");
      if (!(typeof s.scale === "number" && s.scale > 0 && Number.isFinite(s.scale))) fail(node, where, `fixed scale must be positive and finite, got ${s.scale}`);
      if (!Number.isSafeInteger(s.zeroPoint)) fail(node, where, `fixed zero point must be an integer, got ${s.zeroPoint}`);
      checkRange(dtype, s.quantMin, s.quantMax, node, where);
      if ((s.quantMin !== undefined && s.zeroPoint < s.quantMin) || (s.quantMax !== undefined && s.zeroPoint > s.quantMax)) {
        fail(node, where, `fixed zero point ${s.zeroPoint} is outside [${s.quantMin}, ${s.quantMax}]`);
      }
    })
    .with({ kind: "shared" }, (s) => checkEdgeOrNode(s.edgeOrNode, node, where))
    .with({ kind: "derived" }, (s) => {
      const dtype = checkDType(s.dtype, node, where);
      checkQScheme(s.qscheme, node, where);
      checkRange(dtype, s.quantMin, s.quantMax, node, where);
      if (!Array.isArray(s.derivedFrom) || s.derivedFrom.length === 0) fail(node, where, "a derived spec needs at least one source in derivedFrom");
      s.derivedFrom.forEach((e, i) => checkEdgeOrNode(e, node, `${where} (derivedFrom[${i}])`));
      if (s.chAxis !== undefined && !(Number.isSafeInteger(s.chAxis) && s.chAxis >= 0)) fail(node, where, `chAxis must be a non-negative integer, got ${s.chAxis}`);
      if (typeof s.deriveQParamsFn !== "string" || !hasDeriveQParamsFn(s.deriveQParamsFn)) {
        fail(node, where, `derive function ${JSON.stringify(s.deriveQParamsFn)} is not registered`, "register it with registerDeriveQParamsFn before annotating");
      }
    })
    .otherwise(() => fail(node, where, `unknown spec kind ${JSON.stringify((spec as { kind?: unknown }).kind)}`, "one of spec, fixed, shared, derived"));
}
