/**
 * Realistic sealed batches for cloud tests, without a gateway: readings sealed with the gateway's
 * own `sealBatch` (gateway/seal/seal.ts) under a test FABEO authority, a gateway key from
 * `generateSigningKey`, packed as a one-block CARv1 the way gateways upload them, and signed
 * HTTP requests (shared/protocol/request-signing.ts) to send them.
 */
import type { StreamKem } from '../../shared/crypto/envelope.ts'
import { CarWriter } from '@ipld/car'
import type { CID } from 'multiformats/cid'
import { randomBytes } from 'node:crypto'
import { encodeCanonical } from '../../shared/encoding/canonical.ts'
import { setup, type MasterPublicKey, type MasterSecretKey } from '../../shared/crypto/abe/fabeo.ts'
import { deterministicRng } from '../../shared/crypto/random.ts'
import { generateSigningKey, signingKeyId } from '../../shared/crypto/sign.ts'
import { manifestCommitment, signManifest, type BatchManifest } from '../../shared/protocol/manifest.ts'
import { patientPseudonym, streamId } from '../../shared/protocol/pseudonym.ts'
import { signRequest } from '../../shared/protocol/request-signing.ts'
import type { SealedReading } from '../../shared/protocol/batch.ts'
import { policyFor, sealBatch, type SealedBatch } from '../../gateway/seal/seal.ts'

let authority: MasterSecretKey | null = null
/** One test authority per process (Setup costs a GT exponentiation); its master secret issues readers' keys. */
export const testAuthoritySecret = (): MasterSecretKey => (authority ??= setup(deterministicRng('careledger cloud test authority')))
export const testAuthority = (): MasterPublicKey => testAuthoritySecret().mpk

export interface TestGateway {
  readonly secretKey: Uint8Array
  readonly publicKey: Uint8Array
  readonly gatewayId: string
  readonly pseudonymKey: Uint8Array
}

export function testGateway(): TestGateway {
  const { secretKey, publicKey } = generateSigningKey()
  return { secretKey, publicKey, gatewayId: signingKeyId(publicKey), pseudonymKey: randomBytes(32) }
}

