import { fromArray, type Tensor } from "@qforge/ir";

/**
 * A small seeded PRNG (mulberry32) so that parameter initialization is reproducible, the role
 * `torch.manual_seed` plays for torch's default generator. The streams differ from torch's: the
 * same seed gives the same weights in qforge, not the weights torch would draw.
 */
export class Generator {
  private state: number;
  /** Box-Muller yields normals in pairs; the second one waits here. */
  private spare: number | undefined;

  constructor(seed = 0) {
    this.state = seed >>> 0;
  }

  /** Restarts the stream from `seed` (like torch.Generator.manual_seed). */
  manualSeed(seed: number): this {
    this.state = seed >>> 0;
    this.spare = undefined;
    return this;
  }

  /** Uniform in [0, 1). */
  random(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = Math.imul(this.state ^ (this.state >>> 15), this.state | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.random();
  }

  /** Standard normal (Box-Muller). */
  normal(): number {
    if (this.spare !== undefined) {
      const s = this.spare;
      this.spare = undefined;
      return s;
    }
    // 1 - random() is in (0, 1], so the log is finite.
    const r = Math.sqrt(-2 * Math.log(1 - this.random()));
    const theta = 2 * Math.PI * this.random();
    this.spare = r * Math.sin(theta);
    return r * Math.cos(theta);
  }
}

const DEFAULT = new Generator(0);

/** The generator module constructors draw their initial parameters from. */
export function defaultGenerator(): Generator {
  return DEFAULT;
}

/** Reseeds the default generator (torch.manual_seed). */
export function manualSeed(seed: number): void {
  DEFAULT.manualSeed(seed);
}

function count(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** float32 tensor with elements uniform in [lo, hi) (torch.nn.init.uniform_). */
export function uniformTensor(shape: readonly number[], lo: number, hi: number, gen: Generator = DEFAULT): Tensor {
  return fromArray("float32", shape, Array.from({ length: count(shape) }, () => gen.uniform(lo, hi)));
}

/** float32 tensor with elements from N(mean, std^2) (torch.nn.init.normal_). */
export function normalTensor(shape: readonly number[], mean = 0, std = 1, gen: Generator = DEFAULT): Tensor {
  return fromArray("float32", shape, Array.from({ length: count(shape) }, () => mean + std * gen.normal()));
}

/**
 * torch's default for Linear/Conv weights: kaiming_uniform_(w, a=sqrt(5)), i.e. uniform in
 * [-b, b] with b = gain * sqrt(3 / fan_in), gain = sqrt(2 / (1 + a^2)) = sqrt(1/3), so
 * b = 1 / sqrt(fan_in) (torch/nn/modules/linear.py reset_parameters, torch/nn/init.py).
 */
export function kaimingUniformTensor(shape: readonly number[], fanIn: number, gen: Generator = DEFAULT): Tensor {
  const bound = fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
  return uniformTensor(shape, -bound, bound, gen);
}
