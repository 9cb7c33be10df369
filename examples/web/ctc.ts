/**
 * PP-OCR recognition post-processing (PaddleOCR's CTCLabelDecode): per time step the most likely
 * class; repeats collapse, the blank (class 0) separates; class i is line i - 1 of the key file and
 * the last class is the space PaddleOCR appends (use_space_char).
 */
import type { Tensor } from "@qforge/ir";

export function ctcDecode(probs: Tensor, keys: readonly string[]): string {
  const [, steps, classes] = probs.shape as [number, number, number];
  const d = probs.data as Float32Array;
  let out = "";
  let prev = -1;
  for (let t = 0; t < steps; t++) {
    let best = 0;
    for (let c = 1; c < classes; c++) if (d[t * classes + c]! > d[t * classes + best]!) best = c;
    if (best !== 0 && best !== prev) out += best - 1 < keys.length ? keys[best - 1]! : " ";
    prev = best;
  }
  return out;
}
