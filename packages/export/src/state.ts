import { QforgeError, sameShape, type DType, type Tensor } from "@qforge/ir";

/**
 * Module state: a tensor a module owns, found by walking the module's properties. The object is
 * the identity (so tracing can name it by its qualified name); `data` may be replaced, e.g. by
 * `loadStateDict` or a batch-norm running-stats update.
 */
abstract class StateTensor {
  constructor(public data: Tensor) {}

  get shape(): readonly number[] {
    return this.data.shape;
  }

  get dtype(): DType {
    return this.data.dtype;
  }

  /** Replaces the data with `t`, which must have the same dtype and shape (what load_state_dict checks). */
  assign(t: Tensor, name = "tensor"): void {
    checkReplacement(this.data, t, name);
    this.data = t;
  }
}

/** Throws unless `next` can replace `current` (same dtype and shape). */
export function checkReplacement(current: Tensor, next: Tensor, name: string): void {
  if (next.dtype !== current.dtype) {
    throw new QforgeError("BAD_DTYPE", `'${name}' is ${current.dtype}, got ${next.dtype}`, { node: name });
  }
  if (!sameShape(next.shape, current.shape)) {
    throw new QforgeError("BAD_SHAPE", `'${name}' has shape [${current.shape.join(",")}], got [${next.shape.join(",")}]`, { node: name });
  }
}

/** A learnable tensor (torch.nn.Parameter): exported as a graph constant of kind "parameter". */
export class Parameter extends StateTensor {
  readonly kind = "parameter" as const;
}

/**
 * A non-learnable state tensor such as batch norm's running statistics (torch.nn.Buffer /
 * register_buffer): exported as a graph constant of kind "buffer". Note the name shadows Node's
 * global `Buffer` in files that import it.
 */
export class Buffer extends StateTensor {
  readonly kind = "buffer" as const;
}

export type State = Parameter | Buffer;

export function isState(x: unknown): x is State {
  return x instanceof Parameter || x instanceof Buffer;
}
