// postinstall: put back the platform's native binding packages that npm skipped for their `engines`.
//
// npm skips an optional dependency whose `engines.node` excludes the node running npm itself
// (an optional package that does not fit is skipped, with only a verbose log line). Hardhat's EDR (the in-process
// EVM of the anchoring tests) ships its native binding as such a package with engines node >= 22,
// so on a machine whose own node is 20, `npm install` leaves EDR without its binding although the
// tests run on the pinned Node 24. This script, run by npm after every install, finds the
// optional packages of the lockfile that match this machine (os, cpu, libc), are wanted by a
// package that is installed, and are missing; it fetches each at its locked version with
// `npm pack` (the registry npm is configured for), checks the tarball against the lockfile's
// integrity, and unpacks it where npm would have. Plain JavaScript: it runs on the machine's node.
import { createHash } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, mkdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

const root = resolve(import.meta.dirname, '..')
const lockFile = join(root, 'package-lock.json')
if (!existsSync(lockFile)) process.exit(0)
const packages = JSON.parse(readFileSync(lockFile, 'utf8')).packages ?? {}

const libc = process.platform === 'linux' ? (process.report?.getReport().header.glibcVersionRuntime ? 'glibc' : 'musl') : null
const fits = (list, value) => !list || list.includes(value) || (list.some((x) => x.startsWith('!')) && !list.includes(`!${value}`))
const matchesMachine = (p) => fits(p.os, process.platform) && fits(p.cpu, process.arch) && (!p.libc || fits(p.libc, libc))
const nameOf = (path) => path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length)

/** Optional packages wanted by an installed package, fitting this machine, absent from disk. */
const missing = Object.entries(packages).filter(([path, p]) => {
  if (!path || !p.optional || !p.version || !p.integrity || !matchesMachine(p)) return false
  if (existsSync(join(root, path, 'package.json'))) return false
  const name = nameOf(path)
  return Object.entries(packages).some(([parent, q]) => parent && q.optionalDependencies?.[name] && existsSync(join(root, parent, 'package.json')))
})
if (missing.length === 0) process.exit(0)

const npm = process.env.npm_execpath ? [process.execPath, [process.env.npm_execpath]] : ['npm', []]
const work = mkdtempSync(join(tmpdir(), 'careledger-bindings-'))
let failed = 0
try {
  for (const [path, p] of missing) {
    const spec = `${nameOf(path)}@${p.version}`
    try {
      const out = execFileSync(npm[0], [...npm[1], 'pack', spec, '--pack-destination', work, '--json', '--silent', '--ignore-scripts'], { cwd: work, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
      const file = join(work, JSON.parse(out)[0].filename)
      const [algo, digest] = p.integrity.split(/-(.*)/s)
      const actual = createHash(algo).update(readFileSync(file)).digest('base64')
      if (actual !== digest) throw new Error(`integrity mismatch: the lockfile says ${p.integrity}, the registry sent ${algo}-${actual}`)
      const dest = join(root, path)
      mkdirSync(dest, { recursive: true })
      execFileSync('tar', ['-xzf', file, '-C', dest, '--strip-components=1'], { stdio: 'inherit' })
      console.log(`ensure-native-bindings: installed ${spec} (npm skipped it: its engines are ${JSON.stringify(p.engines ?? {})})`)
    } catch (e) {
      failed++
      rmSync(join(root, path), { recursive: true, force: true })
      console.warn(`ensure-native-bindings: could not install ${spec}: ${e instanceof Error ? e.message : e}`)
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true })
}
// Never fail the install for an optional package: what needs it says so when it loads (test/helpers/evm.ts).
if (failed) console.warn(`ensure-native-bindings: ${failed} optional binding(s) missing; install with npm on Node >= 22 instead (README §Runtime and tooling)`)
