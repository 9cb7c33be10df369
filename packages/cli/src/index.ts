export { main } from "./main.js";
export { runGolden, type FamilyReport } from "./conformance/golden.js";
export { runOnnxNodeTests } from "./conformance/onnx.js";
export { dump, loadGraph } from "./commands/dump.js";
export * from "./quantize/index.js";
export { quantizeCommand, parseQuantizeArgs, runQuantize, loadProgram, type QuantizeCommandArgs, type QuantizeCommandIO } from "./commands/quantize.js";
export { readNpy, readNpyFile, encodeNpy } from "./data/npy.js";
export { readSample, readSampleDir, feedsFor, type Sample } from "./data/json.js";
export {
  decodePng, readPng, encodePng, preprocessImage, resizedSize,
  type RgbaImage, type ChannelOrder, type ImageLayout, type ImageResize, type ImagePreprocessing,
} from "./data/image.js";
export {
  openCalibrationDir, conformFeeds, resolveImagePreprocessing, samplesInMemory, SAMPLE_EXTENSIONS,
  type CalibrationSource, type ImageOptions,
} from "./data/samples.js";
export { progressBar, progressLine, formatDuration, type Progress, type ProgressStream, type ProgressOptions } from "./progress.js";
