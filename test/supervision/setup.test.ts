import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { bytesToHex } from '@noble/hashes/utils.js'
import type { Wallet } from 'ethers'
import { chameleonHash, chameleonVerify } from '../../shared/crypto/chameleon.ts'
import { thresholdAdaptAggregate, thresholdAdaptCommit, thresholdAdaptSign } from '../../shared/crypto/chameleon-threshold.ts'
import { frostDeal } from '../../shared/crypto/frost.ts'
import { dkgRound1, dkgRound2, dkgRound3, type DkgRound1Package } from '../../shared/crypto/frost-dkg.ts'
import { deterministicRng } from '../../shared/crypto/random.ts'
import { decodeDkgStateFile, decodeFrostNonceFile, decodeFrostShareFile, encodeDkgStateFile, encodeFrostNonceFile, encodeFrostShareFile } from '../../shared/crypto/frost-codec.ts'
import { deleteDkgStateFile, readDkgStateFile, readShareFile, takeNonceFile, writeDkgStateFile, writeNonceFile, writeShareFile } from '../../shared/cli/frost-files.ts'
import { supervisoryPolicyId } from '../../shared/protocol/supervisory-policy.ts'
import {
  dkgCeremony,
  dkgPackageTypedData,
  policyAcceptanceTypedData,
  policyFromDkg,
  verifyDkgPackages,
  verifyPolicyAcceptances,
  type CeremonyParams,
} from '../../shared/protocol/supervision-setup.ts'
import { testWallet } from '../vectors/supervision.ts'
import { errorOf, hex } from '../helpers/frost.ts'

