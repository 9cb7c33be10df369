/**
 * Calibration data for a model: a folder of samples (PNG images, .npy arrays, .json tensors) read
 * one at a time, and the checks every sample passes before it reaches an observer — the right
 * number of inputs, each with the model input's rank, static dims and dtype, and finite values.
 * Every error names the file.
 */
import { readdirSync, statSync } from "node:fs";
import { extname, join } from "node:path";
import { cast, dtypeInfo, isQforgeError, QforgeError, type Dim, type Graph, type Tensor } from "@qforge/ir";
import { bareMessage } from "./errors.js";
import { preprocessImage, readPng, type ChannelOrder, type ImageLayout, type ImagePreprocessing, type ImageResize } from "./image.js";
import { feedsFor, readSample, type Sample } from "./json.js";
import { readNpyFile } from "./npy.js";

/** Samples read on demand (a folder of files, or samples in memory); `label` names one in errors. */
export interface CalibrationSource {
  readonly size: number;
  label(i: number): string;
  read(i: number): Sample;
}

/** Samples already in memory, labelled `sample 1`, `sample 2`, ... */
export function samplesInMemory(samples: readonly Sample[]): CalibrationSource {
  return { size: samples.length, label: (i) => `sample ${i + 1}`, read: (i) => samples[i]! };
}

/** The file kinds a calibration folder may hold. */
export const SAMPLE_EXTENSIONS: readonly string[] = [".png", ".npy", ".json"];

/** What the user gave for image preprocessing; the rest comes from the model input's shape. */
export interface ImageOptions {
  /** --size HxW */
  readonly size?: readonly [number, number];
  /** --height (keep-aspect resize) */
  readonly height?: number;
  /** --max-width (keep-aspect resize, right-padded to this width) */
  readonly maxWidth?: number;
  readonly mean?: readonly number[];
  readonly std?: readonly number[];
  readonly scale?: number;
  readonly channels?: ChannelOrder;
  readonly layout?: ImageLayout;
}

function staticDim(d: Dim | undefined): number | undefined {
  return typeof d === "number" ? d : undefined;
}

/**
 * Completes image options from the model input `[N, C, H, W]` (or `[N, H, W, C]`): channels from C
 * (1 -> gray, 3 -> rgb), the size from static H and W (or keep-aspect to a static H when W is
 * symbolic), mean 0 / std 1 / scale 1/255 by default. Options that cannot be settled are BAD_CONFIG.
 */
export function resolveImagePreprocessing(inputName: string, shape: readonly Dim[], opts: ImageOptions): ImagePreprocessing {
  const layout = opts.layout ?? "nchw";
  if (shape.length !== 4) {
    throw new QforgeError("BAD_CONFIG", `images feed 4-D inputs, but input '${inputName}' has shape [${shape.join(", ")}]`, {
      hint: "give .npy or .json tensors instead of images",
    });
  }
  const [c, h, w] = layout === "nchw" ? [shape[1], shape[2], shape[3]] : [shape[3], shape[1], shape[2]];
  const C = staticDim(c);
  let channels = opts.channels;
  if (channels === undefined) {
    if (C === 1) channels = "gray";
    else if (C === 3) channels = "rgb";
    else throw new QforgeError("BAD_CONFIG", `cannot tell the channel order of input '${inputName}' (${layout}, channels ${String(c)})`, { hint: "pass --channels rgb|bgr|gray" });
  }
  const want = channels === "gray" ? 1 : 3;
  if (C !== undefined && C !== want) {
    throw new QforgeError("BAD_CONFIG", `--channels ${channels} gives ${want} channel(s), input '${inputName}' takes ${C} (${layout})`, {
      hint: "check --channels and --layout",
    });
  }
  let resize: ImageResize;
  if (opts.size !== undefined) {
    if (opts.height !== undefined || opts.maxWidth !== undefined) throw new QforgeError("BAD_CONFIG", "--size and --height/--max-width exclude each other");
    resize = { kind: "fixed", height: opts.size[0], width: opts.size[1] };
  } else if (opts.height !== undefined) {
    resize = { kind: "keep-aspect", height: opts.height, ...(opts.maxWidth !== undefined ? { maxWidth: opts.maxWidth } : {}) };
  } else if (opts.maxWidth !== undefined) {
    const H = staticDim(h);
    if (H === undefined) throw new QforgeError("BAD_CONFIG", "--max-width needs --height (the model's height is not static)");
    resize = { kind: "keep-aspect", height: H, maxWidth: opts.maxWidth };
  } else {
    const H = staticDim(h);
    const W = staticDim(w);
    if (H !== undefined && W !== undefined) resize = { kind: "fixed", height: H, width: W };
    else if (H !== undefined) resize = { kind: "keep-aspect", height: H };
    else {
      throw new QforgeError("BAD_CONFIG", `input '${inputName}' has no static height: the image size must be given`, {
        hint: "pass --size HxW, or --height H [--max-width W]",
      });
    }
  }
  for (const [k, v] of Object.entries({ height: resize.height, width: resize.kind === "fixed" ? resize.width : resize.maxWidth ?? 1 })) {
    if (!Number.isInteger(v) || v < 1) throw new QforgeError("BAD_CONFIG", `the image ${k} must be a positive integer, got ${v}`);
  }
  const scale = opts.scale ?? 1 / 255;
  if (!Number.isFinite(scale) || scale === 0) throw new QforgeError("BAD_CONFIG", `--scale must be a finite non-zero number, got ${scale}`);
  const mean = opts.mean ?? [0];
  const std = opts.std ?? [1];
  for (const [k, vs] of [["mean", mean], ["std", std]] as const) {
    if (vs.length !== 1 && vs.length !== want) throw new QforgeError("BAD_CONFIG", `--${k} has ${vs.length} values for ${want} channel(s)`);
    if (!vs.every(Number.isFinite)) throw new QforgeError("BAD_CONFIG", `--${k} values must be finite numbers`);
  }
  if (std.some((s) => s === 0)) throw new QforgeError("BAD_CONFIG", "--std must not be 0");
  return { resize, channels, layout, mean, std, scale };
}

