/**
 * WGSL building blocks shared by the kernels: the uniform parameter block, 1-D grids larger than
 * one dispatch dimension, element readers/writers per GPU layout (packed bytes included), the
 * threshold search of exact requantization, and the 4x8-bit dot product with its fallback.
 */
import type { DType } from "@qforge/ir";
import { gpuLayout } from "../gpu/storage.js";

/** Words in every kernel's uniform block (`Params`): 32 vec4<u32>. */
export const PARAM_WORDS = 128;

/** Collects uniform words: shapes, strides and scalars a kernel reads with pu/pi/pf(index). */
export class Params {
  private readonly words: number[] = [];
  private readonly f32 = new Float32Array(1);
  private readonly u32 = new Uint32Array(this.f32.buffer);

  /** Appends an unsigned (or non-negative) integer; returns its index. */
  u(v: number): number {
    if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new Error(`Params.u: ${v} is not a u32`);
    this.words.push(v);
    return this.words.length - 1;
  }

  /** Appends a signed 32-bit integer (two's complement). */
  i(v: number): number {
    if (!Number.isInteger(v) || v < -0x80000000 || v > 0x7fffffff) throw new Error(`Params.i: ${v} is not an i32`);
    this.words.push(v >>> 0);
    return this.words.length - 1;
  }

  /** Appends a float32 (rounded from the double). */
  f(v: number): number {
    this.f32[0] = v;
    this.words.push(this.u32[0]!);
    return this.words.length - 1;
  }

  /** Appends several unsigned integers; returns the index of the first. */
  list(vs: readonly number[]): number {
    const at = this.words.length;
    for (const v of vs) this.u(v);
    return at;
  }

  get length(): number {
    return this.words.length;
  }

  finish(): Uint32Array {
    if (this.words.length > PARAM_WORDS) throw new Error(`a kernel needs ${this.words.length} parameter words, the block has ${PARAM_WORDS}`);
    const out = new Uint32Array(PARAM_WORDS);
    out.set(this.words);
    return out;
  }
}

/** The uniform block declaration at `binding` and its accessors. */
export function paramsDecl(binding: number): string {
  return `struct Params { v: array<vec4<u32>, ${PARAM_WORDS / 4}> }
@group(0) @binding(${binding}) var<uniform> P: Params;
fn pu(i: u32) -> u32 { return P.v[i >> 2u][i & 3u]; }
fn pi(i: u32) -> i32 { return bitcast<i32>(pu(i)); }
fn pf(i: u32) -> f32 { return bitcast<f32>(pu(i)); }
`;
}

/** Invocations per workgroup of the 1-D kernels. */
export const WG1 = 256;

/** Workgroup counts for `count` invocations of WG1 (wrapping into y past the 65535 limit). */
export function grid1d(count: number): [number, number, number] {
  const groups = Math.max(1, Math.ceil(count / WG1));
  if (groups <= 65535) return [groups, 1, 1];
  const y = Math.ceil(groups / 65535);
  return [Math.ceil(groups / y), y, 1];
}

/** Entry point of a 1-D kernel: `idx` is the flat invocation index. */
export function main1d(body: string): string {
  return `@compute @workgroup_size(${WG1})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) lid: u32) {
  let idx = (wid.y * nwg.x + wid.x) * ${WG1}u + lid;
${body}
}
`;
}

/** WGSL element type of a storage binding for a dtype's layout. */
export function storageType(dtype: DType): "f32" | "i32" | "u32" {
  const l = gpuLayout(dtype);
  if (l === "f32") return "f32";
  if (l === "i32") return "i32";
  return "u32";
}

/** A storage binding declaration. */
export function bufferDecl(binding: number, name: string, dtype: DType, write: boolean): string {
  return `@group(0) @binding(${binding}) var<storage, ${write ? "read_write" : "read"}> ${name}: array<${storageType(dtype)}>;\n`;
}

/** A raw storage binding declaration of a given element type. */
export function rawDecl(binding: number, name: string, elem: string, write: boolean): string {
  return `@group(0) @binding(${binding}) var<storage, ${write ? "read_write" : "read"}> ${name}: array<${elem}>;\n`;
}

/**
 * `fn rd_<name>(i: u32) -> T` reading element i of a binding as f32 (float dtypes) or i32 (integers,
 * bool), unpacking bytes for 8-bit dtypes with sign extension for int8.
 */
export function reader(name: string, dtype: DType): string {
  const l = gpuLayout(dtype);
  if (l === "f32") return `fn rd_${name}(i: u32) -> f32 { return ${name}[i]; }\n`;
  if (l === "i32") return `fn rd_${name}(i: u32) -> i32 { return ${name}[i]; }\n`;
  if (l === "u32") return `fn rd_${name}(i: u32) -> i32 { return bitcast<i32>(${name}[i]); }\n`;
  if (dtype === "int8") {
    return `fn rd_${name}(i: u32) -> i32 { return bitcast<i32>(${name}[i >> 2u] << (24u - 8u * (i & 3u))) >> 24u; }\n`;
  }
  return `fn rd_${name}(i: u32) -> i32 { return i32((${name}[i >> 2u] >> (8u * (i & 3u))) & 0xffu); }\n`;
}

