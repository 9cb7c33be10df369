/// <reference types="@webgpu/types" />
/**
 * How a tensor of each dtype lives in a GPU buffer. 32-bit dtypes are one word per element; 8-bit
 * ones (int8, uint8, bool) are packed four to a little-endian u32 word, byte i of the tensor at bits
 * 8*(i%4) of word i/4, which is exactly the host storage's byte order, so uploads and downloads are
 * plain byte copies. Kernels that write packed bytes give each invocation whole words (no two
 * invocations ever write the same word). Other dtypes (int64, 16-bit, sub-byte, fp8) stay on the
 * host: nodes that would need them on the GPU fall back to the CPU.
 */
import { numel, tensor, type DType, type Tensor } from "@qforge/ir";

export type GpuLayout = "f32" | "i32" | "u32" | "b8";

const LAYOUTS: Partial<Record<DType, GpuLayout>> = {
  float32: "f32",
  int32: "i32",
  uint32: "u32",
  int8: "b8",
  uint8: "b8",
  bool: "b8",
};

/** The GPU layout of a dtype, or undefined when tensors of it stay on the host. */
export function gpuLayout(dtype: DType): GpuLayout | undefined {
  return LAYOUTS[dtype];
}

/** Bytes a tensor of `n` elements takes on the GPU (a multiple of 16, at least 16: bindings must not be empty). */
export function gpuBytes(dtype: DType, n: number): number {
  const layout = gpuLayout(dtype);
  const raw = layout === "b8" ? n : 4 * n;
  return Math.max(16, Math.ceil(raw / 16) * 16);
}

/** The bytes to upload for a host tensor (padded with zeros to `gpuBytes`). */
export function uploadBytes(t: Tensor): Uint8Array<ArrayBuffer> {
  const n = numel(t.shape);
  const out = new Uint8Array(gpuBytes(t.dtype, n));
  out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  return out;
}

/** A host tensor from downloaded bytes (a copy: the mapped range is released afterwards). */
export function tensorFromBytes(dtype: DType, shape: readonly number[], bytes: ArrayBuffer, offset = 0): Tensor {
  const n = numel(shape);
  switch (gpuLayout(dtype)) {
    case "f32": return tensor(dtype, shape, new Float32Array(bytes.slice(offset, offset + 4 * n)));
    case "i32": return tensor(dtype, shape, new Int32Array(bytes.slice(offset, offset + 4 * n)));
    case "u32": return tensor(dtype, shape, new Uint32Array(bytes.slice(offset, offset + 4 * n)));
    case "b8":
      return tensor(dtype, shape, dtype === "int8" ? new Int8Array(bytes.slice(offset, offset + n)) : new Uint8Array(bytes.slice(offset, offset + n)));
    default:
      throw new Error(`dtype ${dtype} has no GPU layout`);
  }
}
