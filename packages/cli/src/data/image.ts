/**
 * PNG calibration images -> model input tensors, the preprocessing of the usual vision pipelines
 * (torchvision's ToTensor + Normalize, PaddleOCR's `resize_norm_img`):
 *
 *   decode (pngjs: any PNG colour type -> 8-bit RGBA; alpha is dropped as cv2.imread(IMREAD_COLOR) does)
 *   pick channels: rgb, bgr (cv2's order) or gray (ITU-R BT.601 luma 0.299 R + 0.587 G + 0.114 B,
 *     cv2.cvtColor RGB2GRAY)
 *   resize: bilinear with half-pixel centres (cv2.resize INTER_LINEAR, ONNX Resize linear half_pixel),
 *     to a fixed H x W, or keep-aspect to height H and width min(maxWidth, ceil(H * w / h))
 *   normalize: y = (v * scale - mean[c]) / std[c]  (v in 0..255; scale 1/255 by default)
 *   pad: keep-aspect images narrower than maxWidth are padded on the right with 0 after normalization
 *     (PaddleOCR's padding_im), so every sample has the model's width
 *   layout: [1, C, H, W] (nchw) or [1, H, W, C] (nhwc), float32
 */
import { readFileSync } from "node:fs";
import { PNG } from "pngjs";
import { QforgeError, tensor, type Tensor } from "@qforge/ir";

/** A decoded 8-bit image, RGBA interleaved row-major. */
export interface RgbaImage {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8Array;
}

export type ChannelOrder = "rgb" | "bgr" | "gray";
export type ImageLayout = "nchw" | "nhwc";

/** How images are resized: to a fixed size, or to a height keeping the aspect ratio. */
export type ImageResize =
  | { readonly kind: "fixed"; readonly height: number; readonly width: number }
  | { readonly kind: "keep-aspect"; readonly height: number; readonly maxWidth?: number };

export interface ImagePreprocessing {
  readonly resize: ImageResize;
  readonly channels: ChannelOrder;
  readonly layout: ImageLayout;
  /** Per-channel mean after scaling (one value, or one per channel). */
  readonly mean: readonly number[];
  /** Per-channel standard deviation after scaling (one value, or one per channel). */
  readonly std: readonly number[];
  /** Multiplies the 0..255 values before mean/std (default 1/255). */
  readonly scale: number;
}

/** Decodes PNG bytes; a file that is not a readable PNG is BAD_DATA naming it. */
export function decodePng(bytes: Uint8Array, file = "<png>"): RgbaImage {
  try {
    const png = PNG.sync.read(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    return { width: png.width, height: png.height, data: new Uint8Array(png.data.buffer, png.data.byteOffset, png.data.byteLength) };
  } catch (e) {
    throw new QforgeError("BAD_DATA", `${file}: cannot decode the PNG image: ${(e as Error).message}`, { node: file });
  }
}

/** Reads and decodes a PNG file. */
export function readPng(file: string): RgbaImage {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    throw new QforgeError("IO_ERROR", `cannot read '${file}': ${(e as Error).message}`, { node: file, cause: e });
  }
  return decodePng(bytes, file);
}

/** Encodes 8-bit RGBA pixels as PNG (for tests and for writing preprocessed previews). */
export function encodePng(img: RgbaImage): Uint8Array {
  const png = new PNG({ width: img.width, height: img.height });
  png.data = Buffer.from(img.data.buffer, img.data.byteOffset, img.data.byteLength);
  return PNG.sync.write(png);
}

/** The output height and width for an image of `h x w` (and the width before padding). */
export function resizedSize(resize: ImageResize, h: number, w: number): { height: number; width: number; contentWidth: number } {
  if (resize.kind === "fixed") return { height: resize.height, width: resize.width, contentWidth: resize.width };
  const natural = Math.max(1, Math.ceil((resize.height * w) / h));
  const contentWidth = resize.maxWidth === undefined ? natural : Math.min(resize.maxWidth, natural);
  return { height: resize.height, width: resize.maxWidth ?? contentWidth, contentWidth };
}

