/**
 * Node's on-disk compile cache for the CLI and the threads it starts (node:module
 * enableCompileCache, Node ≥ 22.1; it also keeps the result of stripping TypeScript types). A
 * process otherwise parses and strips every module again: ~0.4 s of CPU for `careledger chain
 * verify` and ~0.35 s more for each of its worker threads (bench:cloud §3), which is most of a short
 * verification's cost. Code only, never data: the verification itself still recomputes everything.
 *
 * The cache lives in a directory of the user's own (CARELEDGER_COMPILE_CACHE, else
 * $XDG_CACHE_HOME/careledger/node-compile-cache, else ~/.cache/careledger/node-compile-cache),
 * created 0700: not the shared OS temp directory Node picks by default, where another local user
 * could plant entries. CARELEDGER_COMPILE_CACHE=off turns it off. This module imports only node:
 * built-ins: it must run before the rest of the CLI is compiled.
 */
import module from 'node:module'
import os from 'node:os'
import { join } from 'node:path'
import { mkdirSync } from 'node:fs'

export const COMPILE_CACHE_ENV = 'CARELEDGER_COMPILE_CACHE'

/** The cache directory the CLI would use, or null when turned off. */
export function compileCacheDir(env: NodeJS.ProcessEnv = process.env): string | null {
  const given = env[COMPILE_CACHE_ENV]
  if (given === 'off' || given === '0') return null
  if (given) return given
  const base = env.XDG_CACHE_HOME || join(os.homedir(), '.cache')
  return join(base, 'careledger', 'node-compile-cache')
}

/**
 * Enable the cache for this process and, through NODE_COMPILE_CACHE, for the worker threads and
 * child processes it starts. Never fails the command: an unwritable directory just means no cache.
 */
export function enableCompileCache(): void {
  if (process.env.NODE_COMPILE_CACHE) return // already chosen by whoever started us
  const dir = compileCacheDir()
  if (dir === null || typeof module.enableCompileCache !== 'function') return
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 })
    const result = module.enableCompileCache(dir)
    if (result.directory) process.env.NODE_COMPILE_CACHE = result.directory
  } catch {
    // no cache: slower start, same results
  }
}
