/**
 * The console views' scripts (doctor, regulator), each bundled once per process by esbuild from the
 * TypeScript the CLI runs: clients/browser/<view>-view.ts with clients/ and shared/ (FABEO,
 * envelope, chain checks, FROST, ethers' EIP-712) and uPlot. No second implementation for the browser: the few Node built-ins shared/ touches are
 * aliased to clients/browser/node-crypto.ts (audited @noble libraries) and the `buffer` package;
 * modules that only server paths use (SQLite, worker threads) become stubs that throw if called;
 * the record-proof check is cloud/chain/record-proof.ts, pure, so no blockstore is reached.
 *
 * Why a bundler rather than type-stripped files and an import map: shared/ reaches ~200 modules
 * in 15 packages with `exports` maps and Node built-ins; esbuild resolves all of it exactly as
 * Node does and yields one file whose SHA-256 the page can pin, at ~1 s per cloud start.
 */
import { createHash } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import type { Plugin } from 'esbuild'

const here = (p: string): string => fileURLToPath(new URL(p, import.meta.url))

/** Built-ins and packages the browser never needs on the doctor view's paths. */
const STUBS = ['better-sqlite3', 'node:worker_threads', 'node:os', 'node:fs', 'node:fs/promises', 'node:path', 'node:url', 'node:timers/promises', 'node:child_process']

const stubs: Plugin = {
  name: 'careledger-browser-stubs',
  setup(build) {
    const filter = new RegExp(`^(${STUBS.map((s) => s.replace(/[/.]/g, '\\$&')).join('|')})$`)
    build.onResolve({ filter }, (args) => ({ path: args.path, namespace: 'stub' }))
    build.onLoad({ filter: /.*/, namespace: 'stub' }, (args) => ({
      contents: `const fail = () => { throw new Error('${args.path} is not available in the browser') };
        export default new Proxy(fail, { get: () => fail });
        export const Worker = fail, availableParallelism = () => 1, cpus = () => [], homedir = fail, join = fail, dirname = fail, resolve = fail, fileURLToPath = fail, setImmediate = fail, readFileSync = fail, writeFileSync = fail, mkdirSync = fail, renameSync = fail, open = fail, readFile = fail, writeFile = fail, mkdir = fail, rename = fail;`,
      loader: 'js',
    }))
  },
}

export interface Bundle {
  readonly js: string
  /** sha256-… for Subresource Integrity. */
  readonly integrity: string
}

/** The console's views bundled from clients/browser/<view>-view.ts. */
export type ConsoleView = 'doctor' | 'regulator'

const built = new Map<ConsoleView, Promise<Bundle>>()

export function viewBundle(view: ConsoleView): Promise<Bundle> {
  let b = built.get(view)
  if (b) return b
  b = (async () => {
    const esbuild = await import('esbuild')
    const r = await esbuild.build({
      entryPoints: [here(`../../clients/browser/${view}-view.ts`)],
      bundle: true,
      write: false,
      format: 'esm',
      platform: 'browser',
      target: 'es2022',
      minify: true,
      legalComments: 'none',
      alias: { 'node:crypto': here('../../clients/browser/node-crypto.ts'), buffer: here('../../node_modules/buffer/index.js') },
      inject: [here('./locale-guard.ts'), here('./buffer-global.ts')],
      plugins: [stubs],
      logLevel: 'silent',
    })
    const js = r.outputFiles[0]!.text
    return { js, integrity: `sha256-${createHash('sha256').update(js).digest('base64')}` }
  })().catch((e: unknown) => {
    built.delete(view)
    throw e
  })
  built.set(view, b)
  return b
}

export const doctorBundle = (): Promise<Bundle> => viewBundle('doctor')