/** One channel of the image as floats 0..255 in the chosen order (gray: BT.601 luma). */
function channelPlanes(img: RgbaImage, channels: ChannelOrder): Float64Array[] {
  const n = img.width * img.height;
  const px = img.data;
  const plane = (c: number): Float64Array => {
    const out = new Float64Array(n);
    for (let i = 0; i < n; i++) out[i] = px[4 * i + c]!;
    return out;
  };
  if (channels === "rgb") return [plane(0), plane(1), plane(2)];
  if (channels === "bgr") return [plane(2), plane(1), plane(0)];
  const gray = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const r = px[4 * i]!;
    const g = px[4 * i + 1]!;
    const b = px[4 * i + 2]!;
    // A gray PNG decodes to r = g = b: keep its value exactly instead of re-weighting it.
    gray[i] = r === g && g === b ? r : 0.299 * r + 0.587 * g + 0.114 * b;
  }
  return [gray];
}

/**
 * Bilinear resize of one plane with half-pixel centres: the source coordinate of output pixel x is
 * (x + 0.5) * inW / outW - 0.5, clamped to the image (cv2.resize INTER_LINEAR without its
 * fixed-point rounding).
 */
function resizePlane(src: Float64Array, inH: number, inW: number, outH: number, outW: number): Float64Array {
  if (inH === outH && inW === outW) return src;
  const out = new Float64Array(outH * outW);
  const axis = (outSize: number, inSize: number): { i0: Int32Array; i1: Int32Array; f: Float64Array } => {
    const i0 = new Int32Array(outSize);
    const i1 = new Int32Array(outSize);
    const f = new Float64Array(outSize);
    const ratio = inSize / outSize;
    for (let o = 0; o < outSize; o++) {
      let s = (o + 0.5) * ratio - 0.5;
      if (s < 0) s = 0;
      let lo = Math.floor(s);
      if (lo > inSize - 1) lo = inSize - 1;
      i0[o] = lo;
      i1[o] = Math.min(lo + 1, inSize - 1);
      f[o] = Math.min(s - lo, 1);
    }
    return { i0, i1, f };
  };
  const ys = axis(outH, inH);
  const xs = axis(outW, inW);
  for (let y = 0; y < outH; y++) {
    const r0 = ys.i0[y]! * inW;
    const r1 = ys.i1[y]! * inW;
    const fy = ys.f[y]!;
    for (let x = 0; x < outW; x++) {
      const c0 = xs.i0[x]!;
      const c1 = xs.i1[x]!;
      const fx = xs.f[x]!;
      const top = src[r0 + c0]! * (1 - fx) + src[r0 + c1]! * fx;
      const bottom = src[r1 + c0]! * (1 - fx) + src[r1 + c1]! * fx;
      out[y * outW + x] = top * (1 - fy) + bottom * fy;
    }
  }
  return out;
}

function perChannel(values: readonly number[], c: number, channels: number, what: string, file: string): number {
  if (values.length !== 1 && values.length !== channels) {
    throw new QforgeError("BAD_CONFIG", `--${what} has ${values.length} values for ${channels} channel(s)`, { node: file, hint: `give one value or ${channels}` });
  }
  return values.length === 1 ? values[0]! : values[c]!;
}

/** Turns a decoded image into a float32 [1, C, H, W] / [1, H, W, C] tensor (see the module comment). */
export function preprocessImage(img: RgbaImage, p: ImagePreprocessing, file = "<image>"): Tensor {
  if (img.width < 1 || img.height < 1) throw new QforgeError("BAD_DATA", `${file}: the image is empty (${img.width}x${img.height})`, { node: file });
  const { height: H, width: W, contentWidth } = resizedSize(p.resize, img.height, img.width);
  const planes = channelPlanes(img, p.channels).map((pl) => resizePlane(pl, img.height, img.width, H, contentWidth));
  const C = planes.length;
  const out = new Float32Array(C * H * W); // padding columns stay 0
  for (let c = 0; c < C; c++) {
    const mean = perChannel(p.mean, c, C, "mean", file);
    const std = perChannel(p.std, c, C, "std", file);
    if (std === 0) throw new QforgeError("BAD_CONFIG", "--std must not be 0", { node: file });
    const plane = planes[c]!;
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < contentWidth; x++) {
        const v = (plane[y * contentWidth + x]! * p.scale - mean) / std;
        out[p.layout === "nchw" ? (c * H + y) * W + x : (y * W + x) * C + c] = v;
      }
    }
  }
  return tensor("float32", p.layout === "nchw" ? [1, C, H, W] : [1, H, W, C], out);
}
