/**
 * Chain fixtures: gateways with deterministic keys, streams, and realistic signed batch manifests
 * (the chain never sees the envelope, so none is sealed: the CID and size are plausible values).
 * Signing goes through node:crypto — Ed25519 is deterministic (RFC 8032 §5.1.6), so the signatures
 * are byte-identical to shared/crypto/sign.ts's (asserted below) at a twentieth of the cost,
 * which lets benchmarks and crash tests prepare thousands of manifests quickly.
 */
import { createPrivateKey, sign as nodeSign, type KeyObject } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex } from '@noble/hashes/utils.js'
import { domainSeparated, encodeCanonical } from '../../shared/encoding/canonical.ts'
import { chameleonKeyGen, type ChameleonKeyPair } from '../../shared/crypto/chameleon.ts'
import { generateSigningKey, signingKeyId, type SigningKeyPair } from '../../shared/crypto/sign.ts'
import { deterministicRng } from '../../shared/crypto/random.ts'
import { MANIFEST_DOMAIN, manifestCommitment, signManifest, type BatchManifest } from '../../shared/protocol/manifest.ts'
import { streamId } from '../../shared/protocol/pseudonym.ts'
import type { AppendInput } from '../../cloud/chain/record.ts'

const b64u = (b: Uint8Array): string => Buffer.from(b).toString('base64url')

export class TestGatewayKey {
  readonly secretKey: Uint8Array
  readonly publicKey: Uint8Array
  readonly id: string
  readonly #key: KeyObject

  constructor(seed: string) {
    const pair = generateSigningKey(deterministicRng(`chain test gateway ${seed}`))
    this.secretKey = pair.secretKey
    this.publicKey = pair.publicKey
    this.id = signingKeyId(pair.publicKey)
    this.#key = createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d: b64u(pair.secretKey), x: b64u(pair.publicKey) }, format: 'jwk' })
  }

  /** The gateway's manifest signature (domain batch-manifest), via OpenSSL. */
  sign(m: BatchManifest): Uint8Array {
    return new Uint8Array(nodeSign(null, domainSeparated(MANIFEST_DOMAIN, encodeCanonical(m)), this.#key))
  }

  /** The same signature through noble (shared/crypto), to show they agree. */
  signNoble(m: BatchManifest): Uint8Array {
    return signManifest(this.secretKey, m)
  }
}

const TYPES = ['bp_diastolic', 'bp_systolic', 'heart_rate', 'resp_rate', 'spo2'] as const
const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567'

/** One device's batches for one patient at one gateway, linked seq by seq. */
export class TestStream {
  readonly gateway: TestGatewayKey
  readonly device: string
  readonly patient: string
  readonly id: string
  readonly t0: number
  /** Commitment of every manifest made so far, by seq. */
  readonly commitments: string[] = []

  constructor(gateway: TestGatewayKey, device: string, patientSeed: string, t0 = 1_760_000_000_000) {
    this.gateway = gateway
    this.device = device
    this.patient = `p-${bytesToHex(sha256(new TextEncoder().encode(patientSeed))).slice(0, 24)}`
    this.id = streamId(gateway.id, device, this.patient)
    this.t0 = t0
  }

  /**
   * Manifest `seq`, deterministic given (stream, seq, variant); prev is the commitment of the
   * manifest made for seq − 1 (make them in order), unless given.
   */
  manifest(seq: number, opts: { prev?: string | null; variant?: number } = {}): BatchManifest {
    const h = sha256(new TextEncoder().encode(`${this.id}/${seq}/${opts.variant ?? 0}`))
    const from = this.t0 + seq * 10_000
    const count = 20 + (h[0]! % 200)
    const types = TYPES.filter((_, i) => (h[1]! >> i) & 1 || i === 2)
    const prev = opts.prev !== undefined ? opts.prev : seq === 0 ? null : this.commitments[seq - 1]
    if (prev === undefined) throw new Error(`make manifest ${seq - 1} of ${this.id} first`)
    const m: BatchManifest = {
      v: 1,
      gateway: this.gateway.id,
      stream: this.id,
      device: this.device,
      patient: this.patient,
      seq,
      prev,
      from,
      to: from + 9_000,
      count,
      types,
      merkleRoot: bytesToHex(sha256(h)),
      authority: bytesToHex(h).slice(0, 32),
      policy: `(role:doctor AND hospital:h1) OR patient:${this.patient} OR (role:researcher AND consent:research)`,
      sealedAt: from + 9_500,
      cid: `bafkrei${Array.from(h, (b) => BASE32[b % 32]).join('')}${'a'.repeat(20)}`,
      size: 1500 + count * 60,
    }
    if ((opts.variant ?? 0) === 0) this.commitments[seq] = manifestCommitment(m)
    return m
  }

  /** The upload of batch `seq` as the service hands it to ChainStore.appendBatch. */
  batch(seq: number, opts: { prev?: string | null; variant?: number; receivedAt?: number } = {}): AppendInput {
    const manifest = this.manifest(seq, opts)
    return { manifest, signature: this.gateway.sign(manifest), gatewayKey: this.gateway.publicKey, receivedAt: opts.receivedAt ?? manifest.sealedAt + 700 }
  }
}

export interface ChainTestKeys {
  readonly signing: SigningKeyPair
  readonly chameleon: ChameleonKeyPair
  readonly store: { signingSecretKey: Uint8Array; signingPublicKey: Uint8Array; chameleonPublicKey: Uint8Array }
}

export function chainTestKeys(seed = 'chain test'): ChainTestKeys {
  const signing = generateSigningKey(deterministicRng(`${seed} cloud signing`))
  const chameleon = chameleonKeyGen(deterministicRng(`${seed} regulator`))
  return { signing, chameleon, store: { signingSecretKey: signing.secretKey, signingPublicKey: signing.publicKey, chameleonPublicKey: chameleon.publicKey } }
}

/** A fresh directory under the OS temp dir, removed by cleanup(). */
export function tempDir(name: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `careledger-${name}-`))
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) }
}

/** `streams` streams over `gateways` gateways. */
export function testFleet(gateways: number, streamsPerGateway: number, seed = 'fleet'): TestStream[] {
  const out: TestStream[] = []
  for (let g = 0; g < gateways; g++) {
    const gw = new TestGatewayKey(`${seed}-${g}`)
    for (let s = 0; s < streamsPerGateway; s++) out.push(new TestStream(gw, `bed-${String(s).padStart(2, '0')}`, `${seed}-${g}-${s}`))
  }
  return out
}
