/**
 * The chain's pure rules: record content and commitment, block headers, the records root, block
 * signatures, the Ed25519 fast path, the redaction property of the chameleon commitment, and the
 * single-record proof check.
 */
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { ed25519 } from '@noble/curves/ed25519.js'
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex } from '@noble/hashes/utils.js'
import { decodeCanonical, encodeCanonical } from '../../shared/encoding/canonical.ts'
import { chameleonAdapt, chameleonKeyId, chameleonVerify } from '../../shared/crypto/chameleon.ts'
import { MerkleTree, leafHash, verifyInclusion } from '../../shared/crypto/merkle.ts'
import { generateSigningKey, signingKeyId, verify as nobleVerify } from '../../shared/crypto/sign.ts'
import { deterministicRng } from '../../shared/crypto/random.ts'
import { isCareLedgerError } from '../../shared/errors.ts'
import { manifestCommitment } from '../../shared/protocol/manifest.ts'
import {
  admitBatch,
  checkRecordRow,
  commitRecord,
  commitmentOfManifestBytes,
  decodeRecordContent,
  encodeRecordContent,
  type RecordFields,
  type RecordRow,
} from '../../cloud/chain/record.ts'
import { BLOCK_DOMAIN, blockHash, decodeBlockHeader, encodeBlockHeader, makeBlock, recordsRoot, verifyBlockSignature } from '../../cloud/chain/block.ts'
import { chainTestKeys, TestGatewayKey, TestStream } from './chain-helpers.ts'

const keys = chainTestKeys('record tests')
const gw = new TestGatewayKey('record tests')
const stream = new TestStream(gw, 'bed-07', 'record tests patient')

function fieldsFor(id: number, seq: number): RecordFields {
  const b = stream.batch(seq)
  return { id, stream: stream.id, seq, gateway: gw.id, gatewayKey: gw.publicKey, manifest: b.manifest, signature: b.signature, receivedAt: b.receivedAt }
}

function rowFor(id: number, seq: number, block: number | null = 0): RecordRow {
  const f = fieldsFor(id, seq)
  const { content, hash, opening } = commitRecord(keys.chameleon.publicKey, f)
  return {
    id,
    stream: f.stream,
    seq,
    gatewayId: gw.id,
    content,
    hash,
    opening,
    manifestCommitment: manifestCommitment(f.manifest),
    prevCommitment: f.manifest.prev,
    cid: f.manifest.cid,
    receivedAt: f.receivedAt,
    blockHeight: block,
  }
}

const errorOf = (f: () => unknown): unknown => {
  try {
    f()
  } catch (e) {
    return e
  }
  return null
}

