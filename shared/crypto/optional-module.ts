/**
 * An optional native or WebAssembly fast path (sodium-native, tiny-secp256k1): the module where it
 * loads in Node, else null. The require is built at run time so browser bundlers leave it alone
 * (there is no `process` there), and `disableWith=1` in the environment turns it off (benchmarks
 * compare, and a platform whose prebuilt binary misbehaves can opt out).
 */
export function loadOptionalModule<T>(specifier: string, disableWith: string, usable: (m: Partial<T>) => boolean): T | null {
  try {
    const proc = (globalThis as { process?: { env?: Record<string, string | undefined>; getBuiltinModule?: (id: string) => unknown } }).process
    if (!proc?.getBuiltinModule || proc.env?.[disableWith] === '1') return null
    const { createRequire } = proc.getBuiltinModule('node:module') as typeof import('node:module')
    const m = createRequire(import.meta.url)(specifier) as Partial<T>
    return usable(m) ? (m as T) : null
  } catch {
    return null
  }
}
