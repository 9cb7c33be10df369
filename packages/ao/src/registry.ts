/**
 * torchao's config → handler registry (`register_quantize_module_handler`). A handler is either
 *
 * - a module handler `(module, config, fqn) => Module` (torchao's form, e.g. the static-quantization
 *   tutorial's `StaticQuantConfig`): works on Modules only; or
 * - a weight handler `(weight, config, site) => { weight, act } | { skip }`: quantizes one Linear or
 *   Embedding weight; `quantize_` then swaps the module (QuantizedLinear / QuantizedEmbedding) or
 *   rewrites the ExportedProgram node. Every built-in config has one.
 *
 * Handlers are found through the config's prototype chain, so a subclass inherits its parent's.
 */
import { Embedding, Linear, type Module } from "@qforge/export";
import { QforgeError, type Node, type Tensor } from "@qforge/ir";
import type { ActivationQuant } from "./activation.js";
import { ObservedLinear } from "./modules.js";
import type { QuantizedWeight } from "./tensor.js";

/** Base class of quantize_ configs (torchao `AOBaseConfig`): plain data, one handler per class. */
export abstract class AOBaseConfig {}

// A class whose instances are configs (constructor arguments vary per config).
export type ConfigClass<C extends AOBaseConfig> = abstract new (...args: never[]) => C;

/** A linear or embedding of an ExportedProgram that quantize_ may rewrite (the program's "module"). */
export interface ProgramSite {
  readonly kind: "program_site";
  readonly type: "Linear" | "Embedding";
  readonly node: Node;
  /** The graph constant holding the float weight. */
  readonly weightName: string;
  /** The weight as [out, in] (a matmul / gemm operand [K, N] transposed). */
  readonly weight: Tensor;
  /** Module class the node was traced from (innermost moduleStack frame), when known. */
  readonly moduleType: string | undefined;
}

/** What a filter sees: a module (Module path) or a program site (ExportedProgram path). */
export type QuantizeTarget = Module | ProgramSite;

/** torchao's `filter_fn(module, fqn)`. */
export type FilterFn = (target: QuantizeTarget, fqn: string) => boolean;

export function isProgramSite(t: unknown): t is ProgramSite {
  return typeof t === "object" && t !== null && (t as { kind?: unknown }).kind === "program_site";
}

/** torchao `_is_linear`: float Linear modules (or linear nodes with a constant weight). */
export function isLinear(t: QuantizeTarget): boolean {
  return isProgramSite(t) ? t.type === "Linear" : t instanceof Linear;
}

/** Float Embedding modules (or gather-by-row nodes on a constant table). */
export function isEmbedding(t: QuantizeTarget): boolean {
  return isProgramSite(t) ? t.type === "Embedding" : t instanceof Embedding;
}

/** Linear or Embedding: for weight-only configs that also quantize embedding tables. */
export function isLinearOrEmbedding(t: QuantizeTarget): boolean {
  return isLinear(t) || isEmbedding(t);
}

/** The tutorial's `is_observed_linear`. */
export function isObservedLinear(t: QuantizeTarget): boolean {
  return t instanceof ObservedLinear;
}

/** Where a weight handler's weight comes from. */
export interface WeightSite {
  readonly kind: "linear" | "embedding";
  readonly fqn: string;
  /** The module being swapped (Module path). */
  readonly module?: Module;
  /** The node being rewritten (ExportedProgram path). */
  readonly node?: Node;
}

export type WeightSwap = { readonly weight: QuantizedWeight; readonly act: ActivationQuant } | { readonly skip: string };

export type WeightHandler<C extends AOBaseConfig> = (weight: Tensor, config: C, site: WeightSite) => WeightSwap;
export type ModuleHandler<C extends AOBaseConfig> = (module: Module, config: C, fqn: string) => Module;

export interface HandlerOptions {
  /** The filter quantize_ uses when the caller passes none (default: isLinear). */
  defaultFilter?: FilterFn;
}

export type RegisteredHandler =
  | { readonly kind: "module"; readonly fn: ModuleHandler<AOBaseConfig>; readonly defaultFilter: FilterFn }
  | { readonly kind: "weight"; readonly fn: WeightHandler<AOBaseConfig>; readonly defaultFilter: FilterFn };

const HANDLERS = new Map<object, RegisteredHandler>();

function checkClass(cls: unknown, what: string): void {
  if (typeof cls !== "function" || !(cls.prototype instanceof AOBaseConfig)) {
    throw new QforgeError("BAD_CONFIG", `${what}: the config class must extend AOBaseConfig`);
  }
}

/** torchao `register_quantize_module_handler(ConfigClass)(handler)`: handler(module, config, fqn) returns the replacement. */
export function registerQuantizeModuleHandler<C extends AOBaseConfig>(cls: ConfigClass<C>, handler: ModuleHandler<C>, opts: HandlerOptions = {}): void {
  checkClass(cls, "registerQuantizeModuleHandler");
  HANDLERS.set(cls.prototype, { kind: "module", fn: handler as ModuleHandler<AOBaseConfig>, defaultFilter: opts.defaultFilter ?? isLinear });
}

/** Registers a weight handler (works on Modules and ExportedPrograms). */
export function registerQuantizeWeightHandler<C extends AOBaseConfig>(cls: ConfigClass<C>, handler: WeightHandler<C>, opts: HandlerOptions = {}): void {
  checkClass(cls, "registerQuantizeWeightHandler");
  HANDLERS.set(cls.prototype, { kind: "weight", fn: handler as WeightHandler<AOBaseConfig>, defaultFilter: opts.defaultFilter ?? isLinear });
}

/** The handler for a config instance (nearest registered class up its prototype chain). */
export function handlerFor(config: AOBaseConfig): RegisteredHandler {
  for (let p: object | null = Object.getPrototypeOf(config); p !== null && p !== AOBaseConfig.prototype; p = Object.getPrototypeOf(p)) {
    const h = HANDLERS.get(p);
    if (h !== undefined) return h;
  }
  const name = (config as { constructor?: { name?: string } }).constructor?.name ?? typeof config;
  throw new QforgeError("BAD_CONFIG", `no quantize_ handler is registered for ${name}`, {
    hint: "register one with registerQuantizeModuleHandler(ConfigClass, handler) or registerQuantizeWeightHandler",
  });
}
