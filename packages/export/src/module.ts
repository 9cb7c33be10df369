import { clone, QforgeError, type Tensor } from "@qforge/ir";
import { Buffer, checkReplacement, isState, Parameter, type State } from "./state.js";
import { activeTracer } from "./trace.js";

/** Result of a non-strict loadStateDict (torch's `_IncompatibleKeys`). */
export interface LoadResult {
  readonly missingKeys: string[];
  readonly unexpectedKeys: string[];
}

/**
 * Base class of every layer, like torch.nn.Module. Submodules, parameters and buffers are found
 * by walking the instance's own properties (class fields included), in declaration order, which
 * gives torch's qualified names (`features.0.weight`). Call a module with `m.call(x)`: it runs
 * `forward` and, while exporting, records the module frame for each node's `moduleStack`.
 */
export abstract class Module {
  /** torch's `training` flag; modules start in training mode, as in torch. */
  training = true;

  // `any` here lets each subclass declare its own forward signature (which `call` then mirrors).
  abstract forward(...args: any[]): any;

  /** Runs forward (torch's `module(x)`), pushing this module's frame while tracing. */
  call<M extends Module>(this: M, ...args: Parameters<M["forward"]>): ReturnType<M["forward"]> {
    const run = (): ReturnType<M["forward"]> => (this.forward as (...a: unknown[]) => ReturnType<M["forward"]>)(...args);
    const tracer = activeTracer();
    const path = tracer?.pathOf(this);
    if (tracer === undefined || path === undefined) return run();
    tracer.pushFrame({ path, type: this.constructor.name });
    try {
      return run();
    } finally {
      tracer.popFrame();
    }
  }

  /**
   * The (name, value) pairs the walk looks at. Containers override this to expose their items
   * under index names ("0", "1", ...).
   */
  protected ownEntries(): [string, unknown][] {
    return Object.entries(this);
  }

  /** Direct state and children, in order; arrays holding modules or state are rejected. */
  private members(): { states: [string, State][]; children: [string, Module][] } {
    const states: [string, State][] = [];
    const children: [string, Module][] = [];
    for (const [k, v] of this.ownEntries()) {
      if (isState(v)) states.push([k, v]);
      else if (v instanceof Module) children.push([k, v]);
      else if (Array.isArray(v) && v.some((e) => e instanceof Module || isState(e))) {
        throw new QforgeError("BAD_CONFIG", `${this.constructor.name}.${k} is a plain array of modules or parameters`, {
          hint: "wrap modules in a ModuleList or Sequential so they get qualified names",
        });
      }
    }
    return { states, children };
  }

  /** (qualified name, module) in pre-order, root first as ""; shared modules appear once. */
  namedModules(prefix = ""): [string, Module][] {
    const out: [string, Module][] = [];
    const seen = new Set<Module>();
    const visit = (m: Module, name: string): void => {
      if (seen.has(m)) return;
      seen.add(m);
      out.push([name, m]);
      for (const [k, c] of m.members().children) visit(c, name === "" ? k : `${name}.${k}`);
    };
    visit(this, prefix);
    return out;
  }

  /** (name, module) for direct children. */
  namedChildren(): [string, Module][] {
    return this.members().children;
  }

  children(): Module[] {
    return this.namedChildren().map(([, m]) => m);
  }

  modules(): Module[] {
    return this.namedModules().map(([, m]) => m);
  }

  /**
   * All state in state_dict order: each module's parameters, then its buffers, then its children.
   * With `dedupe`, shared modules and tensors appear once (torch's named_parameters); without,
   * under every path (torch's state_dict recursion). A module reachable from itself is skipped.
   */
  private namedState(dedupe: boolean): [string, State][] {
    const out: [string, State][] = [];
    const seenStates = new Set<State>();
    const seenModules = new Set<Module>();
    const path: Module[] = [];
    const visit = (m: Module, prefix: string): void => {
      if (path.includes(m) || (dedupe && seenModules.has(m))) return;
      seenModules.add(m);
      path.push(m);
      const { states, children } = m.members();
      const ordered = [...states.filter(([, s]) => s instanceof Parameter), ...states.filter(([, s]) => s instanceof Buffer)];
      for (const [k, s] of ordered) {
        if (dedupe && seenStates.has(s)) continue;
        seenStates.add(s);
        out.push([prefix + k, s]);
      }
      for (const [k, c] of children) visit(c, `${prefix}${k}.`);
      path.pop();
    };
    visit(this, "");
    return out;
  }

  /** Every parameter and buffer once (shared ones under their first name), for export. */
  namedStates(): [string, State][] {
    return this.namedState(true);
  }

  namedParameters(): [string, Parameter][] {
    return this.namedState(true).filter((e): e is [string, Parameter] => e[1] instanceof Parameter);
  }

  namedBuffers(): [string, Buffer][] {
    return this.namedState(true).filter((e): e is [string, Buffer] => e[1] instanceof Buffer);
  }

  parameters(): Parameter[] {
    return this.namedParameters().map(([, p]) => p);
  }

  buffers(): Buffer[] {
    return this.namedBuffers().map(([, b]) => b);
  }

  /** Parameters and buffers by qualified name (shares storage; tied tensors appear under each name, as in torch). */
  stateDict(): Record<string, Tensor> {
    const out: Record<string, Tensor> = {};
    for (const [k, s] of this.namedState(false)) out[k] = s.data;
    return out;
  }

  /**
   * Copies tensors into this module's state by qualified name. Shapes and dtypes must match;
   * with `strict` (default) the key sets must match too, otherwise the differences are returned.
   */
  loadStateDict(sd: Readonly<Record<string, Tensor>>, opts: { strict?: boolean } = {}): LoadResult {
    const strict = opts.strict ?? true;
    const own = new Map(this.namedState(false));
    const missingKeys = [...own.keys()].filter((k) => !(k in sd));
    const unexpectedKeys = Object.keys(sd).filter((k) => !own.has(k));
    if (strict && (missingKeys.length > 0 || unexpectedKeys.length > 0)) {
      const parts = [
        missingKeys.length > 0 ? `missing keys: ${missingKeys.join(", ")}` : "",
        unexpectedKeys.length > 0 ? `unexpected keys: ${unexpectedKeys.join(", ")}` : "",
      ].filter((s) => s !== "");
      throw new QforgeError("BAD_INPUT", `loadStateDict into ${this.constructor.name}: ${parts.join("; ")}`, {
        hint: "compare with stateDict() keys, or pass { strict: false }",
      });
    }
    // Check everything before changing anything, so a failed load leaves the module as it was.
    const updates: [State, Tensor, string][] = [];
    for (const [k, s] of own) {
      const t = sd[k];
      if (t === undefined) continue;
      checkReplacement(s.data, t, k);
      updates.push([s, t, k]);
    }
    for (const [s, t, k] of updates) s.assign(clone(t), k);
    return { missingKeys, unexpectedKeys };
  }

  /** Sets training mode here and in every submodule (torch's `train(mode)`). */
  train(mode = true): this {
    for (const m of this.modules()) m.training = mode;
    return this;
  }

  /** Inference mode: batch norm uses running stats, dropout is the identity. */
  eval(): this {
    return this.train(false);
  }
}
