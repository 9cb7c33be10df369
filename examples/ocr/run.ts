// npm run example:ocr -- --lines <dir> [--int8] [--backend reference|cpu|webgpu] [--calib N] [--observer minmax|histogram|percentile]
//                        [--limit N] [--float-node NAME]... [--no-default-float] [--model rec|det|cls] [--verbose]
// Recognizes every line of <dir>/labels.json with PP-OCRv4 rec (float, or quantized by qforge with
// --int8), decodes CTC greedily and prints one JSON line:
//   {"lines":80,"char_acc":...,"exact_line_acc":...,"mean_ms":...,"backend":"reference","int8":false}
// --model det|cls quantizes the detection / direction-classification model instead and prints how
// its int8 outputs compare with the float ones:
//   {"model":"det","lines":...,"mean_abs_diff":...,"max_abs_diff":...,"agreement":...,"mean_ms_float":...,"mean_ms_int8":...}
// Calibration uses the last --calib lines (default 16) of labels.json. Progress and details
// (lowering report, misread lines) go to stderr.
import { isQforgeError } from "@qforge/ir";
import {
  evaluateRec, loadCharacters, loadLabels, loadLines, loadModel, MODELS, modelSession, quantizeModel,
  type ActivationObserver, type BackendName, type Label, type Quantized,
} from "./pipeline.js";
import { auxInputs, compareAux, type AuxModel } from "./det-cls.js";
import { DEFAULT_FLOAT_NODES, DEFAULT_OBSERVER, DET_FLOAT_NODES } from "./settings.js";

interface Args {
  model: "rec" | AuxModel;
  lines: string;
  int8: boolean;
  backend: BackendName;
  calib: number;
  observer: ActivationObserver;
  limit: number | undefined;
  floatNodes: string[];
  verbose: boolean;
}

function usage(msg: string): never {
  process.stderr.write(`${msg}\nusage: run.ts --lines <dir> [--int8] [--backend reference|cpu|webgpu] [--calib N] [--observer minmax|histogram|percentile] [--limit N] [--float-node NAME]... [--no-default-float] [--model rec|det|cls] [--verbose]\n`);
  process.exit(2);
}

function parseArgs(argv: readonly string[]): Args {
  const a: Args = {
    model: "rec", lines: "/work/shared/data/ocr-lines", int8: false, backend: "reference", calib: 16, observer: DEFAULT_OBSERVER, limit: undefined,
    floatNodes: [], verbose: false,
  };
  let defaultFloat = true;
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) usage(`${k} needs a value`);
      return v;
    };
    const count = (): number => {
      const v = Number(value());
      if (!Number.isInteger(v) || v < 0) usage(`${k} needs a non-negative integer`);
      return v;
    };
    if (k === "--lines") a.lines = value();
    else if (k === "--int8") a.int8 = true;
    else if (k === "--backend") {
      const b = value();
      if (b !== "reference" && b !== "cpu" && b !== "webgpu") usage(`unknown backend '${b}'`);
      a.backend = b;
    } else if (k === "--calib") a.calib = count();
    else if (k === "--observer") {
      const o = value();
      if (o !== "minmax" && o !== "histogram" && o !== "percentile") usage(`unknown observer '${o}'`);
      a.observer = o;
    } else if (k === "--limit") a.limit = count();
    else if (k === "--float-node") a.floatNodes.push(value());
    else if (k === "--no-default-float") defaultFloat = false;
    else if (k === "--verbose") a.verbose = true;
    else if (k === "--model") {
      const m = value();
      if (m !== "rec" && m !== "det" && m !== "cls") usage(`unknown model '${m}'`);
      a.model = m;
    }
    else usage(`unknown argument '${k}'`);
  }
  if (defaultFloat) a.floatNodes.unshift(...(a.model === "rec" ? DEFAULT_FLOAT_NODES : a.model === "det" ? DET_FLOAT_NODES : []));
  return a;
}

