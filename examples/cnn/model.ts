/**
 * A small CNN written with @qforge/export's nn modules: conv-bn-relu blocks, a residual add, two
 * branches joined with cat, pooling, flatten and a linear classifier.
 */
import {
  AdaptiveAvgPool2d, BatchNorm2d, Conv2d, F, Flatten, Linear, manualSeed, MaxPool2d, Module, ReLU, Sequential, uniformTensor, Var,
  type Conv2dConfig,
} from "@qforge/export";
import type { Tensor } from "@qforge/ir";

/** conv (no bias: batch norm supplies it) -> batch norm -> relu. */
export class ConvBnReLU extends Module {
  conv: Conv2d;
  bn: BatchNorm2d;
  relu = new ReLU();

  constructor(inChannels: number, outChannels: number, kernelSize: number, opts: Conv2dConfig = {}) {
    super();
    this.conv = new Conv2d(inChannels, outChannels, kernelSize, { ...opts, bias: false });
    this.bn = new BatchNorm2d(outChannels);
  }

  forward(x: Var): Var {
    return this.relu.call(this.bn.call(this.conv.call(x)));
  }
}

/** Two 3x3 convs with a skip connection: relu(bn(conv(convBnRelu(x))) + x). */
export class ResidualBlock extends Module {
  body: ConvBnReLU;
  conv: Conv2d;
  bn: BatchNorm2d;
  relu = new ReLU();

  constructor(channels: number) {
    super();
    this.body = new ConvBnReLU(channels, channels, 3, { padding: 1 });
    this.conv = new Conv2d(channels, channels, 3, { padding: "same", bias: false });
    this.bn = new BatchNorm2d(channels);
  }

  forward(x: Var): Var {
    const y = this.bn.call(this.conv.call(this.body.call(x)));
    return this.relu.call(F.add(y, x));
  }
}

export class SmallCNN extends Module {
  stem = new ConvBnReLU(3, 8, 3, { padding: 1 });
  pool = new MaxPool2d(2);
  res = new ResidualBlock(8);
  branch1x1 = new ConvBnReLU(8, 8, 1);
  branch3x3 = new ConvBnReLU(8, 8, 3, { stride: 2, padding: 1 });
  down = new MaxPool2d(2);
  head = new Sequential(new AdaptiveAvgPool2d(1), new Flatten(), new Linear(16, 10));

  forward(x: Var): Var {
    const h = this.res.call(this.pool.call(this.stem.call(x)));
    const joined = F.cat([this.down.call(this.branch1x1.call(h)), this.branch3x3.call(h)], 1);
    return this.head.call(joined);
  }
}

/** A random [n, 3, 16, 16] batch in [-1, 1). */
export function exampleInput(seed = 1, n = 2): Tensor {
  manualSeed(seed);
  return uniformTensor([n, 3, 16, 16], -1, 1);
}

/**
 * The model in eval mode with seeded weights. Batch norm statistics come from a few eager
 * training-mode passes, so they are not the trivial mean 0 / var 1 of a fresh model.
 */
export function createModel(seed = 0): SmallCNN {
  manualSeed(seed);
  const model = new SmallCNN();
  model.train();
  for (let i = 0; i < 3; i++) model.call(Var.from(exampleInput(100 + i, 4)));
  return model.eval();
}
