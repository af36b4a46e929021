/**
 * shared/protocol/request-signing.ts, the signer the gateway's sync client uses and the verifier
 * the cloud uses: the exact bytes signed (docs/api.md §Gateways), header parsing, and what a
 * signature is bound to.
 */
import { describe, expect, it } from 'vitest'
import { sha256 } from '@noble/hashes/sha2.js'
import { bytesToHex } from '@noble/hashes/utils.js'
import { decodeCanonical } from '../../shared/encoding/canonical.ts'
import { generateSigningKey, signingKeyId } from '../../shared/crypto/sign.ts'
import { deterministicRng } from '../../shared/crypto/random.ts'
import { isFreshRequest, readRequestCredentials, requestSigningPayload, signRequest, verifyRequestSignature } from '../../shared/protocol/request-signing.ts'

const gw = generateSigningKey(deterministicRng('request signing test'))
const body = new TextEncoder().encode('{"batches":[]}')
const req = { method: 'POST', path: '/v1/batches/bulk', body, timestamp: 1795600800000, nonce: '0123456789abcdef0123456789abcdef' }

describe('request signing', () => {
  it('signs canonical CBOR [METHOD, pathWithQuery, hex(SHA-256(body)), timestamp, nonce]', () => {
    const payload = requestSigningPayload({ ...req, method: 'post' })
    expect(decodeCanonical(payload)).toEqual(['POST', '/v1/batches/bulk', bytesToHex(sha256(body)), 1795600800000, req.nonce])
    expect(bytesToHex(payload)).toBe(
      '85' + '64504f5354' + '70' + Buffer.from('/v1/batches/bulk').toString('hex') + '7840' + Buffer.from(bytesToHex(sha256(body))).toString('hex') + '1b' + req.timestamp.toString(16).padStart(16, '0') + '7820' + Buffer.from(req.nonce).toString('hex'),
    )
  })

  it('produces the four headers, and the cloud side reads and verifies them', () => {
    const headers = signRequest(gw.secretKey, req)
    expect(headers).toEqual({
      'CareLedger-Gateway': signingKeyId(gw.publicKey),
      'CareLedger-Timestamp': '1795600800000',
      'CareLedger-Nonce': req.nonce,
      'CareLedger-Signature': expect.stringMatching(/^[A-Za-z0-9+/]{86}==$/),
    })
    // Node lower-cases header names.
    const lower = Object.fromEntries(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]))
    const creds = readRequestCredentials(lower)
    expect(creds).toMatchObject({ gatewayId: signingKeyId(gw.publicKey), timestamp: req.timestamp, nonce: req.nonce })
    expect(verifyRequestSignature(gw.publicKey, { ...req, timestamp: creds.timestamp, nonce: creds.nonce }, creds.signature)).toBe(true)
  })

  it('binds method, path with query, body, timestamp and nonce', () => {
    const { signature } = readRequestCredentials(signRequest(gw.secretKey, req))
    const changed = [
      { ...req, method: 'PUT' },
      { ...req, path: '/v1/batches' },
      { ...req, path: '/v1/batches/bulk?x=1' },
      { ...req, body: new Uint8Array(0) },
      { ...req, timestamp: req.timestamp + 1 },
      { ...req, nonce: 'f'.repeat(32) },
    ]
    for (const c of changed) expect(verifyRequestSignature(gw.publicKey, c, signature)).toBe(false)
    expect(verifyRequestSignature(generateSigningKey().publicKey, req, signature)).toBe(false)
  })

  it('fresh nonces and the current time by default', () => {
    const a = signRequest(gw.secretKey, { method: 'GET', path: '/v1/streams' })
    const b = signRequest(gw.secretKey, { method: 'GET', path: '/v1/streams' })
    expect(a['CareLedger-Nonce']).not.toBe(b['CareLedger-Nonce'])
    expect(isFreshRequest(Number(a['CareLedger-Timestamp']), Date.now())).toBe(true)
    expect(isFreshRequest(Date.now() - 300_001, Date.now())).toBe(false)
  })

  it('names the header that is missing, repeated or malformed', () => {
    const good = signRequest(gw.secretKey, req)
    const problem = (h: Record<string, string | string[] | undefined>) => {
      try {
        readRequestCredentials(h)
        return null
      } catch (e) {
        return (e as { info: Record<string, unknown> }).info
      }
    }
    expect(problem({})).toEqual({ header: 'CareLedger-Gateway', reason: 'MISSING' })
    expect(problem({ ...good, 'CareLedger-Nonce': 'ABCDEF0123456789ABCDEF0123456789' })).toEqual({ header: 'CareLedger-Nonce', reason: 'MALFORMED' })
    expect(problem({ ...good, 'CareLedger-Timestamp': '1.5e12' })).toEqual({ header: 'CareLedger-Timestamp', reason: 'MALFORMED' })
    expect(problem({ ...good, 'CareLedger-Signature': [good['CareLedger-Signature'], good['CareLedger-Signature']] })).toEqual({ header: 'CareLedger-Signature', reason: 'MALFORMED' })
    expect(problem({ ...good, 'CareLedger-Signature': 'AAAA' })).toEqual({ header: 'CareLedger-Signature', reason: 'MALFORMED' })
  })
})
