import {
  AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Embedding, exportModel, F, Flatten, Linear, manualSeed, MaxPool2d, Module, ReLU, ReLU6,
  Sequential, Sigmoid, Tanh, uniformTensor, Var, Hardswish, Softmax,
} from "@qforge/export";
import { fromArray, type ExportedProgram, type Graph, type Node } from "@qforge/ir";

/** conv -> batch_norm -> relu, the QAT fusion pattern. */
export class ConvBnReLU extends Module {
  conv: Conv2d;
  bn: BatchNorm2d;
  relu = new ReLU();
  constructor(cin: number, cout: number) {
    super();
    this.conv = new Conv2d(cin, cout, 3, { padding: 1, bias: false });
    this.bn = new BatchNorm2d(cout);
  }
  forward(x: Var): Var {
    return this.relu.call(this.bn.call(this.conv.call(x)));
  }
}

/** A block used to test module-name/type scopes: conv -> relu6 -> maxpool. */
export class Block extends Module {
  conv: Conv2d;
  act = new ReLU6();
  pool = new MaxPool2d(2);
  constructor(cin: number, cout: number) {
    super();
    this.conv = new Conv2d(cin, cout, 3, { padding: 1 });
  }
  forward(x: Var): Var {
    return this.pool.call(this.act.call(this.conv.call(x)));
  }
}

/**
 * Covers every XNNPACK pattern: conv+relu, maxpool sharing, residual add+relu, a mul, two-branch cat,
 * adaptive pooling + flatten, linear+relu, linear, hardswish, and sigmoid/tanh/softmax heads.
 */
export class Net extends Module {
  stem = new Sequential(new Conv2d(3, 4, 3, { padding: 1 }), new ReLU());
  pool = new MaxPool2d(2);
  body = new Block(4, 4);
  branch = new Conv2d(4, 4, 1);
  head = new Sequential(new AdaptiveAvgPool2d(1), new Flatten(), new Linear(8, 8), new ReLU());
  fc = new Linear(8, 6);
  hs = new Hardswish();
  sig = new Sigmoid();
  tanh = new Tanh();
  softmax = new Softmax(1);

  forward(x: Var): Var[] {
    const s = this.pool.call(this.stem.call(x));
    const b = this.body.call(s);
    const r = F.relu(F.add(this.branch.call(b), b));
    const m = F.mul(r, b);
    const c = F.cat([r, m], 1);
    const h = this.hs.call(this.fc.call(this.head.call(c)));
    return [this.sig.call(h), this.tanh.call(h), this.softmax.call(h)];
  }
}

export function netProgram(): ExportedProgram {
  manualSeed(0);
  const model = new Net();
  model.eval();
  return exportModel(model, [uniformTensor([2, 3, 8, 8], -1, 1)]);
}

export function convBnProgram(): ExportedProgram {
  manualSeed(1);
  const model = new Sequential(new ConvBnReLU(3, 4), new ConvBnReLU(4, 4));
  model.eval();
  return exportModel(model, [uniformTensor([1, 3, 6, 6], -1, 1)]);
}

export class EmbedMlp extends Module {
  emb = new Embedding(10, 8);
  fc = new Linear(8, 4);
  forward(ids: Var): Var {
    return F.relu(this.fc.call(this.emb.call(ids)));
  }
}

export function embedProgram(): ExportedProgram {
  manualSeed(2);
  const model = new EmbedMlp();
  return exportModel(model, [fromArray("int64", [2, 3], [1, 2, 3, 4, 5, 6])]);
}

export function byOp(g: Graph, op: string): Node[] {
  return g.nodes.filter((n) => n.op === op);
}

export function nodeNamed(g: Graph, name: string): Node {
  const n = g.nodes.find((x) => x.name === name);
  if (n === undefined) throw new Error(`no node ${name}`);
  return n;
}
