/**
 * PaddleOCR's CTCLabelDecode (ppocr/postprocess/rec_postprocess.py) and the accuracy measures of
 * the example: greedy CTC decoding of the rec model's [T, classes] probabilities, Levenshtein edit
 * distance, character and exact-line accuracy.
 */
import { readFileSync } from "node:fs";
import { QforgeError, type Tensor } from "@qforge/ir";

/**
 * The class list of CTCLabelDecode with use_space_char=True: "blank" (CTC blank, class 0), then the
 * keys of the character dict file in file order, then " " as the last class.
 */
export function loadCharacters(keysPath: string): string[] {
  const lines = readFileSync(keysPath, "utf8").split("\n").map((l) => l.replace(/\r$/, ""));
  if (lines[lines.length - 1] === "") lines.pop();
  return ["blank", ...lines, " "];
}

/** Per time step, the class with the highest probability (the first one on ties, as numpy.argmax). */
export function argmaxSteps(probs: Tensor): Int32Array {
  const [t, c] = stepsAndClasses(probs);
  const v = probs.data as Float32Array;
  const out = new Int32Array(t);
  for (let i = 0; i < t; i++) {
    let best = 0;
    let bestV = v[i * c]!;
    for (let k = 1; k < c; k++) {
      const x = v[i * c + k]!;
      if (x > bestV) { bestV = x; best = k; }
    }
    out[i] = best;
  }
  return out;
}

function stepsAndClasses(probs: Tensor): [number, number] {
  if (probs.dtype !== "float32" || probs.shape.length !== 3 || probs.shape[0] !== 1) {
    throw new QforgeError("BAD_INPUT", `CTC decoding takes float32 [1, T, classes] probabilities, got ${probs.dtype} [${probs.shape.join(", ")}]`);
  }
  return [probs.shape[1]!, probs.shape[2]!];
}

/**
 * Greedy CTC decoding (CTCLabelDecode.decode with is_remove_duplicate=True): the argmax class per
 * step, consecutive repeats merged, blanks (class 0) dropped.
 */
export function ctcGreedyDecode(steps: ArrayLike<number>, characters: readonly string[]): string {
  let text = "";
  let prev = -1;
  for (let i = 0; i < steps.length; i++) {
    const k = steps[i]!;
    if (k !== prev && k !== 0) {
      const ch = characters[k];
      if (ch === undefined) throw new QforgeError("BAD_INPUT", `class ${k} has no character (the list has ${characters.length})`);
      text += ch;
    }
    prev = k;
  }
  return text;
}

/** Levenshtein distance over Unicode code points (insertions, deletions, substitutions cost 1). */
export function editDistance(a: string, b: string): number {
  const x = [...a];
  const y = [...b];
  let prev = Array.from({ length: y.length + 1 }, (_, j) => j);
  for (let i = 1; i <= x.length; i++) {
    const cur = [i];
    for (let j = 1; j <= y.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (x[i - 1] === y[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[y.length]!;
}

export interface LineResult {
  readonly file: string;
  readonly truth: string;
  readonly predicted: string;
  readonly distance: number;
}

export interface Accuracy {
  readonly lines: number;
  /** 1 - (sum of edit distances) / (sum of ground-truth lengths), over all lines. */
  readonly charAcc: number;
  /** Fraction of lines read exactly. */
  readonly exactLineAcc: number;
}

/** Scores one line: both texts compared after trimming surrounding spaces. */
export function scoreLine(file: string, truth: string, predicted: string): LineResult {
  const t = truth.trim();
  const p = predicted.trim();
  return { file, truth: t, predicted: p, distance: editDistance(p, t) };
}

/** Character accuracy (1 - total edit distance / total length, in code points) and exact-line accuracy. */
export function accuracy(results: readonly LineResult[]): Accuracy {
  const chars = results.reduce((s, r) => s + [...r.truth].length, 0);
  const errors = results.reduce((s, r) => s + r.distance, 0);
  return {
    lines: results.length,
    charAcc: chars === 0 ? 1 : 1 - errors / chars,
    exactLineAcc: results.length === 0 ? 1 : results.filter((r) => r.distance === 0).length / results.length,
  };
}