describe('record content', () => {
  it('is canonical CBOR of exactly the nine fields and decodes back to them', () => {
    const f = fieldsFor(42, 0)
    const bytes = encodeRecordContent(f)
    const raw = decodeCanonical(bytes) as Record<string, unknown>
    expect(Object.keys(raw).sort()).toEqual(['gateway', 'gatewayKey', 'id', 'manifest', 'receivedAt', 'seq', 'signature', 'stream', 'v'])
    expect(raw.v).toBe(2) // record format v2 (opening encode(P) ‖ s); v1 still decodes
    expect(decodeRecordContent(encodeRecordContent(f, 1)).v).toBe(1)
    const back = decodeRecordContent(bytes)
    expect(back.id).toBe(42)
    expect(back.manifest).toEqual(f.manifest)
    expect(bytesToHex(back.gatewayKey)).toBe(bytesToHex(gw.publicKey))
    // The manifest bytes are what the gateway signed, and give the stream-link commitment.
    expect(commitmentOfManifestBytes(back.manifestBytes)).toBe(manifestCommitment(f.manifest))
    expect(nobleVerify(gw.publicKey, 'batch-manifest', back.manifestBytes, back.signature)).toBe(true)
  })

  it('refuses content whose parts disagree, naming the field', () => {
    const f = fieldsFor(1, 0)
    const other = new TestGatewayKey('someone else')
    const cases: [Partial<RecordFields> | ((o: Record<string, unknown>) => void), string][] = [
      [{ seq: 5 }, 'seq'],
      [{ stream: 'ffffffffffffffffffffffffffffffff' }, 'stream'],
      [{ gateway: other.id }, 'gateway'],
      [{ gatewayKey: other.publicKey }, 'gatewayKey'],
      [(o) => void (o.extra = 1), '$'],
      [(o) => void delete o.receivedAt, '$'],
      [(o) => void (o.v = 3), 'v'],
      [(o) => void (o.v = 0), 'v'],
      [(o) => void ((o.manifest as Record<string, unknown>).count = 0), 'manifest'],
    ]
    for (const [change, field] of cases) {
      let bytes: Uint8Array
      if (typeof change === 'function') {
        const o = decodeCanonical(encodeRecordContent(f)) as Record<string, unknown>
        o.manifest = { ...(o.manifest as object) }
        change(o)
        bytes = encodeCanonical(o)
      } else bytes = encodeRecordContent({ ...f, ...change })
      const e = errorOf(() => decodeRecordContent(bytes))
      expect(isCareLedgerError(e, 'INVALID_ENCODING'), `${field}: ${String(e)}`).toBe(true)
      expect((e as { info: { reason: string; field: string } }).info).toMatchObject({ reason: 'RECORD_CONTENT', field })
    }
    // A stream id that is not the one of (gateway, device, patient), in the content and its manifest
    // alike, after a good record of that triple (whose id the decoder remembers) and again.
    expect(decodeRecordContent(encodeRecordContent(f)).stream).toBe(stream.id)
    const forged = decodeCanonical(encodeRecordContent(f)) as Record<string, unknown>
    forged.stream = 'ffffffffffffffffffffffffffffffff'
    forged.manifest = { ...(forged.manifest as object), stream: forged.stream }
    for (let i = 0; i < 2; i++) {
      const e = errorOf(() => decodeRecordContent(encodeCanonical(forged)))
      expect((e as { info: { reason: string; field: string } }).info).toMatchObject({ reason: 'RECORD_CONTENT', field: 'stream' })
      expect((e as Error).message).toContain('is not the stream id of (gateway, device, patient)')
    }
    // Not exactly one canonical CBOR item: trailing bytes are refused.
    const good = encodeRecordContent(f)
    expect(isCareLedgerError(errorOf(() => decodeRecordContent(Uint8Array.of(...good, 0))), 'INVALID_ENCODING')).toBe(true)
  })

  it('the commitment is a chameleon hash of the content under the regulator key', () => {
    const f = fieldsFor(3, 0)
    const c = commitRecord(keys.chameleon.publicKey, f)
    expect(c.hash).toHaveLength(32)
    expect(c.opening).toHaveLength(64)
    expect(bytesToHex(c.content)).toBe(bytesToHex(encodeRecordContent(f)))
    expect(chameleonVerify(keys.chameleon.publicKey, c.content, c.hash, c.opening)).toBe(true)
    // Fresh randomness each time: same content, different hash.
    expect(bytesToHex(commitRecord(keys.chameleon.publicKey, f).hash)).not.toBe(bytesToHex(c.hash))
  })

  it('a row passes every record check, and each kind of damage is named', () => {
    expect(checkRecordRow(rowFor(10, 0, 2), keys.chameleon.publicKey)).toEqual([])
    const row = rowFor(10, 0, 2)
    const kinds = (r: RecordRow) => checkRecordRow(r, keys.chameleon.publicKey).map((f) => [f.kind, f.recordId, f.height])
    const flip = (b: Uint8Array, i: number) => {
      const c = b.slice()
      c[i]! ^= 1
      return c
    }
    expect(kinds({ ...row, opening: flip(row.opening, 5) })).toEqual([['RECORD_OPENING', 10, 2]])
    expect(kinds({ ...row, hash: flip(row.hash, 0) })).toEqual([['RECORD_OPENING', 10, 2]])
    expect(kinds({ ...row, cid: 'bafkreisomethingelseentirelyxxxxx' })).toEqual([['RECORD_CONTENT', 10, 2]])
    // A byte of the signature inside the content: the opening no longer opens it, and the signature fails.
    const at = bytesToHex(row.content).indexOf(bytesToHex(fieldsFor(10, 0).signature)) / 2
    expect(kinds({ ...row, content: flip(row.content, at + 3) })).toEqual([
      ['RECORD_OPENING', 10, 2],
      ['MANIFEST_SIGNATURE', 10, 2],
    ])
    // Garbage content: the opening fails and the content does not decode.
    expect(kinds({ ...row, content: Uint8Array.of(1, 2, 3) })).toEqual([
      ['RECORD_OPENING', 10, 2],
      ['RECORD_CONTENT', 10, 2],
    ])
  })
})

