/// <reference types="@webgpu/types" />
/**
 * A pool of storage buffers by size class (powers of two from 256 bytes), so that the intermediate
 * values of every plan, and of every session on the device, reuse freed buffers instead of creating
 * new ones. A buffer goes back to the pool when the plan that held it is dropped.
 */

const USAGE = 0x80 /* STORAGE */ | 0x4 /* COPY_SRC */ | 0x8; /* COPY_DST */

export interface PoolStats {
  /** Buffers created so far. */
  readonly created: number;
  /** Acquisitions served from the free lists. */
  readonly reused: number;
  /** Bytes held by buffers created and not destroyed. */
  readonly bytes: number;
  /** Buffers currently free in the pool. */
  readonly free: number;
}

export class BufferPool {
  private readonly freeLists = new Map<number, GPUBuffer[]>();
  private readonly sizeOf = new WeakMap<GPUBuffer, number>();
  private created = 0;
  private reused = 0;
  private bytes = 0;

  constructor(private readonly device: GPUDevice) {}

  /** The size class a request of `bytes` gets. */
  static sizeClass(bytes: number): number {
    let s = 256;
    while (s < bytes) s *= 2;
    return s;
  }

  acquire(bytes: number, label?: string): GPUBuffer {
    const size = BufferPool.sizeClass(bytes);
    const list = this.freeLists.get(size);
    const buf = list?.pop();
    if (buf !== undefined) {
      this.reused++;
      return buf;
    }
    const b = this.device.createBuffer({ size, usage: USAGE, label });
    this.sizeOf.set(b, size);
    this.created++;
    this.bytes += size;
    return b;
  }

  release(buf: GPUBuffer): void {
    const size = this.sizeOf.get(buf);
    if (size === undefined) throw new Error("BufferPool.release: the buffer does not come from this pool");
    let list = this.freeLists.get(size);
    if (list === undefined) {
      list = [];
      this.freeLists.set(size, list);
    }
    list.push(buf);
  }

  stats(): PoolStats {
    let free = 0;
    for (const l of this.freeLists.values()) free += l.length;
    return { created: this.created, reused: this.reused, bytes: this.bytes, free };
  }

  /** Destroys the free buffers (buffers still held stay valid). */
  trim(): void {
    for (const l of this.freeLists.values()) {
      for (const b of l) {
        this.bytes -= this.sizeOf.get(b) ?? 0;
        b.destroy();
      }
      l.length = 0;
    }
  }
}
