/**
 * The gateway process without Node's TypeScript stripper (issue 11). Node 24 runs the .ts sources
 * by stripping their types with amaro, a WebAssembly build of swc that, once loaded, stays in the
 * process: ~17 MB of RSS (its WebAssembly memory, its 3.8 MB JavaScript source, its code),
 * measured on the development VM — a tenth of the gateway's memory at a ward's load.
 *
 * So `gateway start`, before it re-executes itself with the memory tuning (gateway/cli.ts), strips
 * the gateway's modules (bin/, gateway/, shared/) once with Node's own `stripTypeScriptTypes` into
 * a private temporary directory (mkdtemp, 0700), and the re-executed process loads them through a
 * module hook (js-cache-hook.mjs, `--import`) instead. Stripping replaces types with blanks, so
 * line and column numbers in stack traces stay those of the .ts files. A file the hook does not
 * find is loaded the usual way. The directory is removed when the process exits, and leftovers of
 * killed processes at the next start.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { stripTypeScriptTypes } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The directory the re-executed process reads the stripped modules from. */
export const JS_CACHE_ENV = 'CARELEDGER_GATEWAY_JS_CACHE'
/** Preloaded with `--import` by the re-executed process. */
export const JS_CACHE_HOOK = fileURLToPath(new URL('./js-cache-hook.mjs', import.meta.url))
const ROOT = fileURLToPath(new URL('../', import.meta.url))
const DIRS = ['bin', 'gateway', 'shared']
const PREFIX = 'careledger-gw-js-'

function* tsFiles(dir: string): Generator<string> {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) yield* tsFiles(p)
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) yield p
  }
}

/** Remove the directories of gateway processes that no longer run (killed before their exit handler). */
function removeLeftovers(): void {
  for (const name of readdirSync(tmpdir())) {
    if (!name.startsWith(PREFIX)) continue
    const pid = Number(name.slice(PREFIX.length).split('-')[0])
    let alive = true
    try {
      process.kill(pid, 0)
    } catch (e) {
      alive = (e as NodeJS.ErrnoException).code === 'EPERM'
    }
    if (!alive || pid === process.pid) rmSync(join(tmpdir(), name), { recursive: true, force: true })
  }
}

/** Strip the gateway's modules into a new private directory; null (and the usual loading) if that fails. */
export function prepareJsCache(): string | null {
  try {
    removeLeftovers()
    const dir = mkdtempSync(join(tmpdir(), `${PREFIX}${process.pid}-`))
    for (const top of DIRS) {
      for (const file of tsFiles(join(ROOT, top))) {
        let js: string
        try {
          js = stripTypeScriptTypes(readFileSync(file, 'utf8'), { mode: 'strip' })
        } catch {
          continue // left to Node's own loading
        }
        const out = join(dir, `${relative(ROOT, file)}.js`)
        mkdirSync(dirname(out), { recursive: true, mode: 0o700 })
        writeFileSync(out, js, { mode: 0o600 })
      }
    }
    return dir
  } catch {
    return null
  }
}

/** In the re-executed process: remove the directory when the process exits. */
export function removeJsCacheAtExit(env: NodeJS.ProcessEnv = process.env): void {
  const dir = env[JS_CACHE_ENV]
  if (!dir || !statSync(dir, { throwIfNoEntry: false })?.isDirectory()) return
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }))
}
