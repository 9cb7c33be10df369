import { parseArgs } from "node:util";
import { isQforgeError } from "@qforge/ir";
import { dump, type DumpFormat } from "./commands/dump.js";
import { compareCommand } from "./commands/compare.js";
import { quantizeCommand } from "./commands/quantize.js";
import { runGolden } from "./conformance/golden.js";
import { runOnnxNodeTests } from "./conformance/onnx.js";

const USAGE = `usage: qforge <command> [options]

commands:
  dump <file> [--format text|dot|mermaid] [--full]
      print a graph (.onnx model or qforge text dump); --full inlines every constant
  compare <model.onnx|.qf> [--calib <dir>] [--input <tensor.json>] [--engine qnnpack|onednn] [--per-channel]
          [--by local|sqnr] [--limit N]
      quantize the model (XNNPACK int8: prepare, calibrate on the .json tensors of <dir>, convert, lower) and
      print the numeric debugger's per-node SQNR against the float model, worst node first
  compare <float.qf|.onnx> <quant.qf> --input <tensor.json> [--by local|sqnr] [--limit N]
      the same table for two given graphs (nodes matched through meta.debugHandle)
  quantize <in.onnx|.qf> --out <out.onnx|.qf> [--calib <dir>] [options]
      post-training quantization; writes the output atomically and prints what was quantized
      --mode static|dynamic|weight-only   (default static; static needs --calib)
      --quantizer xnnpack|x86 [--per-channel] --method minmax|histogram|percentile|entropy
      --weight-only int4|int8 (= --mode weight-only --weight-bits 4|8) [--group-size N] (0: per channel)
      --exclude-nodes a,b  --exclude-op-types Conv,MatMul  --form qdq|qoperator  --limit N
      calibration folder: *.png, *.npy, *.json samples; images: --size HxW | --height H [--max-width W]
        --channels rgb|bgr|gray --layout nchw|nhwc --scale 1/255 --mean 0.5,0.5,0.5 --std 0.5,0.5,0.5
  conformance golden <dir>
      run PyTorch golden cases (observers.json, fake_quant.json, ...) found in <dir>
  conformance onnx <dir>
      run ONNX backend node-test folders found in <dir>
`;

/** Runs the CLI; returns the exit code. Errors print as `error: CODE: message` with the hint. */
export async function main(argv: readonly string[], out: (s: string) => void = (s) => process.stdout.write(s + "\n")): Promise<number> {
  const [cmd, ...rest] = argv;
  try {
    switch (cmd) {
      case "dump": {
        const { values, positionals } = parseArgs({
          args: [...rest], allowPositionals: true,
          options: { format: { type: "string", default: "text" }, full: { type: "boolean", default: false } },
        });
        const file = positionals[0];
        const format = values.format as string;
        if (file === undefined || !["text", "dot", "mermaid"].includes(format)) {
          out(USAGE);
          return 2;
        }
        out(await dump(file, format as DumpFormat, values.full === true));
        return 0;
      }
      case "compare": {
        const text = await compareCommand(rest);
        if (text === undefined) {
          out(USAGE);
          return 2;
        }
        out(text);
        return 0;
      }
      case "quantize": {
        const text = await quantizeCommand(rest);
        if (text === undefined) {
          out(USAGE);
          return 2;
        }
        out(text);
        return 0;
      }
      case "conformance": {
        const [kind, dir] = rest;
        if (kind === "golden" && dir !== undefined) {
          const r = runGolden(dir, out);
          return r.failed > 0 ? 1 : 0;
        }
        if (kind === "onnx" && dir !== undefined) {
          const r = await runOnnxNodeTests(dir, { log: out });
          return r.failed > 0 ? 1 : 0;
        }
        out(USAGE);
        return 2;
      }
      case undefined:
      case "help":
      case "--help":
      case "-h":
        out(USAGE);
        return cmd === undefined ? 2 : 0;
      default:
        out(`unknown command '${cmd}'\n${USAGE}`);
        return 2;
    }
  } catch (e) {
    if (isQforgeError(e)) {
      out(`error: ${e.message}`);
      return 1;
    }
    throw e;
  }
}