const rng = deterministicRng('careledger supervision setup tests')
const wallets = [1, 2, 3].map(testWallet)
const dir = mkdtempSync(join(tmpdir(), 'careledger-frost-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

const params: CeremonyParams = {
  v: 1,
  cloud: 'careledger-test',
  threshold: 2,
  regulators: wallets.map((w, i) => ({ index: i + 1, name: `Regulator ${i + 1}`, address: w.address })),
  nonce: bytesToHex(rng(16)),
  createdAt: 1_767_225_600_000,
}

async function signPackage(wallet: Wallet, pkg: DkgRound1Package): Promise<string> {
  const t = dkgPackageTypedData(params, pkg)
  return wallet.signTypedData(t.domain, t.types, t.message)
}

describe('regulator setup by DKG, the cloud only relaying', () => {
  it('three regulators, each on its own machine (state in files), end with one policy that all accept, and it adapts', async () => {
    const ceremony = dkgCeremony(params)
    // round 1: each keeps its state in a secret file and publishes a wallet-signed package
    const signed: { package: DkgRound1Package; signature: string }[] = []
    for (const i of [1, 2, 3]) {
      const r = dkgRound1(ceremony, i, rng)
      writeDkgStateFile(join(dir, `dkg-${i}.state`), r.state)
      signed.push({ package: r.package, signature: await signPackage(wallets[i - 1]!, r.package) })
    }
    expect(statSync(join(dir, 'dkg-1.state')).mode & 0o777).toBe(0o600)
    // each regulator checks everyone's signed package, then round 2
    const packages = verifyDkgPackages(params, signed)
    const round2 = [1, 2, 3].flatMap((i) => dkgRound2(ceremony, readDkgStateFile(join(dir, `dkg-${i}.state`)), packages, rng))
    // round 3, then the state is deleted and the share written
    const results = [1, 2, 3].map((i) => {
      const statePath = join(dir, `dkg-${i}.state`)
      const res = dkgRound3(ceremony, readDkgStateFile(statePath), verifyDkgPackages(params, signed), round2.filter((m) => m.to === i))
      deleteDkgStateFile(statePath)
      writeShareFile(join(dir, `share-${i}.key`), res.group, res.share)
      return res
    })
    expect([1, 2, 3].some((i) => existsSync(join(dir, `dkg-${i}.state`)))).toBe(false)
    const policies = results.map((r) => policyFromDkg(params, r, { createdAt: params.createdAt }))
    const id = bytesToHex(supervisoryPolicyId(policies[0]!))
    expect(policies.map((p) => bytesToHex(supervisoryPolicyId(p)))).toEqual([id, id, id])
    expect(policies[0]).toMatchObject({ keyGeneration: 'dkg', threshold: 2, cloud: 'careledger-test' })
    // every regulator accepts the policy over the transcript it saw
    const acceptances = await Promise.all(
      results.map(async (r, i) => {
        const t = policyAcceptanceTypedData(policies[i]!, r.transcript)
        return { regulator: wallets[i]!.address, signature: await wallets[i]!.signTypedData(t.domain, t.types, t.message) }
      }),
    )
    verifyPolicyAcceptances(policies[0]!, results[0]!.transcript, acceptances)
    expect(errorOf(() => verifyPolicyAcceptances(policies[0]!, results[0]!.transcript, acceptances.slice(1)))).toMatchObject({ reason: 'NOT_ACCEPTED', info: { regulator: wallets[0]!.address } })
    expect(errorOf(() => verifyPolicyAcceptances(policies[0]!, new Uint8Array(32), acceptances))?.reason).toBe('FORGED')

    // the shares, read back from their files, adapt a record hashed under the policy's group key
    const [s1, s3] = [readShareFile(join(dir, 'share-1.key')), readShareFile(join(dir, 'share-3.key'))]
    expect(hex(s1.group.groupKey)).toBe(policies[0]!.groupKey)
    const m = new TextEncoder().encode('record'), m2 = new TextEncoder().encode('record, corrected')
    const d = chameleonHash(s1.group.groupKey, m, rng)
    const c = [s1, s3].map((s) => thresholdAdaptCommit(s.share, rng))
    const commitments = c.map((x) => x.commitment)
    const target = { hash: d.hash, message: m2 }
    const o = thresholdAdaptAggregate(s1.group, commitments, target, [s1, s3].map((s, j) => thresholdAdaptSign(s.share, s.group, c[j]!.nonces, commitments, target)))
    expect(chameleonVerify(s1.group.groupKey, m2, d.hash, Uint8Array.from([...o.R, ...o.s]))).toBe(true)
  })

  it('a package not signed by the regulator at its index is refused, naming the participant', async () => {
    const ceremony = dkgCeremony(params)
    const pk = [1, 2, 3].map((i) => dkgRound1(ceremony, i, rng).package)
    const signed = await Promise.all(pk.map(async (p, i) => ({ package: p, signature: await signPackage(wallets[i]!, p) })))
    // the relay swaps regulator 2's encryption key for its own
    const swapped = { ...signed[1]!, package: { ...pk[1]!, encryptionKey: dkgRound1(ceremony, 2, rng).package.encryptionKey } }
    expect(errorOf(() => verifyDkgPackages(params, [signed[0]!, swapped, signed[2]!]))).toMatchObject({ reason: 'FORGED', info: { participant: 2 } })
    // regulator 3 signing regulator 1's slot
    const impostor = { package: pk[0]!, signature: await signPackage(wallets[2]!, pk[0]!) }
    expect(errorOf(() => verifyDkgPackages(params, [impostor, signed[1]!, signed[2]!]))).toMatchObject({ reason: 'FORGED', info: { participant: 1 } })
    expect(errorOf(() => verifyDkgPackages(params, [{ ...signed[0]!, signature: '0x12' }, signed[1]!, signed[2]!]))?.reason).toBe('BAD_SIGNATURE')
    expect(errorOf(() => verifyDkgPackages(params, [{ ...signed[0]!, package: { ...pk[0]!, index: 7 } }]))?.reason).toBe('UNKNOWN_PARTICIPANT')
  })

  it('ceremony parameters are validated and the id changes with anything in them', () => {
    const id = hex(dkgCeremony(params).id)
    expect(hex(dkgCeremony({ ...params, nonce: '00'.repeat(16) }).id)).not.toBe(id)
    expect(hex(dkgCeremony({ ...params, threshold: 3 }).id)).not.toBe(id)
    expect(errorOf(() => dkgCeremony({ ...params, threshold: 1 }))?.reason).toBe('SCHEMA')
    expect(errorOf(() => dkgCeremony({ ...params, regulators: params.regulators.slice(0, 1) }))?.reason).toBe('SCHEMA')
  })
})

describe('regulator files', () => {
  const deal = frostDeal(2, 3, rng)

  it('share files are written 0600, never silently overwritten, and read back checked', () => {
    const path = join(dir, 'reg-1.share')
    writeShareFile(path, deal.group, deal.shares[0]!)
    expect(statSync(path).mode & 0o777).toBe(0o600)
    expect(errorOf(() => writeShareFile(path, deal.group, deal.shares[0]!))?.message).toContain('refusing to overwrite')
    const back = readShareFile(path)
    expect(hex(back.share.signingShare)).toBe(hex(deal.shares[0]!.signingShare))
    expect(back.group.verificationShares.map(hex)).toEqual(deal.group.verificationShares.map(hex))
    // sealed under the passphrase (kind 11, docs/crypto.md §Sealed secrets); inside, kind 16 scheme 1
    expect(hex(readFileSync(path).subarray(0, 4))).toBe('434c010b')
    expect(hex(encodeFrostShareFile(deal.group, deal.shares[0]!).subarray(0, 5))).toBe('434c011001')
  })

  it('a share file that does not match its group, or is damaged, is refused with a typed error', () => {
    // Damage to the encoding itself, in raw files (still read, as from before sealed secrets);
    // damage to a sealed file is caught by its tag (test/keys/frost-files.test.ts).
    const path = join(dir, 'reg-2.share')
    const bytes = encodeFrostShareFile(deal.group, deal.shares[1]!)
    const wrongShare = Uint8Array.from(bytes)
    wrongShare.set(deal.shares[2]!.signingShare, 8) // participant 2's file with participant 3's share
    writeFileSync(path, wrongShare)
    expect(errorOf(() => readShareFile(path))).toMatchObject({ code: 'VERIFICATION_FAILED', reason: 'SHARE_MISMATCH' })
    writeFileSync(path, bytes.subarray(0, bytes.length - 3))
    expect(errorOf(() => readShareFile(path))).toMatchObject({ code: 'INVALID_ENCODING', reason: 'TRUNCATED' })
    expect(errorOf(() => readShareFile(join(dir, 'missing.share')))?.code).toBe('INVALID_ARGUMENT')
    for (let i = 5; i < bytes.length; i += 7) {
      const flipped = Uint8Array.from(bytes)
      flipped[i]! ^= 0x40
      writeFileSync(path, flipped)
      expect(errorOf(() => readShareFile(path))).not.toBeNull()
    }
  })

  it('nonces are taken once: the file is gone before they are used, a second take fails, another session’s nonces are left alone', () => {
    const path = join(dir, 'reg-1.nonces')
    const { nonces } = thresholdAdaptCommit(deal.shares[0]!, rng)
    writeNonceFile(path, { nonces, label: 'request A', groupKey: deal.group.groupKey })
    expect(statSync(path).mode & 0o777).toBe(0o600)
    expect(errorOf(() => writeNonceFile(path, { nonces, label: 'request A', groupKey: deal.group.groupKey }))?.message).toContain('refusing to overwrite')
    expect(errorOf(() => takeNonceFile(path, 'request B'))).toMatchObject({ reason: 'WRONG_SESSION' })
    expect(existsSync(path)).toBe(true)
    const taken = takeNonceFile(path, 'request A')
    expect(existsSync(path)).toBe(false)
    expect(hex(taken.nonces.hiding)).toBe(hex(nonces.hiding))
    expect(errorOf(() => takeNonceFile(path, 'request A'))?.code).toBe('INVALID_ARGUMENT')
    // nonces already consumed by a signature cannot even be written
    const c = [deal.shares[0]!, deal.shares[1]!].map((s) => thresholdAdaptCommit(s, rng))
    const d = chameleonHash(deal.group.groupKey, new Uint8Array(1), rng)
    thresholdAdaptSign(deal.shares[0]!, deal.group, c[0]!.nonces, c.map((x) => x.commitment), { hash: d.hash, message: new Uint8Array(2) })
    expect(errorOf(() => writeNonceFile(join(dir, 'used.nonces'), { nonces: c[0]!.nonces, label: 'x', groupKey: deal.group.groupKey }))?.reason).toBe('NONCE_USED')
  })

  it('garbage and mutated files of every kind throw only CareLedgerError (property)', () => {
    const { nonces } = thresholdAdaptCommit(deal.shares[0]!, rng)
    const state = dkgRound1({ id: new Uint8Array(32).fill(1), threshold: 2, participants: 3 }, 1, rng).state
    const files = [
      [decodeFrostShareFile, encodeFrostShareFile(deal.group, deal.shares[1]!)],
      [decodeFrostNonceFile, encodeFrostNonceFile({ nonces, label: 'request', groupKey: deal.group.groupKey })],
      [decodeDkgStateFile, encodeDkgStateFile(state)],
    ] as const
    for (const [decode, file] of files) {
      decode(file)
      const mutated = fc.tuple(fc.nat(file.length - 1), fc.integer({ min: 1, max: 255 }), fc.nat(file.length)).map(([i, v, cut]) => {
        const b = file.slice(0, Math.max(cut, i + 1))
        b[i]! ^= v
        return b
      })
      fc.assert(
        fc.property(fc.oneof(fc.uint8Array({ maxLength: 200 }), mutated), (bytes) => {
          errorOf(() => decode(bytes))
        }),
        { numRuns: 150 },
      )
      for (const junk of [undefined, null, 'CL', 42, {}]) expect(errorOf(() => decode(junk as never))?.code).toBe('INVALID_ENCODING')
    }
  })
})
