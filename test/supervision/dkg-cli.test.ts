/**
 * `careledger regulator dkg init|round1|round2|finish` as three regulators run it, each in its own
 * processes, exchanging files only: one policy at every regulator, every share consistent with the
 * group key, a 2-of-3 adapt under the existing chameleon hash, and a cheating participant named.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { ristretto255 } from '@noble/curves/ed25519.js'
import { bytesToNumberLE } from '@noble/curves/utils.js'
import { bytesToHex } from '@noble/hashes/utils.js'
import { careledger } from '../helpers/gateway-process.ts'
import { chameleonHash, chameleonVerify, decodeChameleonPublicKey } from '../../shared/crypto/chameleon.ts'
import { thresholdAdaptAggregate, thresholdAdaptCommit, thresholdAdaptSign } from '../../shared/crypto/chameleon-threshold.ts'
import { readDkgStateFile, readShareFile } from '../../shared/cli/frost-files.ts'
import { dkgRound2 } from '../../shared/crypto/frost-dkg.ts'
import { deterministicRng } from '../../shared/crypto/random.ts'
import { parseSupervisoryPolicy } from '../../shared/protocol/supervisory-policy.ts'
import { dkgCeremony, parseCeremony, verifyDkgPackages, verifyPolicyAcceptances } from '../../shared/protocol/supervision-setup.ts'
import { testWallet } from '../vectors/supervision.ts'

const rng = deterministicRng('careledger dkg cli tests')
const wallets = [1, 2, 3].map(testWallet)
const root = mkdtempSync(join(tmpdir(), 'careledger-dkg-cli-'))
afterAll(() => rmSync(root, { recursive: true, force: true }))
wallets.forEach((w, i) => writeFileSync(join(root, `wallet-${i + 1}`), w.privateKey + '\n', { mode: 0o600 }))

async function ok(args: string[]): Promise<string> {
  const r = await careledger(['regulator', 'dkg', ...args])
  if (r.code !== 0) throw new Error(`careledger regulator dkg ${args.join(' ')} failed (${r.code}): ${r.stderr}`)
  return r.stdout
}

/** init and round 1 of a fresh ceremony in `dir`. */
async function startCeremony(dir: string): Promise<string> {
  mkdirSync(dir)
  const ceremony = join(dir, 'ceremony.json')
  await ok(['init', '--threshold', '2', '--cloud-id', 'careledger-test', ...wallets.flatMap((w, i) => ['--regulator', `Regulator ${i + 1}=${w.address}`]), '-o', ceremony])
  await Promise.all([1, 2, 3].map((i) => ok(['round1', '--ceremony', ceremony, '--index', String(i), '--state', join(dir, `state-${i}`), '--dir', dir, '--wallet', join(root, `wallet-${i}`)])))
  return ceremony
}

