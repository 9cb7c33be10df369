import { QforgeError } from "@qforge/ir";
import { Module } from "../module.js";
import type { Var } from "../var.js";

/**
 * torch.nn.Sequential: runs its modules in order. Built from modules (named "0", "1", ...) or
 * from a record (named by key, like torch's OrderedDict form).
 */
export class Sequential extends Module {
  readonly #items: [string, Module][];

  constructor(...modules: Module[] | [Readonly<Record<string, Module>>]) {
    super();
    const first = modules[0];
    if (modules.length === 1 && first !== undefined && !(first instanceof Module)) {
      this.#items = Object.entries(first);
    } else {
      this.#items = (modules as Module[]).map((m, i) => [String(i), m]);
    }
    for (const [k, m] of this.#items) {
      if (!(m instanceof Module)) throw new QforgeError("BAD_CONFIG", `Sequential item '${k}' is not a Module`);
    }
  }

  protected override ownEntries(): [string, unknown][] {
    return [...this.#items, ...super.ownEntries()];
  }

  get length(): number {
    return this.#items.length;
  }

  /** The i-th module (negative counts from the end). */
  at(i: number): Module {
    const m = this.#items.at(i)?.[1];
    if (m === undefined) throw new QforgeError("BAD_INPUT", `Sequential index ${i} out of range (length ${this.#items.length})`);
    return m;
  }

  [Symbol.iterator](): Iterator<Module> {
    return this.#items.map(([, m]) => m)[Symbol.iterator]();
  }

  forward(x: Var): Var {
    let y: Var = x;
    for (const [, m] of this.#items) y = m.call(y) as Var;
    return y;
  }
}

/** torch.nn.ModuleList: an indexed list of submodules, named "0", "1", ...; it has no forward. */
export class ModuleList<M extends Module = Module> extends Module {
  readonly #items: M[];

  constructor(modules: readonly M[] = []) {
    super();
    this.#items = [...modules];
    this.#items.forEach((m, i) => {
      if (!(m instanceof Module)) throw new QforgeError("BAD_CONFIG", `ModuleList item ${i} is not a Module`);
    });
  }

  protected override ownEntries(): [string, unknown][] {
    return [...this.#items.map((m, i): [string, unknown] => [String(i), m]), ...super.ownEntries()];
  }

  get length(): number {
    return this.#items.length;
  }

  at(i: number): M {
    const m = this.#items.at(i);
    if (m === undefined) throw new QforgeError("BAD_INPUT", `ModuleList index ${i} out of range (length ${this.#items.length})`);
    return m;
  }

  push(m: M): this {
    if (!(m instanceof Module)) throw new QforgeError("BAD_CONFIG", "ModuleList.push expects a Module");
    this.#items.push(m);
    return this;
  }

  [Symbol.iterator](): Iterator<M> {
    return this.#items[Symbol.iterator]();
  }

  forward(): never {
    throw new QforgeError("UNSUPPORTED", "ModuleList has no forward", { hint: "iterate over it in the parent module's forward" });
  }
}