function logQuantized(q: Quantized, log: (s: string) => void): void {
  const t = q.timings;
  log(`  prepare ${t.prepareMs.toFixed(0)} ms, calibrate ${t.calibrateMs.toFixed(0)} ms, convert ${t.convertMs.toFixed(0)} ms, lower ${t.lowerMs.toFixed(0)} ms`);
  log(`  lowered: ${Object.entries(q.report.lowered).map(([k, v]) => `${k} x${v}`).join(", ")}`);
  const left = new Map<string, number>();
  for (const r of q.report.notLowered) left.set(r.op, (left.get(r.op) ?? 0) + 1);
  log(`  left in float next to QDQ: ${[...left].map(([k, v]) => `${k} x${v}`).join(", ") || "none"}`);
}

async function compareAuxModel(args: Args, labels: readonly Label[], log: (s: string) => void): Promise<void> {
  const model = args.model as AuxModel;
  const ep = await loadModel(MODELS[model]);
  const calib = labels.slice(Math.max(0, labels.length - args.calib));
  const evalLabels = args.limit === undefined ? labels : labels.slice(0, args.limit);
  log(`${model}: ${calib.length} calibration lines, ${evalLabels.length} compared, ${args.observer} observer, float nodes: ${args.floatNodes.join(", ") || "none"}`);
  const r = await compareAux(model, ep, auxInputs(model, args.lines, calib), auxInputs(model, args.lines, evalLabels), args.backend, {
    observer: args.observer, floatNodes: args.floatNodes,
  });
  logQuantized(r.quantized, log);
  process.stdout.write(`${JSON.stringify({
    model, lines: r.lines, mean_abs_diff: r.meanAbsDiff, max_abs_diff: r.maxAbsDiff, agreement: r.agreement,
    mean_ms_float: Math.round(r.meanMsFloat * 10) / 10, mean_ms_int8: Math.round(r.meanMsInt8 * 10) / 10, backend: args.backend,
  })}\n`);
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2).filter((s) => s !== "--"));
  const log = (s: string): void => { process.stderr.write(`${s}\n`); };
  const labels = loadLabels(args.lines);
  if (args.model !== "rec") {
    await compareAuxModel(args, labels, log);
    return;
  }
  const characters = loadCharacters(MODELS.keys);
  const evalLabels = args.limit === undefined ? labels : labels.slice(0, args.limit);
  const lines = loadLines(args.lines, evalLabels);
  let program = await loadModel(MODELS.rec);
  if (args.int8) {
    // Calibration: the last `calib` lines of the data set (held out of the first lines --limit takes).
    const calib = loadLines(args.lines, labels.slice(Math.max(0, labels.length - args.calib)));
    log(`quantizing: ${calib.length} calibration lines (${calib[0]?.file ?? "-"}..${calib[calib.length - 1]?.file ?? "-"}), ${args.observer} observer, float nodes: ${args.floatNodes.join(", ") || "none"}`);
    const q = quantizeModel(program, calib.map((l) => l.input), { observer: args.observer, floatNodes: args.floatNodes });
    logQuantized(q, log);
    program = q.lowered;
  }
  const session = await modelSession(program, args.backend);
  const ev = await evaluateRec(session, lines, characters, (done, total) => {
    if (process.stderr.isTTY) process.stderr.write(`\r${done}/${total}`);
  });
  if (process.stderr.isTTY) process.stderr.write("\n");
  for (const r of ev.results) if (r.distance > 0 || args.verbose) log(`  ${r.file}: ${JSON.stringify(r.predicted)} (truth ${JSON.stringify(r.truth)}, distance ${r.distance})`);
  process.stdout.write(`${JSON.stringify({
    lines: ev.accuracy.lines, char_acc: ev.accuracy.charAcc, exact_line_acc: ev.accuracy.exactLineAcc,
    mean_ms: Math.round(ev.meanMs * 10) / 10, backend: args.backend, int8: args.int8,
  })}\n`);
}

main().catch((e: unknown) => {
  if (isQforgeError(e)) {
    process.stderr.write(`error: ${e.message}\n`);
    process.exit(1);
  }
  throw e;
});
