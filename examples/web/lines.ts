/**
 * PP-OCR recognition preprocessing in Node (PaddleOCR's resize_norm_img): the line image resized to
 * height 48 keeping its aspect ratio (bilinear, half-pixel centers like cv2.INTER_LINEAR), scaled to
 * [-1, 1] ((v / 255 - 0.5) / 0.5), three identical channels for a grayscale line, and padded with 0
 * on the right to at least 320 columns.
 */
import { readFileSync } from "node:fs";
import { PNG } from "pngjs";
import { tensor, type Tensor } from "@qforge/ir";

export const REC_HEIGHT = 48;

export function preprocessLine(file: string, minWidth = 320): Tensor {
  const png = PNG.sync.read(readFileSync(file));
  const { width: w, height: h, data } = png;
  const gray = (x: number, y: number): number => {
    const i = 4 * (y * w + x);
    return (data[i]! + data[i + 1]! + data[i + 2]!) / 3;
  };
  const rw = Math.min(Math.ceil((REC_HEIGHT * w) / h), 4 * minWidth);
  const outW = Math.max(minWidth, rw);
  const out = new Float32Array(3 * REC_HEIGHT * outW);
  const sx = w / rw;
  const sy = h / REC_HEIGHT;
  for (let y = 0; y < REC_HEIGHT; y++) {
    const fy = Math.min(Math.max((y + 0.5) * sy - 0.5, 0), h - 1);
    const y0 = Math.floor(fy);
    const y1 = Math.min(y0 + 1, h - 1);
    const wy = fy - y0;
    for (let x = 0; x < rw; x++) {
      const fx = Math.min(Math.max((x + 0.5) * sx - 0.5, 0), w - 1);
      const x0 = Math.floor(fx);
      const x1 = Math.min(x0 + 1, w - 1);
      const wx = fx - x0;
      const v = (1 - wy) * ((1 - wx) * gray(x0, y0) + wx * gray(x1, y0)) + wy * ((1 - wx) * gray(x0, y1) + wx * gray(x1, y1));
      const n = (v / 255 - 0.5) / 0.5;
      for (let c = 0; c < 3; c++) out[(c * REC_HEIGHT + y) * outW + x] = n;
    }
  }
  return tensor("float32", [1, 3, REC_HEIGHT, outW], out);
}