/** The WGSL scalar type `reader` returns for a dtype. */
export function valueType(dtype: DType): "f32" | "i32" {
  return gpuLayout(dtype) === "f32" ? "f32" : "i32";
}

/** Whether tensors of a dtype are packed four elements to a word. */
export function isPacked(dtype: DType): boolean {
  return gpuLayout(dtype) === "b8";
}

/**
 * Packs four integer values (already in the dtype's range) into a word, element j at byte j.
 * `v` is a WGSL expression of type vec4<i32>.
 */
export function packBytes(v: string): string {
  return `pack4(${v})`;
}

/** WGSL `pack4(v: vec4<i32>) -> u32` (the low byte of each lane), written out: pack4xI8 needs a language feature. */
export const PACK4 = `fn pack4(v: vec4<i32>) -> u32 {
  let u = bitcast<vec4<u32>>(v) & vec4<u32>(0xffu);
  return u.x | (u.y << 8u) | (u.z << 16u) | (u.w << 24u);
}
`;

/**
 * Count of `table[base .. base+P)` entries that are <= v, for a table sorted ascending and padded
 * with the domain maximum to a power of two P: a branchless binary search (log2(P) + 1 reads).
 * Generated per table binding and comparison type.
 */
export function thresholdSearch(fnName: string, table: string, type: "i32" | "f32", size: number): string {
  if (size < 1 || (size & (size - 1)) !== 0) throw new Error(`threshold tables have a power-of-two size, got ${size}`);
  const load = type === "f32" ? `bitcast<f32>(${table}[base + pos + s - 1u])` : `${table}[base + pos + s - 1u]`;
  const last = type === "f32" ? `bitcast<f32>(${table}[base + pos])` : `${table}[base + pos]`;
  return `fn ${fnName}(base: u32, v: ${type}) -> i32 {
  var pos = 0u;
  var s = ${size}u;
  loop {
    if (s <= 1u) { break; }
    s = s >> 1u;
    if (${load} <= v) { pos = pos + s; }
  }
  return i32(pos + select(0u, 1u, ${last} <= v));
}
`;
}

/**
 * `fn dot4(a: u32, b: u32) -> i32`: the dot product of two words of four signed bytes, with the
 * WGSL builtin when the packed_4x8_integer_dot_product language feature is there and unpacking
 * otherwise (both exact: |sum| < 2^16).
 */
export function dot4Fn(packedDot: boolean): string {
  if (packedDot) return "fn dot4(a: u32, b: u32) -> i32 { return dot4I8Packed(a, b); }\n";
  return `fn dot4(a: u32, b: u32) -> i32 {
  let x = bitcast<vec4<i32>>(vec4<u32>(a << 24u, a << 16u, a << 8u, a)) >> vec4<u32>(24u);
  let y = bitcast<vec4<i32>>(vec4<u32>(b << 24u, b << 16u, b << 8u, b)) >> vec4<u32>(24u);
  return x.x * y.x + x.y * y.y + x.z * y.z + x.w * y.w;
}
`;
}

/** Row-major strides of a shape. */
export function strides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

/**
 * Strides of `inShape` broadcast to `outShape` (numpy rules: 0 along broadcast dims), aligned to the
 * output's rank.
 */
export function broadcastStrides(inShape: readonly number[], outShape: readonly number[]): number[] {
  const r = outShape.length;
  const s = strides(inShape);
  const out = new Array<number>(r).fill(0);
  for (let i = 0; i < inShape.length; i++) {
    const od = r - inShape.length + i;
    out[od] = inShape[i] === 1 ? 0 : s[i]!;
  }
  return out;
}

/**
 * Merges adjacent dims that every stride list walks contiguously (stride[d] = stride[d+1] *
 * shape[d+1], broadcast zeros included) and drops size-1 dims, so index walks do fewer div/mods.
 */
export function coalesceDims(shape: readonly number[], strideLists: readonly (readonly number[])[]): { shape: number[]; strides: number[][] } {
  const dims: { size: number; st: number[] }[] = [];
  shape.forEach((size, d) => {
    if (size !== 1) dims.push({ size, st: strideLists.map((s) => s[d]!) });
  });
  const out: { size: number; st: number[] }[] = [];
  for (const dim of dims) {
    const last = out[out.length - 1];
    if (last !== undefined && last.st.every((s, i) => s === dim.st[i]! * dim.size)) {
      last.size *= dim.size;
      last.st = dim.st;
    } else {
      out.push({ ...dim, st: [...dim.st] });
    }
  }
  if (out.length === 0) out.push({ size: 1, st: strideLists.map(() => 0) });
  return { shape: out.map((d) => d.size), strides: strideLists.map((_, i) => out.map((d) => d.st[i]!)) };
}

/** `isnan_(v)` by the bits: compilers may fold `v != v` to false (they assume no NaN). */
export const ISNAN = "fn isnan_(v: f32) -> bool { return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u; }\n";
