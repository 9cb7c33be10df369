import { QforgeError, type Dim } from "@qforge/ir";

/** What the caller knows about the graph inputs' sizes (ImportOptions.inputShapes / dimValues). */
export interface KnownSizes {
  readonly inputShapes?: Readonly<Record<string, readonly number[]>> | undefined;
  readonly dimValues?: Readonly<Record<string, number>> | undefined;
}

function checkSize(v: unknown, what: string): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
    throw new QforgeError("BAD_INPUT", `${what} must be a non-negative integer, got ${String(v)}`);
  }
  return v;
}

/**
 * Applies known sizes to the declared input shapes (graph input name -> declared dims, undefined =
 * unknown rank). A symbolic dim takes its size from `dimValues`, or from the `inputShapes` entry of an
 * input that has it; that size then holds for the same symbol in every input, as onnxruntime's
 * free-dimension overrides do (SessionOptions.AddFreeDimensionOverrideByName). Static dims must
 * agree with the given shape and ranks must match: a mismatch, an unknown input or symbol, or a
 * contradictory size is BAD_INPUT (the caller's mistake, not the model's).
 */
export function applyKnownSizes(declared: ReadonlyMap<string, readonly Dim[] | undefined>, known: KnownSizes): Map<string, readonly Dim[] | undefined> {
  // Own entries only: an input named 'constructor' must not find Object.prototype's.
  const shapes = new Map(Object.entries(known.inputShapes ?? {}));
  const dimValues = new Map(Object.entries(known.dimValues ?? {}));
  const inputs = [...declared.keys()];
  const listed = inputs.length > 0 ? inputs.join(", ") : "none";

  const bound = new Map<string, { size: number; from: string }>();
  const bind = (symbol: string, size: number, from: string): void => {
    const prev = bound.get(symbol);
    if (prev !== undefined && prev.size !== size) {
      throw new QforgeError("BAD_INPUT", `symbolic dim '${symbol}' is ${prev.size} (${prev.from}) and ${size} (${from})`, {
        node: symbol, hint: "inputs sharing a symbolic dim must agree on its size",
      });
    }
    if (prev === undefined) bound.set(symbol, { size, from });
  };

  const symbols = new Set<string>();
  for (const dims of declared.values()) for (const d of dims ?? []) if (typeof d === "string") symbols.add(d);
  for (const [symbol, v] of dimValues) {
    if (!symbols.has(symbol)) {
      throw new QforgeError("BAD_INPUT", `dimValues names '${symbol}', which is no symbolic dim of a graph input`, {
        node: symbol, hint: `symbolic dims: ${symbols.size > 0 ? [...symbols].join(", ") : "none"}`,
      });
    }
    bind(symbol, checkSize(v, `dimValues['${symbol}']`), "dimValues");
  }

  for (const [name, given] of shapes) {
    if (!declared.has(name)) {
      throw new QforgeError("BAD_INPUT", `inputShapes names '${name}', which is not a graph input`, { node: name, hint: `graph inputs: ${listed}` });
    }
    if (!Array.isArray(given)) throw new QforgeError("BAD_INPUT", `inputShapes['${name}'] must be an array of sizes`, { node: name });
    given.forEach((v, i) => checkSize(v, `inputShapes['${name}'][${i}]`));
    const dims = declared.get(name);
    if (dims === undefined) continue;
    if (dims.length !== given.length) {
      throw new QforgeError("BAD_INPUT", `inputShapes['${name}'] has rank ${given.length}; the model declares [${dims.join(", ")}]`, { node: name });
    }
    dims.forEach((d, i) => {
      if (typeof d === "number" && d !== given[i]) {
        throw new QforgeError("BAD_INPUT", `inputShapes['${name}'] dim ${i} is ${given[i]}; the model declares it ${d}`, { node: name });
      }
      if (typeof d === "string") bind(d, given[i]!, `inputShapes['${name}']`);
    });
  }

  const out = new Map<string, readonly Dim[] | undefined>();
  for (const [name, dims] of declared) {
    const given = shapes.get(name);
    if (given !== undefined) out.set(name, [...given]);
    else out.set(name, dims?.map((d) => (typeof d === "string" ? (bound.get(d)?.size ?? d) : d)));
  }
  return out;
}
