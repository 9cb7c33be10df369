import { produce, type Draft } from "immer";
import { hasOp, QforgeError, type Graph, type Node, type ValueType } from "@qforge/ir";
import { annotateNode, claimFloat, getAnnotation, isAnnotated, type AnnotationInput } from "./annotation.js";
import { allNodes, moduleNameFilter, moduleTypeFilter, type NodeFilter, type PartitionFilter } from "./filters.js";
import type { QuantizationAnnotation } from "./spec.js";
import { validateAnnotations } from "./validate.js";
import { graphViews, type GraphViews } from "./views.js";

/**
 * torch's `Quantizer` (torch.ao.quantization.quantizer.Quantizer), the plugin preparePt2e drives:
 *   g = q.transformForAnnotation(g)   // e.g. decompose or rewrite ops the quantizer wants to see
 *   g = q.annotate(g)                 // write node.meta.quantization_annotation
 *   q.validate(g)                     // refuse annotations the backend cannot run
 * All three are pure: they return a new graph (or throw) and never modify their input.
 */
export interface Quantizer {
  transformForAnnotation(g: Graph): Graph;
  annotate(g: Graph): Graph;
  validate(g: Graph): void;
}

/** What an annotator works with inside `annotateGraph`. */
export interface AnnotateContext {
  /** The graph as it was when annotation started: structure only (annotations are read live below). */
  readonly graph: Graph;
  readonly views: GraphViews;
  /** The draft of a node, to write to. */
  node(name: string): Draft<Node>;
  /** Live annotation state (including what this run wrote). */
  annotation(name: string): QuantizationAnnotation | undefined;
  isAnnotated(name: string): boolean;
  anyAnnotated(names: readonly string[]): boolean;
  /** annotateNode on the named node. */
  annotate(name: string, input: AnnotationInput): void;
  /** claimFloat on the named node. */
  claimFloat(name: string): void;
  valueType(value: string): ValueType | undefined;
}

/**
 * Runs `fn` on a draft of `g` and returns the annotated graph (immer `produce`): `g` is untouched,
 * and if `fn` throws (e.g. a node annotated twice) nothing of the run survives.
 */
export function annotateGraph(g: Graph, fn: (ctx: AnnotateContext) => void): Graph {
  const views = graphViews(g);
  return produce(g, (draft) => {
    const index = new Map<string, Draft<Node>>();
    for (const n of draft.nodes) index.set(n.name, n);
    const node = (name: string): Draft<Node> => {
      const n = index.get(name);
      if (n === undefined) throw new QforgeError("BAD_INPUT", `no node named '${name}'`, { node: name });
      return n;
    };
    const ctx: AnnotateContext = {
      graph: g,
      views,
      node,
      annotation: (name) => getAnnotation(node(name) as Node),
      isAnnotated: (name) => isAnnotated(node(name) as Node),
      anyAnnotated: (names) => names.some((n) => isAnnotated(node(n) as Node)),
      annotate: (name, input) => annotateNode(node(name), input),
      claimFloat: (name) => claimFloat(node(name)),
      valueType: (value) => g.values[value],
    };
    fn(ctx);
  });
}

/**
 * Per-scope settings of a configurable quantizer. `undefined` global: not set; a null entry: leave
 * that scope in float.
 */
export interface ConfigTable<C> {
  readonly global: C | null | undefined;
  /** Per node name (e.g. an ONNX node's name, which has no module stack): the highest precedence. */
  readonly nodeName?: ReadonlyMap<string, C | null>;
  readonly moduleName: ReadonlyMap<string, C | null>;
  readonly moduleType: ReadonlyMap<string, C | null>;
  readonly operatorType: ReadonlyMap<string, C | null>;
}

/** One pass of the annotators: a config and the partitions it may claim. */
export interface AnnotationStage<C> {
  /** e.g. `module name "head"`, `global`. */
  readonly label: string;
  readonly config: C | null;
  readonly accepts: PartitionFilter;
}

/**
 * The annotation passes of a ConfigTable in precedence order — node name > module name > module type >
 * operator type > global, as torch's XNNPACKQuantizer (`_annotate_for_static_quantization_config`) and
 * X86InductorQuantizer (`annotate`) run them (node names are qforge's addition, for graphs without
 * module stacks such as ONNX imports). Each pass only accepts partitions that no
 * higher-precedence key covers (torch's `_get_not_module_type_or_name_filter`), so a null config keeps
 * its scope in float even where a later pass would match:
 *   node name "n":     the partition contains the node named n (other named nodes in it name the same config)
 *   module name "m":   every node of the partition is inside module m, none is named
 *   module type "T":   every node is inside a module of class T, and none is under a module-name key
 *   operator type "op": the partition contains an `op` node, and no node is under a module key
 *   global:            no node is under a module key, and no node's op has an operator-type entry
 * Within one level, entries run in insertion order (the first set wins where two overlap).
 */
