/**
 * `careledger regulator dkg init|round1|round2|finish`: the regulators create the k-of-n trapdoor
 * by a distributed key generation (Komlo & Goldberg 2020, §5.1 KeyGen with proofs of knowledge;
 * shared/crypto/frost-dkg.ts), so nobody ever holds it whole. The rounds exchange FILES (a shared
 * folder, e-mail, a USB stick): no network and no cloud are needed. docs/operations.md §Supervision.
 *
 *   init     one regulator writes ceremony.json (cloud id, k, the n regulators' names and wallet
 *            addresses, a fresh nonce); everyone checks it and uses the same file
 *   round1   regulator i: its secret state (sealed, like every key file) and round1-<i>.json, its
 *            public package signed by its wallet (EIP-712 DkgPackage)
 *   round2   with every round1-*.json: checks each signature and proof of knowledge (a bad one is
 *            named), then writes round2-<i>-to-<j>.json, f_i(j) encrypted to j (only j can open it)
 *   finish   with the round-1 packages and the round-2 files addressed to i: checks each share
 *            against its sender's commitments (a bad one is named), writes i's FROST share file, the
 *            policy (policy.json, identical at every regulator), the group key as the chain's
 *            chameleon-public.key, and i's acceptance of it over the
 *            transcript (acceptance-<i>.json), and deletes the state. An admin installs policy.json
 *            (PUT /v1/supervision/policy) once every acceptance verifies (verifyPolicyAcceptances).
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Command } from 'commander'
import { bytesToHex, hexToBytes } from '@noble/hashes/utils.js'
import { CareLedgerError } from '../../shared/errors.ts'
import { deleteDkgStateFile, readDkgStateFile, writeDkgStateFile, writeShareFile } from '../../shared/cli/frost-files.ts'
import { dkgRound1, dkgRound2, dkgRound3, type DkgRound1Package, type DkgRound2Package } from '../../shared/crypto/frost-dkg.ts'
import { systemRng } from '../../shared/crypto/random.ts'
import { encodeChameleonPublicKey } from '../../shared/crypto/chameleon.ts'
import { writeKeyFile } from '../../shared/cli/files.ts'
import { checksum, supervisoryPolicyId } from '../../shared/protocol/supervisory-policy.ts'
import { CEREMONY_VERSION, dkgCeremony, dkgPackageTypedData, parseCeremony, policyAcceptanceTypedData, policyFromDkg, verifyDkgPackages, type CeremonyParams } from '../../shared/protocol/supervision-setup.ts'
import { readWallet } from '../../clients/supervision-keys.ts'

const out = (line: string): void => void process.stdout.write(line + '\n')

function bad(what: string, message: string): never {
  throw new CareLedgerError('INVALID_ARGUMENT', `${what}: ${message}`, { reason: 'BAD_FILE', file: what })
}

function readJson(path: string): unknown {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (e) {
    return bad(path, `cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`)
  }
  try {
    return JSON.parse(text)
  } catch {
    return bad(path, 'is not JSON')
  }
}

const hexField = (path: string, v: unknown, field: string): Uint8Array => {
  if (typeof v !== 'string' || !/^([0-9a-f]{2})+$/.test(v)) bad(path, `${field}: expected lower-case hex`)
  return hexToBytes(v as string)
}
const intField = (path: string, v: unknown, field: string): number => (Number.isSafeInteger(v) && (v as number) >= 1 ? (v as number) : bad(path, `${field}: expected a positive integer`))

const readCeremony = (path: string): CeremonyParams => parseCeremony(readJson(path))

// ---- the files of the rounds (JSON, hex for bytes) --------------------------------------------------

const round1Json = (pkg: DkgRound1Package, signature: string) => ({
  package: { index: pkg.index, commitments: pkg.commitments.map(bytesToHex), proof: bytesToHex(pkg.proof), encryptionKey: bytesToHex(pkg.encryptionKey) },
  signature,
})

function readRound1(path: string): { package: DkgRound1Package; signature: string } {
  const o = readJson(path) as { package?: Record<string, unknown>; signature?: unknown }
  const p = o?.package
  if (!p || typeof p !== 'object') bad(path, 'no package')
  if (!Array.isArray(p.commitments)) bad(path, 'package.commitments: expected an array')
  if (typeof o.signature !== 'string') bad(path, 'signature: expected a 0x-hex string')
  return {
    package: {
      index: intField(path, p.index, 'package.index'),
      commitments: (p.commitments as unknown[]).map((c, i) => hexField(path, c, `package.commitments[${i}]`)),
      proof: hexField(path, p.proof, 'package.proof'),
      encryptionKey: hexField(path, p.encryptionKey, 'package.encryptionKey'),
    },
    signature: o.signature as string,
  }
}

const round2Json = (m: DkgRound2Package) => ({ from: m.from, to: m.to, nonce: bytesToHex(m.nonce), ciphertext: bytesToHex(m.ciphertext) })

function readRound2(path: string): DkgRound2Package {
  const o = readJson(path) as Record<string, unknown>
  return { from: intField(path, o?.from, 'from'), to: intField(path, o?.to, 'to'), nonce: hexField(path, o.nonce, 'nonce'), ciphertext: hexField(path, o.ciphertext, 'ciphertext') }
}

/** Every round1-<i>.json of a folder, one per regulator of the ceremony (a missing one is named). */
function readAllRound1(dir: string, params: CeremonyParams): { package: DkgRound1Package; signature: string }[] {
  const missing = params.regulators.filter((r) => !existsSync(join(dir, `round1-${r.index}.json`)))
  if (missing.length > 0) {
    throw new CareLedgerError('INVALID_ARGUMENT', `round 1 is not complete in ${dir}: no package from ${missing.map((r) => `${r.name} (round1-${r.index}.json)`).join(', ')}`, { reason: 'MISSING_PACKAGE', participants: missing.map((r) => r.index) })
  }
  return params.regulators.map((r) => {
    const s = readRound1(join(dir, `round1-${r.index}.json`))
    if (s.package.index !== r.index) bad(join(dir, `round1-${r.index}.json`), `holds the package of participant ${s.package.index}`)
    return s
  })
}