describe('admission of an upload', () => {
  it('accepts a well-formed signed batch and refuses each broken part with a reason', () => {
    const b = stream.batch(0)
    const a = admitBatch(b)
    expect(a.commitment).toBe(manifestCommitment(b.manifest))
    const reason = (input: unknown) => (errorOf(() => admitBatch(input as never)) as { info?: { reason?: string } })?.info?.reason
    const other = new TestGatewayKey('admission other')
    expect(reason({ ...b, signature: b.signature.map((x, i) => (i === 0 ? x ^ 1 : x)) })).toBe('MANIFEST_SIGNATURE')
    expect(reason({ ...b, signature: b.signature.subarray(1) })).toBe('SIGNATURE_ENCODING')
    expect(reason({ ...b, gatewayKey: other.publicKey })).toBe('GATEWAY_KEY_MISMATCH')
    expect(reason({ ...b, gatewayKey: new Uint8Array(32) })).toBe('GATEWAY_KEY')
    expect(reason({ ...b, receivedAt: -1 })).toBe('RECEIVED_AT')
    expect(reason({ ...b, manifest: { ...b.manifest, count: 0 } })).toBe('SCHEMA')
    // A validly signed manifest naming someone else's stream id.
    const foreign = { ...b.manifest, stream: new TestStream(other, 'bed-07', 'x').id }
    expect(reason({ ...b, manifest: foreign, signature: gw.sign(foreign) })).toBe('STREAM_ID')
  })
})