export function annotationStages<C>(t: ConfigTable<C>): AnnotationStage<C>[] {
  const nameFilters = [...t.moduleName.keys()].map(moduleNameFilter);
  const typeFilters = [...t.moduleType.keys()].map(moduleTypeFilter);
  const underAny = (fs: readonly NodeFilter[]): NodeFilter => (n) => fs.some((f) => f(n));
  const underName = underAny(nameFilters);
  const named = new Set(t.nodeName?.keys() ?? []);
  const isNamed: NodeFilter = (n) => named.has(n.name);
  const underModule = underAny([...nameFilters, ...typeFilters, isNamed]);
  const stages: AnnotationStage<C>[] = [];
  for (const [name, config] of t.nodeName ?? []) {
    stages.push({
      label: `node name ${JSON.stringify(name)}`, config,
      // A pattern holding several named nodes is claimed when they all name the same config.
      accepts: (nodes) => nodes.some((n) => n.name === name) && nodes.every((n) => !named.has(n.name) || t.nodeName!.get(n.name) === config),
    });
  }
  for (const [name, config] of t.moduleName) {
    const f = moduleNameFilter(name);
    stages.push({ label: `module name ${JSON.stringify(name)}`, config, accepts: allNodes((n) => f(n) && !isNamed(n)) });
  }
  for (const [type, config] of t.moduleType) {
    const f = moduleTypeFilter(type);
    stages.push({ label: `module type ${JSON.stringify(type)}`, config, accepts: allNodes((n) => f(n) && !underName(n) && !isNamed(n)) });
  }
  for (const [op, config] of t.operatorType) {
    stages.push({
      label: `operator type ${JSON.stringify(op)}`,
      config,
      accepts: (nodes) => nodes.some((n) => n.op === op) && !nodes.some(underModule),
    });
  }
  if (t.global !== undefined) {
    const ops = new Set(t.operatorType.keys());
    stages.push({ label: "global", config: t.global, accepts: (nodes) => !nodes.some((n) => underModule(n) || ops.has(n.op)) });
  }
  return stages;
}

/**
 * A quantizer configured per scope with torch's setters (`set_global`, `set_module_name`,
 * `set_module_type`, `set_operator_type`) and `setNodeName` for graphs without module stacks;
 * subclasses annotate once per stage of `stages()`.
 */
export abstract class ConfiguredQuantizer<C> implements Quantizer {
  private globalConfig: C | null | undefined = undefined;
  private readonly moduleNameConfig = new Map<string, C | null>();
  private readonly moduleTypeConfig = new Map<string, C | null>();
  private readonly operatorTypeConfig = new Map<string, C | null>();
  private readonly nodeNameConfig = new Map<string, C | null>();

  /** The config of every node no other setting covers. */
  setGlobal(config: C | null): this {
    this.globalConfig = config;
    return this;
  }

  /** The config of the nodes traced inside module `name` (a `meta.moduleStack` path, e.g. "features.0"). */
  setModuleName(name: string, config: C | null): this {
    moduleNameFilter(name);
    this.moduleNameConfig.set(name, config);
    return this;
  }

  /** The config of the nodes traced inside modules of class `type` (e.g. "Conv2d", "Linear"). */
  setModuleType(type: string, config: C | null): this {
    moduleTypeFilter(type);
    this.moduleTypeConfig.set(type, config);
    return this;
  }

  /** The config of the patterns that contain an `op` node (canonical op name, e.g. "linear"). */
  setOperatorType(op: string, config: C | null): this {
    if (!hasOp(op)) throw new QforgeError("BAD_CONFIG", `unknown operator type '${op}'`, { hint: "use a canonical op name such as conv, linear, add, matmul" });
    this.operatorTypeConfig.set(op, config);
    return this;
  }

  /**
   * The config of the pattern that contains the node `name` — for graphs whose nodes have no module
   * stack (ONNX imports name every node, e.g. "p2o.MatMul.24"). Takes precedence over every other
   * setting; null keeps that pattern in float (e.g. a last classifier layer).
   */
  setNodeName(name: string, config: C | null): this {
    if (typeof name !== "string" || name === "") throw new QforgeError("BAD_CONFIG", `a node name must be a non-empty string, got ${JSON.stringify(name)}`);
    this.nodeNameConfig.set(name, config);
    return this;
  }

  /** Every config that is set (not null), for checks such as "is this a QAT quantizer". */
  protected configs(): C[] {
    const all = [
      this.globalConfig, ...this.nodeNameConfig.values(), ...this.moduleNameConfig.values(), ...this.moduleTypeConfig.values(),
      ...this.operatorTypeConfig.values(),
    ];
    return all.filter((c): c is C => c !== undefined && c !== null);
  }

  protected stages(): AnnotationStage<C>[] {
    return annotationStages({
      global: this.globalConfig,
      nodeName: this.nodeNameConfig,
      moduleName: this.moduleNameConfig,
      moduleType: this.moduleTypeConfig,
      operatorType: this.operatorTypeConfig,
    });
  }

  transformForAnnotation(g: Graph): Graph {
    return g;
  }

  abstract annotate(g: Graph): Graph;

  validate(g: Graph): void {
    validateAnnotations(g);
  }
}