function writeNew(path: string, value: unknown): void {
  writeFileSync(path, JSON.stringify(value, null, 2) + '\n', { flag: 'wx' })
}

/** Adds `dkg init|round1|round2|finish` to `careledger regulator`. */
export function addRegulatorDkg(cmd: Command): Command {
  const dkg = cmd.command('dkg').description('create the k-of-n trapdoor by a distributed key generation (nobody ever holds it whole); rounds exchange files')

  dkg
    .command('init')
    .description('write the ceremony file every regulator uses (cloud id, k, the regulators, a fresh nonce)')
    .requiredOption('--threshold <k>', 'approvals needed (≥ 2)')
    .requiredOption('--cloud-id <id>', 'the chain these approvals are for')
    .requiredOption('--regulator <name=address...>', 'each regulator: display name = EVM address (their wallet), in index order')
    .requiredOption('-o, --out <file>', 'ceremony.json')
    .action((o: { threshold: string; cloudId: string; regulator: string[]; out: string }) => {
      const regulators = o.regulator.map((s, i) => {
        const at = s.lastIndexOf('=')
        if (at < 1) throw new CareLedgerError('INVALID_ARGUMENT', `--regulator ${JSON.stringify(s)}: expected "Name=0xaddress"`, { field: 'regulator' })
        return { index: i + 1, name: s.slice(0, at), address: checksum(s.slice(at + 1)) }
      })
      const params = parseCeremony({ v: CEREMONY_VERSION, cloud: o.cloudId, threshold: Number(o.threshold), regulators, nonce: bytesToHex(systemRng(16)), createdAt: Date.now() })
      writeNew(o.out, params)
      out(`DKG ceremony ${bytesToHex(dkgCeremony(params).id)}: ${params.threshold} of ${regulators.length}; give ${o.out} to every regulator, each runs \`careledger regulator dkg round1\``)
    })

  dkg
    .command('round1')
    .description('your secret state (sealed) and your public package signed by your wallet')
    .requiredOption('--ceremony <file>', 'ceremony.json')
    .requiredOption('--index <i>', 'your index in the ceremony')
    .requiredOption('--state <file>', 'where to keep your secret state until `finish` (sealed under your passphrase)')
    .requiredOption('--dir <dir>', 'the exchange folder: round1-<i>.json is written there')
    .option('--wallet <file>', 'your EVM wallet key (or CARELEDGER_REGULATOR_WALLET)')
    .action(async (o: { ceremony: string; index: string; state: string; dir: string; wallet?: string }) => {
      const params = readCeremony(o.ceremony)
      const index = Number(o.index)
      const me = params.regulators.find((r) => r.index === index)
      if (!me) throw new CareLedgerError('INVALID_ARGUMENT', `--index ${o.index}: the ceremony has regulators 1..${params.regulators.length}`, { field: 'index' })
      const wallet = readWallet(o.wallet)
      if (wallet.address !== me.address) throw new CareLedgerError('INVALID_ARGUMENT', `your wallet is ${wallet.address}, but regulator ${index} of the ceremony is ${me.name} (${me.address})`, { field: 'wallet' })
      const r = dkgRound1(dkgCeremony(params), index, systemRng)
      writeDkgStateFile(o.state, r.state)
      const t = dkgPackageTypedData(params, r.package)
      writeNew(join(o.dir, `round1-${index}.json`), round1Json(r.package, await wallet.signTypedData(t.domain, t.types, t.message)))
      out(`round 1 of ${me.name}: wrote ${join(o.dir, `round1-${index}.json`)}; state kept in ${o.state}`)
    })

  dkg
    .command('round2')
    .description('check every round-1 package (a bad one is named), then write your encrypted shares for the others')
    .requiredOption('--ceremony <file>', 'ceremony.json')
    .requiredOption('--state <file>', 'your state from round1')
    .requiredOption('--dir <dir>', 'the exchange folder (round1-*.json read, round2-<i>-to-<j>.json written)')
    .action((o: { ceremony: string; state: string; dir: string }) => {
      const params = readCeremony(o.ceremony)
      const state = readDkgStateFile(o.state)
      const packages = verifyDkgPackages(params, readAllRound1(o.dir, params))
      const messages = dkgRound2(dkgCeremony(params), state, packages, systemRng)
      for (const m of messages) writeNew(join(o.dir, `round2-${m.from}-to-${m.to}.json`), round2Json(m))
      out(`round 2 of participant ${state.index}: every package checked; wrote ${messages.length} encrypted shares to ${o.dir}`)
    })

  dkg
    .command('finish')
    .description('check the shares sent to you (a bad one is named); write your FROST share, the policy and your acceptance')
    .requiredOption('--ceremony <file>', 'ceremony.json')
    .requiredOption('--state <file>', 'your state from round1 (deleted when done)')
    .requiredOption('--dir <dir>', 'the exchange folder (policy.json and acceptance-<i>.json written there)')
    .requiredOption('--share <file>', 'where to write your FROST signing share (sealed)')
    .option('--wallet <file>', 'your EVM wallet key (or CARELEDGER_REGULATOR_WALLET)')
    .action(async (o: { ceremony: string; state: string; dir: string; share: string; wallet?: string }) => {
      const params = readCeremony(o.ceremony)
      const state = readDkgStateFile(o.state)
      const wallet = readWallet(o.wallet)
      const me = params.regulators.find((r) => r.index === state.index)!
      if (wallet.address !== me.address) throw new CareLedgerError('INVALID_ARGUMENT', `your wallet is ${wallet.address}, but regulator ${state.index} is ${me.name} (${me.address})`, { field: 'wallet' })
      const packages = verifyDkgPackages(params, readAllRound1(o.dir, params))
      const names = readdirSync(o.dir).filter((f) => f.endsWith(`-to-${state.index}.json`) && f.startsWith('round2-'))
      const received = names.map((f) => readRound2(join(o.dir, f))).filter((m) => m.to === state.index)
      const result = dkgRound3(dkgCeremony(params), state, packages, received)
      const policy = policyFromDkg(params, result, { createdAt: params.createdAt })
      writeShareFile(o.share, result.group, result.share)
      deleteDkgStateFile(o.state)
      const policyPath = join(o.dir, 'policy.json')
      const text = JSON.stringify(policy, null, 2) + '\n'
      if (!existsSync(policyPath)) writeFileSync(policyPath, text, { flag: 'wx' })
      else if (readFileSync(policyPath, 'utf8') !== text) {
        throw new CareLedgerError('VERIFICATION_FAILED', `${policyPath} is not the policy this DKG gave you (${bytesToHex(supervisoryPolicyId(policy))}): someone saw other round-1 packages; do not use the shares`, { reason: 'POLICY_MISMATCH' })
      }
      // The group key IS the chain's chameleon public key: the cloud starts with this file (CARELEDGER_CHAMELEON_PUBLIC_KEY).
      writeKeyFile(join(o.dir, 'chameleon-public.key'), encodeChameleonPublicKey(result.group.groupKey), { secret: false, force: true })
      const t = policyAcceptanceTypedData(policy, result.transcript)
      writeNew(join(o.dir, `acceptance-${state.index}.json`), { regulator: wallet.address, signature: await wallet.signTypedData(t.domain, t.types, t.message), transcript: bytesToHex(result.transcript) })
      out(`${me.name}: share written to ${o.share}; policy ${bytesToHex(supervisoryPolicyId(policy))} (group key ${policy.groupKey}, transcript ${bytesToHex(result.transcript)}); acceptance-${state.index}.json written`)
    })
  return cmd
}
