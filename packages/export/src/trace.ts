import { clone, GraphBuilder, isQforgeError, QforgeError, type AttrValue, type Dim, type DType, type ModuleFrame, type NodeMeta, type Tensor, type ValueType } from "@qforge/ir";
import type { Module } from "./module.js";
import { formatLocation, userCallSite } from "./source.js";
import type { State } from "./state.js";

/**
 * The recording side of op dispatch (what torch.export's proxy tracer does): while a Tracer is
 * active, ops on `Var`s add nodes to its GraphBuilder instead of computing. It knows every
 * module's qualified path (for `moduleStack`) and every parameter/buffer's qualified name (for
 * graph constants).
 */
export class Tracer {
  readonly builder = new GraphBuilder();
  private readonly frames: ModuleFrame[] = [];
  private readonly paths = new Map<Module, string>();
  private readonly stateNames = new Map<State, string>();
  /** Tensors (user constants, scalars we made) already in the graph, by identity. */
  private readonly lifted = new Map<Tensor, string>();
  private live = true;

  /**
   * `modules` and `states` come from walking the root module (first name wins for shared
   * objects); every state tensor becomes a constant up front, in state_dict order, whether or not
   * forward reads it (torch.export also keeps unused buffers).
   */
  constructor(modules: Iterable<readonly [string, Module]>, states: Iterable<readonly [string, State]>) {
    for (const [path, m] of modules) if (!this.paths.has(m)) this.paths.set(m, path);
    for (const [name, s] of states) {
      if (this.stateNames.has(s)) continue;
      this.stateNames.set(s, name);
    }
  }

  /** Qualified names of all state tensors (claimed by `declareState`). */
  stateNamesInOrder(): string[] {
    return [...this.stateNames.values()];
  }

  /** Adds every parameter/buffer as a graph constant; call once, after the inputs. */
  declareState(): void {
    for (const [s, name] of this.stateNames) this.builder.constant(name, clone(s.data), s.kind);
  }

  input(name: string, dtype: DType, dims: readonly Dim[]): string {
    return this.builder.input(name, dtype, dims);
  }

  get isLive(): boolean {
    return this.live;
  }

  finish(): void {
    this.live = false;
  }

  pathOf(m: Module): string | undefined {
    return this.paths.get(m);
  }

  pushFrame(frame: ModuleFrame): void {
    this.frames.push(frame);
  }

  popFrame(): void {
    this.frames.pop();
  }

  /** The graph value of a parameter/buffer; state not owned by the exported module is an error. */
  stateValue(s: State): string {
    const name = this.stateNames.get(s);
    if (name === undefined) {
      throw new QforgeError("TRACE_ERROR", `forward used a ${s.kind} (${s.dtype}[${s.shape.join(",")}]) that the exported module does not own`, {
        hint: "assign the module or tensor to a property of the exported module (or of one of its submodules) so it gets a qualified name",
      });
    }
    return name;
  }

  /** A tensor that is not module state (user constant, scalar operand) as a graph constant. */
  liftConstant(t: Tensor, base: string): string {
    const known = this.lifted.get(t);
    if (known !== undefined) return known;
    // A new wrapper over the same storage: building the graph freezes it, and the user's object
    // should stay as it was.
    const v = this.builder.freshConstant(base, { dtype: t.dtype, shape: [...t.shape], data: t.data }, "constant");
    this.lifted.set(t, v);
    return v;
  }

  typeOf(value: string): ValueType {
    return this.builder.typeOf(value);
  }

  /** Records a node with the current module stack and the user's call site. */
  node(op: string, inputs: readonly string[], attrs: Record<string, AttrValue>, numOutputs: number): string[] {
    const site = userCallSite();
    const meta: NodeMeta = {
      moduleStack: this.frames.map((f) => ({ path: f.path, type: f.type })),
      ...(site !== undefined ? { source: formatLocation(site) } : {}),
    };
    return this.builder.node(op, inputs, attrs, { numOutputs, meta });
  }
}

let current: Tracer | undefined;

/** The tracer recording right now, if any. */
export function activeTracer(): Tracer | undefined {
  return current;
}

/** Runs `fn` with `tracer` recording; tracing does not nest. */
export function runTraced<T>(tracer: Tracer, fn: () => T): T {
  if (current !== undefined) {
    throw new QforgeError("TRACE_ERROR", "exportModel was called while another export is tracing", {
      hint: "export modules one after the other, not from inside a forward",
    });
  }
  current = tracer;
  try {
    return fn();
  } finally {
    current = undefined;
    tracer.finish();
  }
}
