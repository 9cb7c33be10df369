/**
 * The modules `quantize_` swaps in. torchao keeps `nn.Linear` and swaps its weight for a tensor
 * subclass whose `linear` dispatch runs the quantized kernel; qforge modules dispatch through ops,
 * so the swap is a module whose forward emits the quantized op (traced by exportModel like any op).
 *
 * State names follow the flattened tensor subclass: `weight.qdata`, `weight.scale`,
 * `weight.zero_point` (codebook: `weight.codes`, `weight.codebook`), `bias`, and for static
 * activation quantization `input_scale` / `input_zero_point`: the same names @qforge/ao gives the
 * constants when it quantizes an ExportedProgram.
 */
import { Buffer, emit1, F, Module, Parameter, type Var } from "@qforge/export";
import { QforgeError, tensor, type Tensor } from "@qforge/ir";
import type { Observer } from "@qforge/quant";
import { activationAttrs, checkActivation, NO_ACTIVATION_QUANT, type ActivationQuant } from "./activation.js";
import {
  affineWeightAttrs, codebookWeightAttrs, weightDescriptor, weightFromParts, weightTensorNames, weightTensors,
  type QuantizedWeight, type WeightDescriptor,
} from "./tensor.js";

/** The weight's tensors as module buffers, rebuilt into a QuantizedWeight from their current data. */
class WeightState {
  readonly descriptor: WeightDescriptor;
  readonly buffers: [string, Buffer][];

  constructor(w: QuantizedWeight, where: string) {
    this.descriptor = weightDescriptor(w);
    const ts = weightTensors(w);
    this.buffers = weightTensorNames(w).map((n) => [n, new Buffer(ts[n]!)]);
    this.weight(where); // type-checks the parts through the op schema
  }

  get(name: string): Buffer | undefined {
    return this.buffers.find(([n]) => n === name)?.[1];
  }

  weight(where: string): QuantizedWeight {
    return weightFromParts(this.descriptor, Object.fromEntries(this.buffers.map(([n, b]) => [n, b.data])), where);
  }

  entries(): [string, unknown][] {
    return this.buffers.map(([n, b]) => [`weight.${n}`, b]);
  }
}

/** A Linear whose weight is a QuantizedWeight; forward emits affine_quantized_linear / codebook_quantized_linear. */
export class QuantizedLinear extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  readonly act: ActivationQuant;
  bias: Parameter | undefined;
  readonly #w: WeightState;
  readonly #inputScale: Buffer | undefined;
  readonly #inputZeroPoint: Buffer | undefined;

  constructor(weight: QuantizedWeight, bias?: Tensor, act: ActivationQuant = NO_ACTIVATION_QUANT) {
    super();
    const [n, k] = weight.shape;
    this.outFeatures = n;
    this.inFeatures = k;
    this.act = checkActivation(act);
    if (weight.kind === "codebook" && act.kind !== "none") {
      throw new QforgeError("BAD_CONFIG", "codebook weights are weight-only: no activation quantization");
    }
    if (bias !== undefined && (bias.dtype !== "float32" || bias.shape.length !== 1 || bias.shape[0] !== n)) {
      throw new QforgeError("BAD_SHAPE", `QuantizedLinear bias must be float32 [${n}], got ${bias.dtype}[${bias.shape.join(",")}]`);
    }
    this.bias = bias === undefined ? undefined : new Parameter(bias);
    this.#w = new WeightState(weight, "QuantizedLinear.weight");
    if (act.kind === "static") {
      this.#inputScale = new Buffer(tensor("float32", [], Float32Array.of(act.scale)));
      this.#inputZeroPoint = act.dtype.startsWith("float8") ? undefined : new Buffer(tensor("int32", [], Int32Array.of(act.zeroPoint)));
    }
    this.training = false;
  }

  protected override ownEntries(): [string, unknown][] {
    const extra: [string, unknown][] = [];
    if (this.#inputScale !== undefined) extra.push(["input_scale", this.#inputScale]);
    if (this.#inputZeroPoint !== undefined) extra.push(["input_zero_point", this.#inputZeroPoint]);
    return [...super.ownEntries(), ...this.#w.entries(), ...extra];
  }

  /** The quantized weight (its tensors are this module's current buffers). */
  get weight(): QuantizedWeight {
    return this.#w.weight("QuantizedLinear.weight");
  }

  forward(x: Var): Var {
    const d = this.#w.descriptor;
    if (d.kind === "codebook") {
      return emit1("codebook_quantized_linear", [x, this.#w.get("codes"), this.#w.get("codebook"), this.bias], codebookWeightAttrs(d));
    }
    return emit1(
      "affine_quantized_linear",
      [x, this.#w.get("qdata"), this.#w.get("scale"), this.#w.get("zero_point"), this.bias, this.#inputScale, this.#inputZeroPoint],
      { ...affineWeightAttrs(d), ...activationAttrs(this.act) },
    );
  }
}

/** An Embedding whose table is an affine QuantizedWeight (weight-only configs); forward emits affine_quantized_embedding. */
export class QuantizedEmbedding extends Module {
  readonly numEmbeddings: number;
  readonly embeddingDim: number;
  readonly #w: WeightState;

  constructor(weight: QuantizedWeight) {
    super();
    if (weight.kind !== "affine") throw new QforgeError("BAD_CONFIG", "QuantizedEmbedding takes an affine quantized weight");
    [this.numEmbeddings, this.embeddingDim] = weight.shape;
    this.#w = new WeightState(weight, "QuantizedEmbedding.weight");
    this.training = false;
  }

  protected override ownEntries(): [string, unknown][] {
    return [...super.ownEntries(), ...this.#w.entries()];
  }

  get weight(): QuantizedWeight {
    return this.#w.weight("QuantizedEmbedding.weight");
  }

  forward(ids: Var): Var {
    const d = this.#w.descriptor;
    if (d.kind !== "affine") throw new QforgeError("BAD_CONFIG", "unreachable: QuantizedEmbedding holds an affine weight");
    return emit1("affine_quantized_embedding", [ids, this.#w.get("qdata"), this.#w.get("scale"), this.#w.get("zero_point")], affineWeightAttrs(d));
  }
}

/**
 * torchao's static-quantization tutorial `ObservedLinear`: a float Linear (same weight and bias
 * parameters, so state names do not change) whose eager forward shows its input to an observer.
 * Tracing records a plain linear; calibrate by running the module eagerly.
 */
export class ObservedLinear extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  weight: Parameter;
  bias: Parameter | undefined;
  /** Sees every input of an eager forward. Not module state (like torch, it is not in the state_dict). */
  readonly actObserver: Observer;

  constructor(weight: Parameter, bias: Parameter | undefined, actObserver: Observer) {
    super();
    this.weight = weight;
    this.bias = bias;
    [this.outFeatures, this.inFeatures] = [weight.shape[0]!, weight.shape[1]!];
    this.actObserver = actObserver;
  }

  forward(x: Var): Var {
    if (!x.isProxy) this.actObserver.observe(x.toTensor());
    return F.linear(x, this.weight, this.bias);
  }
}