describe('blocks', () => {
  const records = [rowFor(7, 0), rowFor(8, 1), rowFor(9, 2)]
  const block = makeBlock({
    height: 3,
    prevHash: sha256(new TextEncoder().encode('block 2')),
    time: 1_760_000_000_000,
    records: records.map((r) => ({ id: r.id, hash: r.hash })),
    chameleonKeyId: chameleonKeyId(keys.chameleon.publicKey),
    signerKeyId: signingKeyId(keys.signing.publicKey),
    signingSecretKey: keys.signing.secretKey,
  })

  it('header v2: canonical CBOR of the eleven fields (v1\'s ten and the redaction log state); hash = SHA-256 of those bytes', () => {
    expect(Object.keys(decodeCanonical(block.bytes) as object).sort()).toEqual(['chameleonKey', 'count', 'first', 'height', 'last', 'prev', 'recordsRoot', 'redactions', 'signer', 'time', 'v'])
    expect(block.header).toMatchObject({ v: 2, height: 3, count: 3, first: 7, last: 9, redactions: { count: 0, head: '0'.repeat(64) } })
    expect(decodeBlockHeader(block.bytes)).toEqual(block.header)
    expect(bytesToHex(encodeBlockHeader(block.header))).toBe(bytesToHex(block.bytes))
    expect(bytesToHex(block.hash)).toBe(bytesToHex(sha256(block.bytes)))
    expect(bytesToHex(blockHash(block.bytes))).toBe(bytesToHex(block.hash))
  })

  it('records root: RFC 9162 over the chameleon hashes as leaves, in id order', () => {
    const L = records.map((r) => sha256(Uint8Array.of(0, ...r.hash)))
    const node = (a: Uint8Array, b: Uint8Array) => sha256(Uint8Array.of(1, ...a, ...b))
    const expected = node(node(L[0]!, L[1]!), L[2]!) // RFC 9162 §2.1.1: split at the largest power of two < 3
    expect(block.header.recordsRoot).toBe(bytesToHex(expected))
    expect(bytesToHex(recordsRoot(records.map((r) => r.hash)))).toBe(bytesToHex(expected))
    expect(bytesToHex(recordsRoot([records[1]!.hash, records[0]!.hash, records[2]!.hash]))).not.toBe(bytesToHex(expected))
    const tree = MerkleTree.fromLeaves(records.map((r) => r.hash))
    expect(verifyInclusion(leafHash(records[2]!.hash), 2, 3, tree.inclusionProof(2), expected)).toBe(true)
  })

  it('signature: Ed25519 by the cloud over the header bytes, domain block-header', () => {
    expect(verifyBlockSignature(keys.signing.publicKey, block.bytes, block.signature)).toBe(true)
    expect(nobleVerify(keys.signing.publicKey, BLOCK_DOMAIN, block.bytes, block.signature)).toBe(true)
    const other = block.bytes.slice()
    other[other.length - 1]! ^= 1
    expect(verifyBlockSignature(keys.signing.publicKey, other, block.signature)).toBe(false)
    expect(verifyBlockSignature(generateSigningKey().publicKey, block.bytes, block.signature)).toBe(false)
    expect(nobleVerify(keys.signing.publicKey, 'batch-manifest', block.bytes, block.signature)).toBe(false)
  })

  it('refuses empty blocks, gaps in the ids and malformed headers', () => {
    const base = { height: 0, prevHash: null, time: 1, chameleonKeyId: '0011223344556677', signerKeyId: '8899aabbccddeeff', signingSecretKey: keys.signing.secretKey }
    expect(isCareLedgerError(errorOf(() => makeBlock({ ...base, records: [] })), 'INVALID_ARGUMENT')).toBe(true)
    expect(isCareLedgerError(errorOf(() => makeBlock({ ...base, records: [records[0]!, records[2]!] })), 'INVALID_ARGUMENT')).toBe(true)
    const h = { ...block.header }
    const empty = sha256(new Uint8Array(0))
    const { redactions: _state, ...v1Fields } = block.header as typeof block.header & { redactions: unknown }
    for (const bad of [
      { ...h, extra: 1 },
      { ...h, prev: null },
      { ...h, count: 4 },
      { ...h, v: 1 }, // v1 has no redactions field
      { ...h, v: 3 },
      { ...h, height: 0 },
      { ...h, redactions: { count: 0, head: 'ab'.repeat(32) } },
      { ...h, redactions: { count: 1, head: '0'.repeat(64) } },
      { ...h, redactions: { count: 1 } },
      { ...h, count: 0, last: 6 }, // no records, but the root of three
      { ...v1Fields, v: 1, count: 0, last: 6, recordsRoot: bytesToHex(empty) }, // v1 never empty
    ]) {
      expect(isCareLedgerError(errorOf(() => decodeBlockHeader(encodeCanonical(bad))), 'INVALID_ENCODING')).toBe(true)
    }
  })
})