/** A new test gateway, registered with a running cloud through its one-time enrolment (POST /v1/gateways/register). */
export async function registerTestGateway(cloud: { url: string; enrolment: { invite(name: string): { token: string } | Promise<{ token: string }> } }, name = 'ward-1'): Promise<TestGateway> {
  const gw = testGateway()
  const { token } = await cloud.enrolment.invite(name)
  const res = await fetch(`${cloud.url}/v1/gateways/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token, publicKey: Buffer.from(gw.publicKey).toString('hex'), name }) })
  if (res.status !== 201) throw new Error(`registering ${name}: ${res.status} ${await res.text()}`)
  return gw
}

export interface TestStream {
  readonly gateway: TestGateway
  readonly deviceId: string
  readonly pseudonym: string
  readonly streamId: string
  readonly policy: string
}

export function testStream(gateway: TestGateway, deviceId = 'bed-01', patientId = 'P-1', policyTemplate = 'role:doctor OR patient:{patient}'): TestStream {
  const pseudonym = patientPseudonym(gateway.pseudonymKey, patientId)
  return { gateway, deviceId, pseudonym, streamId: streamId(gateway.gatewayId, deviceId, pseudonym), policy: policyFor(policyTemplate, pseudonym) }
}

/** `count` heart-rate readings like a monitor's, one per second, with gateway receive times. */
export function readings(seq0: number, count: number, t0 = Date.now() - 60_000): SealedReading[] {
  return Array.from({ length: count }, (_, i) => ({ seq: seq0 + i, ts: t0 + i * 1000, type: 'heart_rate' as const, unit: '/min', value: 70 + (i % 7), rx: t0 + i * 1000 + 40 }))
}

/** Seal batch `seq` of a stream; `prev` is the commitment of batch seq−1 (null for seq 0). */
/** `kem`: the stream's encapsulation from an earlier batch (as a gateway keeps it); without it, a fresh one. */
export function sealTestBatch(stream: TestStream, seq: number, prev: string | null, opts: { readings?: SealedReading[]; now?: number; kem?: StreamKem } = {}): Promise<SealedBatch> {
  return sealBatch({
    gatewayId: stream.gateway.gatewayId,
    gatewaySecretKey: stream.gateway.secretKey,
    mpk: testAuthority(),
    policy: stream.policy,
    stream: { streamId: stream.streamId, deviceId: stream.deviceId, pseudonym: stream.pseudonym, nextSeq: seq, prevCommitment: prev },
    readings: opts.readings ?? readings(seq * 10, 5),
    now: opts.now ?? Date.now(),
    kem: opts.kem ?? null,
  })
}

/** Seal batches 0 … n−1 of a stream, each linked to the one before. */
export async function sealChain(stream: TestStream, n: number): Promise<SealedBatch[]> {
  const out: SealedBatch[] = []
  for (let seq = 0; seq < n; seq++) out.push(await sealTestBatch(stream, seq, seq === 0 ? null : out[seq - 1]!.commitment))
  return out
}

/** A changed manifest, signed again by the gateway (to test what the cloud checks beyond the signature). */
export function resign(batch: SealedBatch, secretKey: Uint8Array, change: Partial<BatchManifest>): SealedBatch {
  const manifest = { ...batch.manifest, ...change } as BatchManifest
  return { ...batch, manifest, signature: signManifest(secretKey, manifest), commitment: manifestCommitment(manifest) }
}

/** A CARv1 of blocks under `roots` (@ipld/car CarWriter), e.g. the envelope as one raw block. */
export async function carOf(roots: readonly CID[], blocks: ReadonlyArray<{ cid: CID; bytes: Uint8Array }>): Promise<Uint8Array> {
  const { writer, out } = CarWriter.create([...roots])
  const chunks: Uint8Array[] = []
  const drained = (async () => {
    for await (const c of out) chunks.push(c)
  })()
  for (const b of blocks) await writer.put(b)
  await writer.close()
  await drained
  return new Uint8Array(Buffer.concat(chunks))
}

/** The one-block CAR a gateway uploads for a batch. */
export const batchCar = (b: SealedBatch): Promise<Uint8Array> => carOf([b.cid], [{ cid: b.cid, bytes: b.envelope }])

export interface UploadItem {
  readonly manifest: unknown
  readonly signature: Uint8Array
  readonly car: Uint8Array
}

export async function uploadItem(b: SealedBatch, car?: Uint8Array): Promise<UploadItem> {
  return { manifest: b.manifest, signature: b.signature, car: car ?? (await batchCar(b)) }
}

/** Body of POST /v1/batches. */
export async function batchBody(b: SealedBatch, car?: Uint8Array): Promise<Uint8Array> {
  return encodeCanonical(await uploadItem(b, car))
}

/** Body of POST /v1/batches/bulk. */
export async function bulkBody(batches: readonly SealedBatch[]): Promise<Uint8Array> {
  return encodeCanonical({ batches: await Promise.all(batches.map((b) => uploadItem(b))) })
}

export interface SignedPostOptions {
  readonly timestamp?: number
  readonly nonce?: string
  readonly contentType?: string | null
  /** Sign with this key instead of the gateway's (a forgery). */
  readonly signWith?: Uint8Array
  /** Replace or remove (null) individual headers after signing. */
  readonly headers?: Readonly<Record<string, string | null>>
}

/** A gateway-signed POST; returns the response and the exact headers sent (to replay them). */
export async function signedPost(baseUrl: string, gw: TestGateway, path: string, body: Uint8Array, opts: SignedPostOptions = {}): Promise<{ res: Response; headers: Record<string, string> }> {
  const signed: Record<string, string> = {
    ...signRequest(opts.signWith ?? gw.secretKey, { method: 'POST', path, body, ...(opts.timestamp !== undefined ? { timestamp: opts.timestamp } : {}), ...(opts.nonce ? { nonce: opts.nonce } : {}) }),
  }
  // A forgery still claims to be this gateway.
  signed['CareLedger-Gateway'] = gw.gatewayId
  if (opts.contentType !== null) signed['content-type'] = opts.contentType ?? 'application/cbor'
  for (const [k, v] of Object.entries(opts.headers ?? {})) {
    if (v === null) delete signed[k]
    else signed[k] = v
  }
  const res = await fetch(new URL(path, baseUrl), { method: 'POST', headers: signed, body })
  return { res, headers: signed }
}

/** Send exactly these headers and body again (a replay). */
export const replay = (baseUrl: string, path: string, headers: Record<string, string>, body: Uint8Array): Promise<Response> =>
  fetch(new URL(path, baseUrl), { method: 'POST', headers, body })
