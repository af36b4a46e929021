/**
 * The gateway process without Node's TypeScript stripper (issue 11). Node 24 runs the .ts sources
 * by stripping their types with amaro, a WebAssembly build of swc that, once loaded, stays in the
 * process: ~17 MB of RSS (its WebAssembly memory, its 3.8 MB JavaScript source, its code),
 * measured on the development VM — a tenth of the gateway's memory at a ward's load.
 *
 * So `gateway start`, before it re-executes itself with the memory tuning (gateway/cli.ts), strips
 * the gateway's modules (bin/, gateway/, shared/) with Node's own `stripTypeScriptTypes` into a
 * private temporary directory (0700, one per user and source tree, reused while the sources do not
 * change: prepareJsCache), and
 * the re-executed process loads them through a module hook (js-cache-hook.mjs, `--import`)
 * instead. Stripping replaces types with blanks, so line and column numbers in stack traces stay
 * those of the .ts files. A file the hook does not find is loaded the usual way.
 */
import { createHash } from 'node:crypto'
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
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
const COMPLETE = '.complete'

function* tsFiles(dir: string): Generator<string> {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) yield* tsFiles(p)
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) yield p
  }
}

/** A directory only we can write: a real directory (not a link), ours, no access for group or others. */
function ours(dir: string): boolean {
  const st = lstatSync(dir, { throwIfNoEntry: false })
  return !!st && st.isDirectory() && st.uid === process.getuid?.() && (st.mode & 0o077) === 0 && existsSync(join(dir, COMPLETE))
}

/**
 * The stripped modules of this source tree: `<tmp>/careledger-gw-js-<uid>-<stamp>`, the stamp a
 * hash of Node's version and every module's path, size and modification time — so a restart
 * reuses them (a stat per file) and an update strips again. Built in a private mkdtemp directory
 * and renamed into place; used only if it is ours and mode 0700 (a name someone else took is
 * never read). null: load the usual way.
 */
export function prepareJsCache(): string | null {
  try {
    const files = DIRS.flatMap((top) => [...tsFiles(join(ROOT, top))]).sort()
    const h = createHash('sha256').update(process.version)
    for (const f of files) {
      const st = statSync(f)
      h.update(`\0${relative(ROOT, f)}\0${st.size}\0${st.mtimeMs}`)
    }
    // One name per user and source tree: trees side by side (several checkouts) keep their own.
    const prefix = `${PREFIX}${process.getuid?.() ?? 0}-${createHash('sha256').update(ROOT).digest('hex').slice(0, 8)}-`
    const dir = join(tmpdir(), `${prefix}${h.digest('hex').slice(0, 24)}`)
    if (ours(dir)) return dir
    const build = mkdtempSync(join(tmpdir(), `${PREFIX}build-`))
    for (const file of files) {
      let js: string
      try {
        js = stripTypeScriptTypes(readFileSync(file, 'utf8'), { mode: 'strip' })
      } catch {
        continue // left to Node's own loading
      }
      const out = join(build, `${relative(ROOT, file)}.js`)
      mkdirSync(dirname(out), { recursive: true, mode: 0o700 })
      writeFileSync(out, js, { mode: 0o600 })
    }
    writeFileSync(join(build, COMPLETE), '', { mode: 0o600 })
    try {
      renameSync(build, dir)
    } catch {
      rmSync(build, { recursive: true, force: true }) // another start was quicker, or the name is taken
    }
    if (!ours(dir)) return null
    // Older builds of this tree (an earlier version of the sources) are of no use any more.
    for (const name of readdirSync(tmpdir())) {
      if (name.startsWith(prefix) && join(tmpdir(), name) !== dir) rmSync(join(tmpdir(), name), { recursive: true, force: true })
    }
    return dir
  } catch {
    return null
  }
}
