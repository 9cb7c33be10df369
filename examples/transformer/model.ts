/**
 * A small decoder-only transformer (GPT-style): token + position embeddings, pre-LayerNorm blocks of
 * causal multi-head self-attention and a GELU MLP, a final LayerNorm and an LM head. Random weights
 * (seeded); the quantization example compares its logits in float and quantized.
 */
import {
  Buffer, Embedding, F, GELU, LayerNorm, Linear, manualSeed, Module, ModuleList, normalTensor, Parameter, type Var,
} from "@qforge/export";
import { fromArray, tensor, type Tensor } from "@qforge/ir";

export interface TransformerConfig {
  vocab: number;
  dim: number;
  heads: number;
  layers: number;
  mlp: number;
  /** Sequence length (static: the causal mask is a buffer of this size). */
  seq: number;
}

export const SMALL: TransformerConfig = { vocab: 256, dim: 64, heads: 4, layers: 2, mlp: 256, seq: 32 };

export class Attention extends Module {
  q: Linear;
  k: Linear;
  v: Linear;
  o: Linear;
  mask: Buffer;

  constructor(readonly cfg: TransformerConfig) {
    super();
    this.q = new Linear(cfg.dim, cfg.dim);
    this.k = new Linear(cfg.dim, cfg.dim);
    this.v = new Linear(cfg.dim, cfg.dim);
    this.o = new Linear(cfg.dim, cfg.dim);
    // Additive causal mask: 0 on and below the diagonal, -1e9 above.
    const m = new Float32Array(cfg.seq * cfg.seq);
    for (let i = 0; i < cfg.seq; i++) for (let j = i + 1; j < cfg.seq; j++) m[i * cfg.seq + j] = -1e9;
    this.mask = new Buffer(tensor("float32", [cfg.seq, cfg.seq], m));
  }

  forward(x: Var): Var {
    const [b, t] = [x.shape[0]!, x.shape[1]!];
    const { heads, dim } = this.cfg;
    const hd = dim / heads;
    const split = (y: Var): Var => F.transpose(F.reshape(y, [b, t, heads, hd]), 1, 2); // [b, h, t, hd]
    const q = split(this.q.call(x));
    const k = split(this.k.call(x));
    const v = split(this.v.call(x));
    const scores = F.add(F.mul(F.matmul(q, F.transpose(k, 2, 3)), 1 / Math.sqrt(hd)), this.mask);
    const ctx = F.matmul(F.softmax(scores, -1), v); // [b, h, t, hd]
    return this.o.call(F.reshape(F.transpose(ctx, 1, 2), [b, t, dim]));
  }
}

export class Mlp extends Module {
  fc1: Linear;
  act = new GELU();
  fc2: Linear;

  constructor(cfg: TransformerConfig) {
    super();
    this.fc1 = new Linear(cfg.dim, cfg.mlp);
    this.fc2 = new Linear(cfg.mlp, cfg.dim);
  }

  forward(x: Var): Var {
    return this.fc2.call(this.act.call(this.fc1.call(x)));
  }
}

export class Block extends Module {
  ln1: LayerNorm;
  attn: Attention;
  ln2: LayerNorm;
  mlp: Mlp;

  constructor(cfg: TransformerConfig) {
    super();
    this.ln1 = new LayerNorm(cfg.dim);
    this.attn = new Attention(cfg);
    this.ln2 = new LayerNorm(cfg.dim);
    this.mlp = new Mlp(cfg);
  }

  forward(x: Var): Var {
    const h = F.add(x, this.attn.call(this.ln1.call(x)));
    return F.add(h, this.mlp.call(this.ln2.call(h)));
  }
}

export class TinyTransformer extends Module {
  tok: Embedding;
  pos: Parameter;
  blocks: ModuleList<Block>;
  lnF: LayerNorm;
  head: Linear;

  constructor(readonly cfg: TransformerConfig) {
    super();
    this.tok = new Embedding(cfg.vocab, cfg.dim);
    this.pos = new Parameter(normalTensor([cfg.seq, cfg.dim], 0, 0.02));
    this.blocks = new ModuleList(Array.from({ length: cfg.layers }, () => new Block(cfg)));
    this.lnF = new LayerNorm(cfg.dim);
    this.head = new Linear(cfg.dim, cfg.vocab);
  }

  /** ids [batch, seq] (int64) -> logits [batch, seq, vocab]. */
  forward(ids: Var): Var {
    let h = F.add(this.tok.call(ids), this.pos);
    for (const block of this.blocks) h = block.call(h);
    return this.head.call(this.lnF.call(h));
  }
}

export function createModel(cfg: TransformerConfig = SMALL, seed = 0): TinyTransformer {
  manualSeed(seed);
  return new TinyTransformer(cfg).eval();
}

/** `batch` sequences of pseudo-random token ids (deterministic). */
export function exampleTokens(cfg: TransformerConfig = SMALL, batch = 2, seed = 1): Tensor {
  const ids: number[] = [];
  let s = seed;
  for (let i = 0; i < batch * cfg.seq; i++) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    ids.push(s % cfg.vocab);
  }
  return fromArray("int64", [batch, cfg.seq], ids);
}