/**
 * The sample's tensors as the model's feeds, checked against the model inputs: rank and static dims
 * (symbolic dims take any size), dtype (float64 data is narrowed to a float32 input, as numpy
 * arrays are float64 by default), and finite values. Errors are BAD_DATA naming `label`.
 */
export function conformFeeds(g: Graph, sample: Sample, label: string): Tensor[] {
  let feeds: Tensor[];
  try {
    feeds = feedsFor(g, sample);
  } catch (e) {
    if (!isQforgeError(e)) throw e;
    throw new QforgeError("BAD_DATA", `${label}: ${bareMessage(e)}`, { node: label, hint: e.hint, cause: e });
  }
  return feeds.map((t, k) => {
    const name = g.inputs[k]!;
    const vt = g.values[name]!;
    const shape = vt.shape;
    const fits = t.shape.length === shape.length && shape.every((d, i) => typeof d !== "number" || d === t.shape[i]);
    if (!fits) {
      throw new QforgeError("BAD_DATA", `${label}: input '${name}' has shape [${t.shape.join(", ")}], the model takes [${shape.join(", ")}]`, {
        node: label, hint: "check the image size options (--size, --height, --max-width, --layout) or the saved arrays",
      });
    }
    let x = t;
    if (x.dtype !== vt.dtype) {
      if (x.dtype === "float64" && vt.dtype === "float32") x = cast(x, "float32");
      else throw new QforgeError("BAD_DATA", `${label}: input '${name}' is ${x.dtype}, the model takes ${vt.dtype}`, { node: label });
    }
    if (dtypeInfo(x.dtype).kind === "float" && (x.dtype === "float32" || x.dtype === "float64")) {
      const d = x.data as Float32Array | Float64Array;
      for (let i = 0; i < d.length; i++) {
        const v = d[i]!;
        if (v - v !== 0) {
          throw new QforgeError("BAD_DATA", `${label}: input '${name}' element ${i} is ${v}`, { node: label, hint: "calibration data must be finite (no NaN or Inf)" });
        }
      }
    }
    return x;
  });
}

/**
 * The samples of a folder, in file-name order, all of one kind: the *.png images if there are any
 * (preprocessed with `image`, for one-input models; a labels.json beside them is not a sample), else
 * the *.npy arrays (one per sample, for one-input models), else the *.json tensors (see json.ts).
 * Other files are ignored. `limit` keeps the first N. A folder without samples is BAD_INPUT naming it.
 */
export function openCalibrationDir(dir: string, g: Graph, opts: { image?: ImageOptions; limit?: number } = {}): CalibrationSource {
  let names: string[];
  try {
    if (!statSync(dir).isDirectory()) throw new Error("not a directory");
    const all = readdirSync(dir).sort();
    const kind = SAMPLE_EXTENSIONS.find((ext) => all.some((n) => extname(n).toLowerCase() === ext));
    names = all.filter((n) => extname(n).toLowerCase() === kind);
  } catch (e) {
    throw new QforgeError("IO_ERROR", `cannot read calibration folder '${dir}': ${(e as Error).message}`, { node: dir, cause: e });
  }
  if (names.length === 0) {
    throw new QforgeError("BAD_INPUT", `no calibration samples in '${dir}'`, { node: dir, hint: `put ${SAMPLE_EXTENSIONS.join(", ")} files there` });
  }
  if (opts.limit !== undefined) names = names.slice(0, opts.limit);
  const files = names.map((n) => join(dir, n));
  let image: ImagePreprocessing | undefined;
  const oneInput = (file: string, kind: string): string => {
    if (g.inputs.length !== 1) {
      throw new QforgeError("BAD_DATA", `${file}: a ${kind} feeds one input, the model takes ${g.inputs.length} (${g.inputs.join(", ")})`, {
        node: file, hint: "use .json samples (a list of tensors, or an object keyed by input name)",
      });
    }
    return g.inputs[0]!;
  };
  return {
    size: files.length,
    label: (i) => files[i]!,
    read: (i) => {
      const file = files[i]!;
      switch (extname(file).toLowerCase()) {
        case ".png": {
          const input = oneInput(file, "PNG image");
          image ??= resolveImagePreprocessing(input, g.values[input]!.shape, opts.image ?? {});
          return [preprocessImage(readPng(file), image, file)];
        }
        case ".npy":
          oneInput(file, ".npy array");
          return [readNpyFile(file)];
        default:
          return readSample(file);
      }
    },
  };
}
