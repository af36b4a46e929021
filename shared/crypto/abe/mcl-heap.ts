/**
 * Scratch memory for the mcl backend in mcl-wasm's WebAssembly heap, and mcl's C API as the
 * Emscripten module exports it (include/mcl/bn.h of herumi/mcl).
 */
/** Byte sizes of mcl's internal representations (Montgomery form, Jacobian points) on BLS12-381. */
export const FR = 32
export const FP = 48
export const G1_WORDS = (3 * FP) / 4
export const G2_WORDS = (6 * FP) / 4
export const GT_WORDS = (12 * FP) / 4
export const GT_BYTES = 12 * FP

/** The part of the Emscripten module we use: mcl's exported C functions and the heap. */
export interface Module {
  wasmMemory: { buffer: ArrayBuffer }
  _malloc(bytes: number): number
  _free(ptr: number): void
  [fn: `_mclBn${string}`]: (...args: number[]) => number
}

/** Scratch memory in the WebAssembly heap: fixed slots, plus a vector area grown on demand. */
export class Heap {
  readonly mod: Module
  private view32: Uint32Array
  private view8: Uint8Array
  /** Slots of 576 bytes (a GT element) for operands and results. */
  readonly slot: number[]
  private vec = 0
  private vecBytes = 0
  constructor(mod: Module) {
    this.mod = mod
    this.view32 = new Uint32Array(mod.wasmMemory.buffer)
    this.view8 = new Uint8Array(mod.wasmMemory.buffer)
    const base = mod._malloc(8 * GT_BYTES)
    this.slot = Array.from({ length: 8 }, (_, i) => base + i * GT_BYTES)
  }
  /** Views are rebuilt when the heap grew (growing detaches the old buffer). */
  u32(): Uint32Array {
    if (this.view32.buffer !== this.mod.wasmMemory.buffer) this.refresh()
    return this.view32
  }
  u8(): Uint8Array {
    if (this.view8.buffer !== this.mod.wasmMemory.buffer) this.refresh()
    return this.view8
  }
  private refresh(): void {
    this.view32 = new Uint32Array(this.mod.wasmMemory.buffer)
    this.view8 = new Uint8Array(this.mod.wasmMemory.buffer)
  }
  put(ptr: number, words: Uint32Array): number {
    this.u32().set(words, ptr >>> 2)
    return ptr
  }
  get(ptr: number, words: number): Uint32Array {
    const start = ptr >>> 2
    return this.u32().slice(start, start + words)
  }
  putBytes(ptr: number, bytes: Uint8Array): number {
    this.u8().set(bytes, ptr)
    return ptr
  }
  getBytes(ptr: number, n: number): Uint8Array {
    return this.u8().slice(ptr, ptr + n)
  }
  /** A scratch area of at least `bytes` (valid until the next call). */
  vector(bytes: number): number {
    if (bytes > this.vecBytes) {
      if (this.vec) this.mod._free(this.vec)
      this.vecBytes = Math.max(bytes, 2 * this.vecBytes, 16 * 1024)
      this.vec = this.mod._malloc(this.vecBytes)
      if (!this.vec) throw new Error('mcl: out of WebAssembly memory')
    }
    return this.vec
  }
}