describe('blocks: versions and the redaction log state', () => {
  const records = [rowFor(7, 0), rowFor(8, 1)]
  const base = {
    height: 3,
    prevHash: sha256(new TextEncoder().encode('block 2')),
    time: 1_760_000_000_000,
    chameleonKeyId: chameleonKeyId(keys.chameleon.publicKey),
    signerKeyId: signingKeyId(keys.signing.publicKey),
    signingSecretKey: keys.signing.secretKey,
  }
  const state = { count: 2, head: bytesToHex(sha256(new TextEncoder().encode('log head'))) }

  it('version 1 (chains sealed before the log was committed) still encodes, decodes and verifies with its ten fields', () => {
    const b = makeBlock({ ...base, records: records.map((r) => ({ id: r.id, hash: r.hash })), version: 1 })
    expect(Object.keys(decodeCanonical(b.bytes) as object)).not.toContain('redactions')
    expect(decodeBlockHeader(b.bytes)).toEqual(b.header)
    expect(b.header.v).toBe(1)
    expect(verifyBlockSignature(keys.signing.publicKey, b.bytes, b.signature)).toBe(true)
  })

  it('version 2 commits the log state; a different state is a different block hash', () => {
    const a = makeBlock({ ...base, records: records.map((r) => ({ id: r.id, hash: r.hash })), redactions: state })
    const b = makeBlock({ ...base, records: records.map((r) => ({ id: r.id, hash: r.hash })), redactions: { ...state, count: 3 } })
    expect(a.header).toMatchObject({ v: 2, redactions: state })
    expect(bytesToHex(a.hash)).not.toBe(bytesToHex(b.hash))
    expect(decodeBlockHeader(a.bytes)).toEqual(a.header)
  })

  it('a v2 block may hold no records (only the log moved): count 0, first = last + 1, the empty-tree root', () => {
    const b = makeBlock({ ...base, records: [], nextRecord: 10, redactions: state })
    expect(b.header).toMatchObject({ v: 2, count: 0, first: 10, last: 9, recordsRoot: bytesToHex(sha256(new Uint8Array(0))) })
    expect(decodeBlockHeader(b.bytes)).toEqual(b.header)
    expect(isCareLedgerError(errorOf(() => makeBlock({ ...base, records: [], redactions: state })), 'INVALID_ARGUMENT')).toBe(true)
    expect(isCareLedgerError(errorOf(() => makeBlock({ ...base, records: [], nextRecord: 10, version: 1 })), 'INVALID_ARGUMENT')).toBe(true)
  })
})

describe('redaction: the chameleon commitment survives a trapdoor adaptation', () => {
  it('a new content with the adapted opening verifies under the same hash; the block is untouched', () => {
    const row = rowFor(20, 0)
    const block = makeBlock({
      height: 0,
      prevHash: null,
      time: 1,
      records: [{ id: row.id, hash: row.hash }],
      chameleonKeyId: chameleonKeyId(keys.chameleon.publicKey),
      signerKeyId: signingKeyId(keys.signing.publicKey),
      signingSecretKey: keys.signing.secretKey,
    })
    const corrected = encodeRecordContent({ ...fieldsFor(20, 0), receivedAt: row.receivedAt - 3_600_000 })
    const opening = chameleonAdapt(keys.chameleon.secretKey, corrected, row.hash)
    expect(chameleonVerify(keys.chameleon.publicKey, corrected, row.hash, opening)).toBe(true)
    // Stored together (content, opening, and the indexed receivedAt column): every record check passes.
    expect(checkRecordRow({ ...row, content: corrected, opening, receivedAt: row.receivedAt - 3_600_000 }, keys.chameleon.publicKey)).toEqual([])
    // Only the content changed (old opening): the opening check names the record.
    expect(checkRecordRow({ ...row, content: corrected, receivedAt: row.receivedAt - 3_600_000 }, keys.chameleon.publicKey).map((f) => f.kind)).toEqual(['RECORD_OPENING'])
    // The block committed to the hash only: same root, same header, same block hash.
    expect(block.header.recordsRoot).toBe(bytesToHex(recordsRoot([row.hash])))
    expect(bytesToHex(blockHash(encodeBlockHeader(block.header)))).toBe(bytesToHex(block.hash))
  })
})
