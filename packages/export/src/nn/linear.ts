import { QforgeError } from "@qforge/ir";
import * as F from "../functional.js";
import { Module } from "../module.js";
import { kaimingUniformTensor, normalTensor } from "../random.js";
import { Parameter } from "../state.js";
import type { Var } from "../var.js";

function positiveInt(v: number, what: string): void {
  if (!Number.isInteger(v) || v <= 0) throw new QforgeError("BAD_CONFIG", `${what} must be a positive integer, got ${v}`);
}

/** torch.nn.Linear: y = x W^T + b, W [out, in]; kaiming-uniform init as torch's reset_parameters. */
export class Linear extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  weight: Parameter;
  bias: Parameter | undefined;

  constructor(inFeatures: number, outFeatures: number, opts: { bias?: boolean } = {}) {
    super();
    positiveInt(inFeatures, "Linear in_features");
    positiveInt(outFeatures, "Linear out_features");
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    this.weight = new Parameter(kaimingUniformTensor([outFeatures, inFeatures], inFeatures));
    // torch: bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), the same bound as the weight's.
    this.bias = (opts.bias ?? true) ? new Parameter(kaimingUniformTensor([outFeatures], inFeatures)) : undefined;
  }

  forward(x: Var): Var {
    return F.linear(x, this.weight, this.bias);
  }
}

/** torch.nn.Embedding: a lookup table [num, dim] initialized N(0, 1), the padding row zeroed. */
export class Embedding extends Module {
  readonly numEmbeddings: number;
  readonly embeddingDim: number;
  readonly paddingIdx: number | undefined;
  weight: Parameter;

  constructor(numEmbeddings: number, embeddingDim: number, opts: { paddingIdx?: number } = {}) {
    super();
    positiveInt(numEmbeddings, "Embedding num_embeddings");
    positiveInt(embeddingDim, "Embedding embedding_dim");
    this.numEmbeddings = numEmbeddings;
    this.embeddingDim = embeddingDim;
    const p = opts.paddingIdx;
    if (p !== undefined && (!Number.isInteger(p) || p < -numEmbeddings || p >= numEmbeddings)) {
      throw new QforgeError("BAD_CONFIG", `Embedding padding_idx must be within num_embeddings, got ${p}`);
    }
    this.paddingIdx = p === undefined ? undefined : p < 0 ? p + numEmbeddings : p;
    const w = normalTensor([numEmbeddings, embeddingDim]);
    if (this.paddingIdx !== undefined) (w.data as Float32Array).fill(0, this.paddingIdx * embeddingDim, (this.paddingIdx + 1) * embeddingDim);
    this.weight = new Parameter(w);
  }

  forward(ids: Var): Var {
    return F.embedding(ids, this.weight);
  }
}