describe('careledger regulator dkg: three regulators, files only', () => {
  it('ends with one policy (keyGeneration dkg) all accept, shares that match the group key, and a 2-of-3 adapt', async () => {
    const dir = join(root, 'honest')
    const ceremony = await startCeremony(dir)
    await Promise.all([1, 2, 3].map((i) => ok(['round2', '--ceremony', ceremony, '--state', join(dir, `state-${i}`), '--dir', dir])))
    // finish one after the other: the first writes policy.json, the others check theirs against it
    for (const i of [1, 2, 3]) await ok(['finish', '--ceremony', ceremony, '--state', join(dir, `state-${i}`), '--dir', dir, '--share', join(dir, `share-${i}`), '--wallet', join(root, `wallet-${i}`)])

    expect([1, 2, 3].some((i) => existsSync(join(dir, `state-${i}`)))).toBe(false)
    const policy = parseSupervisoryPolicy(JSON.parse(readFileSync(join(dir, 'policy.json'), 'utf8')))
    expect(policy).toMatchObject({ keyGeneration: 'dkg', threshold: 2, cloud: 'careledger-test' })
    const acceptances = [1, 2, 3].map((i) => JSON.parse(readFileSync(join(dir, `acceptance-${i}.json`), 'utf8')) as { regulator: string; signature: string; transcript: string })
    expect(new Set(acceptances.map((a) => a.transcript)).size).toBe(1)
    verifyPolicyAcceptances(policy, Buffer.from(acceptances[0]!.transcript, 'hex'), acceptances)

    // every share: s_i·G is the policy's verification share Y_i, and the group key is the policy's
    const shares = [1, 2, 3].map((i) => readShareFile(join(dir, `share-${i}`)))
    for (const [i, s] of shares.entries()) {
      expect(bytesToHex(s.group.groupKey)).toBe(policy.groupKey)
      expect(ristretto255.Point.BASE.multiply(bytesToNumberLE(s.share.signingShare)).toHex()).toBe(policy.regulators[i]!.verificationShare)
    }

    // the group key is a chameleon public key: hash a record, then 2 of 3 (regulators 1 and 3) adapt it
    const m = new TextEncoder().encode('record'), m2 = new TextEncoder().encode('record, corrected')
    const groupKey = shares[0]!.group.groupKey
    expect(bytesToHex(decodeChameleonPublicKey(new Uint8Array(readFileSync(join(dir, 'chameleon-public.key')))))).toBe(bytesToHex(groupKey)) // what the cloud starts with
    const d = chameleonHash(groupKey, m, rng)
    const signers = [shares[0]!, shares[2]!]
    const round1 = signers.map((s) => thresholdAdaptCommit(s.share, rng))
    const commitments = round1.map((r) => r.commitment)
    const target = { hash: d.hash, message: m2 }
    const o = thresholdAdaptAggregate(signers[0]!.group, commitments, target, signers.map((s, j) => thresholdAdaptSign(s.share, s.group, round1[j]!.nonces, commitments, target)))
    expect(chameleonVerify(groupKey, m2, d.hash, Uint8Array.from([...o.R, ...o.s]))).toBe(true)
  }, 300_000)

  it("a forged round-1 package and a cheating participant's share are refused, naming the participant", async () => {
    const dir = join(root, 'cheat')
    const ceremony = await startCeremony(dir)

    // Regulator 3's package re-signed by regulator 1's wallet: round 2 refuses it, naming participant 3.
    const p3 = join(dir, 'round1-3.json')
    const genuine = readFileSync(p3, 'utf8')
    const forged = JSON.parse(genuine) as { signature: string }
    forged.signature = JSON.parse(readFileSync(join(dir, 'round1-1.json'), 'utf8')).signature
    writeFileSync(p3, JSON.stringify(forged))
    const refused = await careledger(['regulator', 'dkg', 'round2', '--ceremony', ceremony, '--state', join(dir, 'state-1'), '--dir', dir])
    expect(refused.code).not.toBe(0)
    expect(refused.stderr).toMatch(/participant 3 is not signed by Regulator 3/)
    writeFileSync(p3, genuine)

    // Regulator 2 cheats: its round-2 shares come from another polynomial than its published commitments.
    const params = parseCeremony(JSON.parse(readFileSync(ceremony, 'utf8')))
    const packages = verifyDkgPackages(params, [1, 2, 3].map((i) => {
      const o = JSON.parse(readFileSync(join(dir, `round1-${i}.json`), 'utf8'))
      return { package: { index: o.package.index, commitments: o.package.commitments.map((c: string) => Buffer.from(c, 'hex')), proof: Buffer.from(o.package.proof, 'hex'), encryptionKey: Buffer.from(o.package.encryptionKey, 'hex') }, signature: o.signature }
    }))
    const state2 = readDkgStateFile(join(dir, 'state-2'))
    const lying = { ...state2, coefficients: [state2.coefficients[0]!, new Uint8Array(32).fill(7)] }
    // (round two checks its own package against its state: hand it the package the lie would have made)
    const own = packages.map((p) => (p.index === 2 ? { ...p, commitments: lying.coefficients.map((a) => ristretto255.Point.BASE.multiply(bytesToNumberLE(a)).toBytes()) } : p))
    for (const msg of dkgRound2(dkgCeremony(params), lying, own, rng)) {
      writeFileSync(join(dir, `round2-${msg.from}-to-${msg.to}.json`), JSON.stringify({ from: msg.from, to: msg.to, nonce: bytesToHex(msg.nonce), ciphertext: bytesToHex(msg.ciphertext) }))
    }
    await ok(['round2', '--ceremony', ceremony, '--state', join(dir, 'state-3'), '--dir', dir])
    const named = await careledger(['regulator', 'dkg', 'finish', '--ceremony', ceremony, '--state', join(dir, 'state-1'), '--dir', dir, '--share', join(dir, 'share-1'), '--wallet', join(root, 'wallet-1')])
    expect(named.code).not.toBe(0)
    expect(named.stderr).toMatch(/participant 2 sent a share that does not match its commitments/)
    // nothing was written, and regulator 1 still has its state
    expect(existsSync(join(dir, 'share-1'))).toBe(false)
    expect(existsSync(join(dir, 'policy.json'))).toBe(false)
    expect(existsSync(join(dir, 'state-1'))).toBe(true)
  }, 300_000)
})
