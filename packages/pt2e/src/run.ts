import { produce } from "immer";
import { isQforgeError, QforgeError, type ExportedProgram, type Graph, type Tensor } from "@qforge/ir";
import { runProgram, type Kernel, type RunOptions } from "@qforge/runtime";
import { isFakeQuantize, type ObserverOrFakeQuantize } from "./observers.js";
import type { PreparedProgram } from "./prepare.js";

/**
 * Running a prepared program: the reference interpreter with the `observer` and `fake_quantize`
 * kernels bound to the program's modules (RunOptions.kernels), calibration over batches, and torch's
 * switches for QAT (enable/disable observer and fake-quant, move the model to eval/train).
 */

function moduleOf(prepared: PreparedProgram, id: unknown, node: string): ObserverOrFakeQuantize {
  const m = typeof id === "string" ? prepared.observers.get(id) : undefined;
  if (m === undefined) {
    throw new QforgeError("BAD_INPUT", `no observer or fake-quant module with id '${String(id)}' in the prepared program`, {
      node, hint: "the graph and the PreparedProgram's observers must come from the same preparePt2e / prepareQatPt2e call",
    });
  }
  return m;
}

/** The kernels that bind `observer` / `fake_quantize` nodes to the modules of `prepared`. */
export function preparedKernels(prepared: PreparedProgram): Record<string, Kernel> {
  const observe: Kernel = (inputs, attrs, ctx) => {
    const x = inputs[0]!;
    const m = moduleOf(prepared, attrs["id"], ctx.node);
    // An observer node always holds an observer; a fake-quant module observes through its forward.
    if (isFakeQuantize(m)) return [m.forward(x).output];
    m.observe(x);
    return [x];
  };
  const fakeQuantize: Kernel = (inputs, attrs, ctx) => {
    const m = moduleOf(prepared, attrs["id"], ctx.node);
    if (!isFakeQuantize(m)) {
      m.observe(inputs[0]!);
      return [inputs[0]!];
    }
    return [m.forward(inputs[0]!).output];
  };
  return { observer: observe, fake_quantize: fakeQuantize };
}

/**
 * Runs the prepared program once (torch: calling the prepared GraphModule): observers record the
 * tensors they see, fake-quant modules observe and fake-quantize (as far as they are enabled).
 * Returns the outputs in signature order.
 */
export function runPrepared(prepared: PreparedProgram, inputs: readonly Tensor[], opts: Omit<RunOptions, "kernels"> = {}): Tensor[] {
  return runProgram(prepared.program, inputs, { ...opts, kernels: preparedKernels(prepared) });
}

export interface CalibrateOptions {
  /** Show a progress line on stderr (default: when stderr is a TTY). */
  progress?: boolean;
  /** Called after each batch. */
  onBatch?: (done: number, total: number) => void;
}

/**
 * Runs every batch (one array of inputs per batch, in signature order) through the prepared program so
 * that its observers collect statistics — the calibration loop of torch's PTQ tutorial. Empty data is
 * a BAD_INPUT error; an observer refusing its data (NaN / Inf are BAD_DATA) fails naming the observer
 * node and the batch.
 */
export function calibrate(prepared: PreparedProgram, batches: readonly (readonly Tensor[])[], opts: CalibrateOptions = {}): void {
  if (!Array.isArray(batches) || batches.length === 0) {
    throw new QforgeError("BAD_INPUT", "calibration data is empty", { hint: "pass at least one batch of representative inputs" });
  }
  // process is Node's; elsewhere (a browser bundle) there is no TTY to draw on.
  const stderr = typeof process !== "undefined" ? process.stderr : undefined;
  const progress = stderr !== undefined && (opts.progress ?? stderr.isTTY === true);
  const total = batches.length;
  const kernels = preparedKernels(prepared);
  try {
    batches.forEach((batch, i) => {
      try {
        runProgram(prepared.program, batch, { kernels });
      } catch (e) {
        if (isQforgeError(e)) {
          throw new QforgeError(e.code, `calibration batch ${i + 1} of ${total}: ${e.message}`, { node: e.node, hint: e.hint, cause: e });
        }
        throw e;
      }
      if (progress) stderr!.write(`\rcalibrating: batch ${i + 1}/${total}`);
      opts.onBatch?.(i + 1, total);
    });
  } finally {
    if (progress) stderr!.write("\n");
  }
}

/** torch.ao.quantization.enable_observer / disable_observer over every module of a prepared program. */
export function setObserverEnabled(prepared: PreparedProgram, enabled: boolean): void {
  for (const m of prepared.observers.values()) if (isFakeQuantize(m)) m.enableObserver(enabled);
}

/** torch.ao.quantization.enable_fake_quant / disable_fake_quant over every module of a prepared program. */
export function setFakeQuantEnabled(prepared: PreparedProgram, enabled: boolean): void {
  for (const m of prepared.observers.values()) if (isFakeQuantize(m)) m.enableFakeQuant(enabled);
}

function setBatchNormTraining(g: Graph, training: boolean): Graph {
  const mode = training ? 1 : 0;
  if (!g.nodes.some((n) => n.op === "batch_norm" && (n.attrs["training_mode"] ?? 0) !== mode)) return g;
  return produce(g, (d) => {
    for (const n of d.nodes) {
      if (n.op === "batch_norm") (n.attrs as Record<string, number>)["training_mode"] = mode;
    }
  });
}

function isPrepared(p: ExportedProgram | PreparedProgram): p is PreparedProgram {
  return "program" in p && "observers" in p;
}

function moveTo<P extends ExportedProgram | PreparedProgram>(p: P, training: boolean): P {
  if (isPrepared(p)) {
    const graph = setBatchNormTraining(p.program.graph, training);
    return (graph === p.program.graph ? p : { ...p, program: { ...p.program, graph } }) as P;
  }
  const ep = p as ExportedProgram;
  const graph = setBatchNormTraining(ep.graph, training);
  return (graph === ep.graph ? ep : { ...ep, graph }) as P;
}

/**
 * torchao's `move_exported_model_to_eval`: batch norms normalize with their running statistics
 * (`training_mode` 0). Returns a new program (a PreparedProgram keeps its modules).
 */
export function moveExportedModelToEval<P extends ExportedProgram | PreparedProgram>(p: P): P {
  return moveTo(p, false);
}

/** torchao's `move_exported_model_to_train`: batch norms normalize with batch statistics (`training_mode` 1). */
export function moveExportedModelToTrain<P extends ExportedProgram | PreparedProgram>(p: P): P {
  return moveTo(p, true);
}
