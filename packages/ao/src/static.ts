/**
 * The static-quantization flow of torchao's tutorial (tutorials/calibration_flow/static_quant.py):
 * insert observers in the linear layers, calibrate on sample inputs, then quantize_ with a static
 * config that reads the observed activation ranges. For ExportedPrograms, `calibrateLinearInputs`
 * observes the inputs of each linear node while the program runs.
 */
import { Linear, type Module } from "@qforge/export";
import { QforgeError, type ExportedProgram, type Tensor } from "@qforge/ir";
import { AffineQuantizedMinMaxObserver, PerTensor, type Observer } from "@qforge/quant";
import { getKernel, runProgram } from "@qforge/runtime";
import type { StaticQParams } from "./configs.js";
import { ObservedLinear } from "./modules.js";
import { programSites, siteFqn } from "./quantize.js";
import { isLinear, type FilterFn } from "./registry.js";
import { quantize_ } from "./quantize.js";
import { AOBaseConfig, registerQuantizeModuleHandler } from "./registry.js";

/** torchao's tutorial observer: AffineQuantizedMinMaxObserver, symmetric int8, per tensor. */
export function defaultActivationObserver(): Observer {
  return new AffineQuantizedMinMaxObserver({ mappingType: "symmetric", targetDtype: "int8", granularity: PerTensor(), eps: 2 ** -23 });
}

/** Swaps the selected Linear layers (default: all) for ObservedLinear layers sharing their parameters. */
class InsertObserversConfig extends AOBaseConfig {
  constructor(readonly observer: () => Observer) {
    super();
  }
}

registerQuantizeModuleHandler(InsertObserversConfig, (m, c, fqn) => {
  if (!(m instanceof Linear)) {
    throw new QforgeError("UNSUPPORTED", `insertObservers_: '${fqn}' is a ${m.constructor.name}, not a Linear`, { node: fqn });
  }
  return new ObservedLinear(m.weight, m.bias, c.observer());
});

/**
 * The tutorial's `insert_observers_(model, act_obs, weight_obs)`: in place, every Linear the filter
 * selects becomes an ObservedLinear whose eager forward feeds its input to a fresh observer.
 * Calibrate by running the model eagerly, then `quantize_(model, new Int8StaticActivationInt8WeightConfig())`.
 */
export function insertObservers_<M extends Module>(model: M, opts: { observer?: () => Observer; filter?: FilterFn } = {}): M {
  return quantize_(model, new InsertObserversConfig(opts.observer ?? defaultActivationObserver), opts.filter ?? isLinear);
}

/**
 * Runs `batches` through the program and observes the input of every linear node with a constant
 * weight (one observer per layer, by fqn); returns each layer's per-tensor activation qparams, the
 * `actQParams` of Int8StaticActivationInt8WeightConfig.
 */
export function calibrateLinearInputs(
  ep: ExportedProgram,
  batches: Iterable<readonly Tensor[]>,
  opts: { observer?: () => Observer; filter?: FilterFn } = {},
): Record<string, StaticQParams> {
  const make = opts.observer ?? defaultActivationObserver;
  const filter = opts.filter ?? isLinear;
  const byNode = new Map<string, { fqn: string; obs: Observer }>();
  for (const site of programSites(ep.graph)) {
    const fqn = siteFqn(site);
    if (site.type === "Linear" && filter(site, fqn)) byNode.set(site.node.name, { fqn, obs: make() });
  }
  const linear = getKernel("linear");
  for (const batch of batches) {
    runProgram(ep, batch, {
      kernels: {
        linear: (inputs, attrs, ctx) => {
          const o = byNode.get(ctx.node);
          if (o !== undefined && inputs[0] !== undefined) o.obs.observe(inputs[0]);
          return linear(inputs, attrs, ctx);
        },
      },
    });
  }
  const out: Record<string, StaticQParams> = {};
  for (const { fqn, obs } of byNode.values()) {
    const qp = obs.calculateQParams();
    out[fqn] = { scale: qp.scale.data[0] as number, zeroPoint: Number(qp.zeroPoint.data[0]) };
  }
  return out;
}
