import { QforgeError, type Node } from "@qforge/ir";

/** Decides whether an annotator may touch a node (torch's `filter_fn`). */
export type NodeFilter = (node: Node) => boolean;

/**
 * Decides whether an annotator may claim a whole partition (the nodes of one matched pattern, e.g.
 * [conv, relu]); torch X86's `FilterFn = Callable[[list[Node]], bool]`.
 */
export type PartitionFilter = (nodes: readonly Node[]) => boolean;

/**
 * torch's `_get_module_name_filter(name)`: the node was traced inside the module `name`, i.e. some
 * frame of its `meta.moduleStack` has that path — or a path below it ("blocks.sub" matches a node of
 * "blocks.sub.linear1" even when the stack holds only the innermost frame). "" is the root module.
 */
export function moduleNameFilter(name: string): NodeFilter {
  if (typeof name !== "string") throw new QforgeError("BAD_CONFIG", `a module name must be a string, got ${JSON.stringify(name)}`);
  const prefix = `${name}.`;
  return (node) => (node.meta.moduleStack ?? []).some((f) => f.path === name || (name !== "" && f.path.startsWith(prefix)));
}

/**
 * torch's `_get_module_type_filter(tp)`: some frame of the node's module stack is a module of class
 * `type` (e.g. "Conv2d", or a user class such as "ConvBnReLU").
 */
export function moduleTypeFilter(type: string): NodeFilter {
  if (typeof type !== "string" || type === "") throw new QforgeError("BAD_CONFIG", `a module type must be a non-empty string, got ${JSON.stringify(type)}`);
  return (node) => (node.meta.moduleStack ?? []).some((f) => f.type === type);
}

/** The node's op is one of `ops` (canonical op names: "conv", "linear", "add", ...). */
export function operatorTypeFilter(...ops: string[]): NodeFilter {
  const set = new Set(ops);
  return (node) => set.has(node.op);
}

/** Every node of the partition passes `f` (torch X86's `_create_module_name_filter`). */
export function allNodes(f: NodeFilter): PartitionFilter {
  return (nodes) => nodes.every(f);
}

/** Some node of the partition passes `f`. */
export function anyNode(f: NodeFilter): PartitionFilter {
  return (nodes) => nodes.some(f);
}
