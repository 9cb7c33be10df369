/**
 * PaddleOCR's pre-processing of text-line images for the PP-OCR models, on plain typed arrays:
 * PNG decoding (pngjs), cv2-style bilinear resizing, and the normalizations of
 * tools/infer/predict_rec.py (`resize_norm_img`), predict_cls.py and predict_det.py
 * (ppocr/data/imaug/operators.py `NormalizeImage`).
 */
import { readFileSync } from "node:fs";
import { PNG } from "pngjs";
import { tensor, type Tensor } from "@qforge/ir";

/** An 8-bit grayscale image, row-major. */
export interface GrayImage {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8Array;
}

/**
 * Reads a PNG as 8-bit gray. pngjs expands every colour type (8/16-bit gray, gray+alpha) to 8-bit
 * RGBA; gray lines have r = g = b, and colour is turned into ITU-R 601 luma as cv2's BGR2GRAY does.
 */
export function readGrayPng(path: string): GrayImage {
  const png = PNG.sync.read(readFileSync(path));
  const data = new Uint8Array(png.width * png.height);
  for (let i = 0; i < data.length; i++) {
    const r = png.data[4 * i]!;
    const g = png.data[4 * i + 1]!;
    const b = png.data[4 * i + 2]!;
    data[i] = r === g && g === b ? r : Math.round(0.299 * r + 0.587 * g + 0.114 * b);
  }
  return { width: png.width, height: png.height, data };
}

/**
 * Bilinear resampling as cv2.resize(INTER_LINEAR) maps pixels: half-pixel centres
 * (src = (dst + 0.5) * in / out - 0.5), clamped at the edges, no antialiasing. Values stay float
 * (cv2 rounds to uint8 with fixed-point weights; the difference is below one grey level).
 */
export function resizeBilinear(img: GrayImage, width: number, height: number): Float32Array {
  const out = new Float32Array(width * height);
  const sx = img.width / width;
  const sy = img.height / height;
  const px = (y: number, x: number): number => img.data[y * img.width + x]!;
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
      const top = px(y0, x0) * (1 - wx) + px(y0, x1) * wx;
      const bottom = px(y1, x0) * (1 - wx) + px(y1, x1) * wx;
      out[y * width + x] = top * (1 - wy) + bottom * wy;
    }
  }
  return out;
}

/** How a text line becomes the rec model's input. */
export interface RecShape {
  /** PP-OCRv4 rec_image_shape height (48). */
  readonly height: number;
  /** Widest resized line; wider lines are squeezed to it, as resize_norm_img does (default 960). */
  readonly maxWidth: number;
  /** The input width is rounded up to a multiple of this (the model downsamples the width by 4 and 2). */
  readonly multiple: number;
}

export const DEFAULT_REC_SHAPE: RecShape = { height: 48, maxWidth: 960, multiple: 8 };

/** The resized width of a line and the padded input width. */
export function recWidths(img: GrayImage, shape: RecShape = DEFAULT_REC_SHAPE): { resized: number; padded: number } {
  const resized = Math.max(1, Math.min(shape.maxWidth, Math.ceil((shape.height * img.width) / img.height)));
  return { resized, padded: Math.ceil(resized / shape.multiple) * shape.multiple };
}

/**
 * PaddleOCR's resize_norm_img: resize to `height` keeping the aspect ratio (width
 * min(ceil(height * w / h), maxWidth)), x / 255, (x - 0.5) / 0.5, gray replicated to 3 channels,
 * zero-padded on the right (after normalizing, as PaddleOCR pads) to `padTo`. NCHW [1, 3, height, padTo].
 */
export function normalizeLine(img: GrayImage, height: number, resizedWidth: number, padTo: number): Tensor {
  const resized = resizeBilinear(img, resizedWidth, height);
  const plane = height * padTo;
  const out = new Float32Array(3 * plane);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < resizedWidth; x++) {
      const v = (resized[y * resizedWidth + x]! / 255 - 0.5) / 0.5;
      for (let c = 0; c < 3; c++) out[c * plane + y * padTo + x] = v;
    }
  }
  return tensor("float32", [1, 3, height, padTo], out);
}

/**
 * The rec model's input for one line at its own width: PaddleOCR batches lines padded to the widest
 * ratio; one line per run needs no more than its own width, rounded up to `multiple` (8) so that
 * every stride-2 stage divides evenly.
 */
export function recInput(img: GrayImage, shape: RecShape = DEFAULT_REC_SHAPE): Tensor {
  const { resized, padded } = recWidths(img, shape);
  return normalizeLine(img, shape.height, resized, padded);
}

/** The cls model's input: cls_image_shape 3,48,192 (predict_cls.py resize_norm_img, padded to 192). */
export function clsInput(img: GrayImage): Tensor {
  const resized = Math.min(192, Math.ceil((48 * img.width) / img.height));
  return normalizeLine(img, 48, resized, 192);
}

/** ImageNet statistics: PaddleOCR det's NormalizeImage (scale 1/255, then (x - mean) / std per channel). */
const MEAN = [0.485, 0.456, 0.406] as const;
const STD = [0.229, 0.224, 0.225] as const;

/**
 * The det model's input for a line image: placed on a white page of `height` x `width` (multiples of
 * 32, which DB's five stride-2 stages need; DetResizeForTest rounds to 32 the same way) `margin`
 * pixels from the top-left corner, gray replicated to 3 channels, ImageNet-normalized. NCHW.
 */
export function detInput(img: GrayImage, margin = 16): Tensor {
  const height = Math.ceil((img.height + 2 * margin) / 32) * 32;
  const width = Math.ceil((img.width + 2 * margin) / 32) * 32;
  const plane = height * width;
  const out = new Float32Array(3 * plane);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const sy = y - margin;
      const sx = x - margin;
      const inside = sy >= 0 && sy < img.height && sx >= 0 && sx < img.width;
      const v = (inside ? img.data[sy * img.width + sx]! : 255) / 255;
      for (let c = 0; c < 3; c++) out[c * plane + y * width + x] = (v - MEAN[c]!) / STD[c]!;
    }
  }
  return tensor("float32", [1, 3, height, width], out);
}
