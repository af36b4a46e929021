// `npm run build:native`: build the optional ristretto255 addon (native/ristretto, curve25519-dalek
// behind a hand-written N-API binding; docs/crypto.md §The native ristretto255 addon) with
// `cargo build --release --offline` from the vendored crates, and put it where
// shared/crypto/ristretto-native.ts loads it: native/ristretto/careledger-ristretto.node.
//
// Best effort: without cargo, or when the build fails, it says why and exits 0 — CareLedger then
// verifies with @noble/curves alone, with the same verdicts, only slower. `--strict` exits 1 instead.
// Plain JavaScript: it runs on the machine's node too.
import { spawnSync } from 'node:child_process'
import { copyFileSync, existsSync, renameSync } from 'node:fs'
import { homedir } from 'node:os'
import { join, resolve } from 'node:path'

const crate = resolve(import.meta.dirname, '..', 'native', 'ristretto')
const out = join(crate, 'careledger-ristretto.node')
const strict = process.argv.includes('--strict')

const giveUp = (why) => {
  console.log(`build:native: ${why}; \`chain verify\` uses @noble/curves alone (same verdicts, slower).`)
  process.exit(strict ? 1 : 0)
}

/** cargo on PATH, else rustup's default place. */
function findCargo() {
  const candidates = ['cargo', join(process.env.CARGO_HOME ?? join(homedir(), '.cargo'), 'bin', process.platform === 'win32' ? 'cargo.exe' : 'cargo')]
  return candidates.find((c) => spawnSync(c, ['--version'], { stdio: 'ignore' }).status === 0)
}

const cargo = findCargo()
if (!cargo) giveUp('cargo (Rust) is not installed (https://rustup.rs)')
const built = spawnSync(cargo, ['build', '--release', '--offline', '--quiet'], { cwd: crate, stdio: 'inherit' })
if (built.status !== 0) giveUp(`cargo build failed (exit ${built.status ?? built.signal})`)

const library = { darwin: 'libcareledger_ristretto.dylib', win32: 'careledger_ristretto.dll' }[process.platform] ?? 'libcareledger_ristretto.so'
const from = join(crate, 'target', 'release', library)
if (!existsSync(from)) giveUp(`cargo built no ${library}`)
// Copy then rename, so a running process never loads a half-written file.
copyFileSync(from, `${out}.tmp`)
renameSync(`${out}.tmp`, out)
console.log(`build:native: built ${out}`)
