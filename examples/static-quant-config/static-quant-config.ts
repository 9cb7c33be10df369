/**
 * A user-defined quantize_ config, the StaticQuantConfig of torchao's static-quantization tutorial
 * (tutorials/calibration_flow/static_quant.py): observers record activation ranges during
 * calibration; the config's handler, registered with registerQuantizeModuleHandler, turns each
 * observed Linear into a QuantizedLinear whose weight and activation qparams come from observers.
 *
 *   insertObservers_(model, { observer: actObserver })       // insert_observers_
 *   for (const b of batches) model.call(Var.from(b))          // calibrate
 *   quantize_(model, new StaticQuantConfig("uint8"), isObservedLinear)
 */
import type { Module } from "@qforge/export";
import { QforgeError } from "@qforge/ir";
import { AffineQuantizedMinMaxObserver, MappingType, PerAxis, PerTensor } from "@qforge/quant";
import {
  AOBaseConfig, affineQuantizeWeightStatic, ObservedLinear, QuantizedLinear, registerQuantizeModuleHandler,
} from "@qforge/ao";

/** The tutorial's config: one target dtype for activations and weights (uint8 asymmetric). */
export class StaticQuantConfig extends AOBaseConfig {
  constructor(readonly targetDtype: "uint8" | "int8" = "uint8") {
    super();
  }
}

/** Activation observer: asymmetric, per tensor (the tutorial's act_obs). */
export function actObserver(targetDtype: "uint8" | "int8" = "uint8"): AffineQuantizedMinMaxObserver {
  return new AffineQuantizedMinMaxObserver({ mappingType: "asymmetric", targetDtype, granularity: PerTensor(), eps: 2 ** -23, zeroPointDtype: "int32" });
}

/** The tutorial's `_apply_static_quant`: weight and activation qparams from observers, then the swap. */
export function applyStaticQuant(module: Module, config: StaticQuantConfig, fqn: string): Module {
  if (!(module instanceof ObservedLinear)) {
    throw new QforgeError("BAD_CONFIG", `StaticQuantConfig quantizes observed linears; '${fqn}' is a ${module.constructor.name}`, {
      hint: "insertObservers_ and calibrate first, and pass isObservedLinear as the filter",
    });
  }
  // weight_obs: asymmetric per output channel, observed once on the weight.
  const weightObs = new AffineQuantizedMinMaxObserver({
    mappingType: "asymmetric", targetDtype: config.targetDtype, granularity: PerAxis(0), eps: 2 ** -23, zeroPointDtype: "int32",
  });
  weightObs.observe(module.weight.data);
  const wq = weightObs.calculateQParams();
  const weight = affineQuantizeWeightStatic(module.weight.data, wq.scale, wq.zeroPoint, {
    mappingType: MappingType.ASYMMETRIC, blockSize: [1, module.inFeatures], targetDtype: config.targetDtype,
  });
  const aq = module.actObserver.calculateQParams();
  return new QuantizedLinear(weight, module.bias?.data, {
    kind: "static", dtype: config.targetDtype, scale: aq.scale.data[0] as number, zeroPoint: Number(aq.zeroPoint.data[0]), compute: "integer",
  });
}

registerQuantizeModuleHandler(StaticQuantConfig, applyStaticQuant);
