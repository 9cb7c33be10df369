import { describe, expect, it, onTestFinished } from "vitest";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { toNumbers } from "@qforge/ir";
import {
  decodePng, encodePng, preprocessImage, readPng, resolveImagePreprocessing, resizedSize, type ImagePreprocessing, type RgbaImage,
} from "@qforge/cli";

const shared = fileURLToPath(new URL("../../../../shared/", import.meta.url));

/** Two pixels: (R, G, B) = (255, 0, 51) and (0, 102, 255). */
const tiny: RgbaImage = { width: 2, height: 1, data: new Uint8Array([255, 0, 51, 255, 0, 102, 255, 255]) };

function prep(p: Partial<ImagePreprocessing>): ImagePreprocessing {
  return { resize: { kind: "fixed", height: 1, width: 2 }, channels: "rgb", layout: "nchw", mean: [0], std: [1], scale: 1 / 255, ...p };
}

function close(actual: readonly number[], expected: readonly number[]): void {
  expect(actual.length).toBe(expected.length);
  actual.forEach((v, i) => expect(v).toBeCloseTo(expected[i]!, 5));
}

describe("image preprocessing", () => {
  it("bgr + nhwc + per-channel mean/std: hand-computed values", () => {
    // Channels in output order B, G, R; y = (v / 255 - mean[c]) / std[c].
    //   pixel 0: B 51/255 = 0.2 -> (0.2 - 0.5) / 0.5 = -0.6; G 0 -> (0 - 0.4) / 0.25 = -1.6; R 1 -> (1 - 0.3) / 0.1 = 7
    //   pixel 1: B 1 -> 1; G 0.4 -> 0; R 0 -> -3
    const t = preprocessImage(tiny, prep({ channels: "bgr", layout: "nhwc", mean: [0.5, 0.4, 0.3], std: [0.5, 0.25, 0.1] }));
    expect(t.shape).toEqual([1, 1, 2, 3]);
    close(toNumbers(t), [-0.6, -1.6, 7, 1, 0, -3]);
  });

  it("rgb + nchw puts each channel in its own plane", () => {
    const t = preprocessImage(tiny, prep({ mean: [0.5], std: [0.5] }));
    expect(t.shape).toEqual([1, 3, 1, 2]);
    // (v / 255 - 0.5) / 0.5 = 2 v / 255 - 1
    close(toNumbers(t), [1, -1, -1, 2 * 102 / 255 - 1, 2 * 51 / 255 - 1, 1]);
  });

  it("gray is BT.601 luma, and scale replaces 1/255", () => {
    const t = preprocessImage(tiny, prep({ channels: "gray", scale: 1 }));
    expect(t.shape).toEqual([1, 1, 1, 2]);
    close(toNumbers(t), [0.299 * 255 + 0.114 * 51, 0.587 * 102 + 0.114 * 255]);
  });

  it("bilinear resize with half-pixel centres (cv2 INTER_LINEAR values)", () => {
    // A 2x1 gray image [0, 100] upscaled to 4 wide: source x = (o + 0.5) / 2 - 0.5 -> 0 (clamped), 0.25, 0.75, 1 (clamped).
    const img: RgbaImage = { width: 2, height: 1, data: new Uint8Array([0, 0, 0, 255, 100, 100, 100, 255]) };
    const t = preprocessImage(img, prep({ channels: "gray", scale: 1, resize: { kind: "fixed", height: 1, width: 4 } }));
    close(toNumbers(t), [0, 25, 75, 100]);
    // Downscale by 2: each output pixel is the mean of its two sources.
    const wide: RgbaImage = { width: 4, height: 1, data: new Uint8Array([0, 0, 0, 255, 10, 10, 10, 255, 20, 20, 20, 255, 40, 40, 40, 255]) };
    close(toNumbers(preprocessImage(wide, prep({ channels: "gray", scale: 1, resize: { kind: "fixed", height: 1, width: 2 } }))), [5, 30]);
  });

  it("keep-aspect resize pads on the right with 0 after normalization", () => {
    expect(resizedSize({ kind: "keep-aspect", height: 48, maxWidth: 320 }, 41, 472)).toEqual({ height: 48, width: 320, contentWidth: 320 });
    expect(resizedSize({ kind: "keep-aspect", height: 48, maxWidth: 320 }, 48, 100)).toEqual({ height: 48, width: 320, contentWidth: 100 });
    expect(resizedSize({ kind: "keep-aspect", height: 32 }, 64, 50)).toEqual({ height: 32, width: 25, contentWidth: 25 });
    // 2x4 image -> height 1: natural width ceil(1 * 4 / 2) = 2, padded to 3.
    const img: RgbaImage = { width: 4, height: 2, data: new Uint8Array(32).fill(255) };
    const t = preprocessImage(img, prep({ channels: "gray", resize: { kind: "keep-aspect", height: 1, maxWidth: 3 }, mean: [0.5], std: [0.5] }));
    expect(t.shape).toEqual([1, 1, 1, 3]);
    close(toNumbers(t), [1, 1, 0]);
  });

  it("PNG encode/decode round-trips, and a real OCR line decodes (gray PNG -> r = g = b)", () => {
    expect(decodePng(encodePng(tiny)).data).toEqual(tiny.data);
    const line = readPng(join(shared, "data", "ocr-lines", "000.png"));
    expect([line.width, line.height]).toEqual([472, 41]);
    for (let i = 0; i < 50; i++) expect(line.data[4 * i]).toBe(line.data[4 * i + 1]);
    const p = resolveImagePreprocessing("x", [1, 3, 48, "w"], { maxWidth: 320, mean: [0.5], std: [0.5] });
    expect(p.resize).toEqual({ kind: "keep-aspect", height: 48, maxWidth: 320 });
    const t = preprocessImage(line, p);
    expect(t.shape).toEqual([1, 3, 48, 320]);
    const v = toNumbers(t);
    expect(Math.min(...v)).toBeGreaterThanOrEqual(-1);
    expect(Math.max(...v)).toBeLessThanOrEqual(1);
  });

  it("a file that is not a PNG is BAD_DATA naming it", () => {
    const dir = mkdtempSync(join(tmpdir(), "qforge-img-"));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, "broken.png");
    writeFileSync(file, "not a png at all");
    expect(() => readPng(file)).toThrow(/BAD_DATA: .*broken\.png: cannot decode the PNG image/);
  });

  it("settles options from the model input shape, and refuses contradictions", () => {
    expect(resolveImagePreprocessing("x", ["N", 1, 28, 28], {})).toMatchObject({ channels: "gray", resize: { kind: "fixed", height: 28, width: 28 } });
    expect(resolveImagePreprocessing("x", [1, 32, 32, 3], { layout: "nhwc" })).toMatchObject({ channels: "rgb", layout: "nhwc" });
    expect(() => resolveImagePreprocessing("x", [1, 3, "h", "w"], {})).toThrow(/BAD_CONFIG: .*no static height/);
    expect(() => resolveImagePreprocessing("x", [1, 3, 8, 8], { channels: "gray" })).toThrow(/BAD_CONFIG: --channels gray gives 1 channel/);
    expect(() => resolveImagePreprocessing("x", [1, 3, 8, 8], { mean: [1, 2] })).toThrow(/BAD_CONFIG: --mean has 2 values/);
    expect(() => resolveImagePreprocessing("x", [1, 3, 8, 8], { std: [0] })).toThrow(/BAD_CONFIG: --std must not be 0/);
    expect(() => resolveImagePreprocessing("x", [1, 8], {})).toThrow(/BAD_CONFIG: images feed 4-D inputs/);
  });
});
