/**
 * shared/protocol/request-signing.ts (version 2), the signer the gateway's sync client uses and
 * the verifier the cloud uses: the exact bytes signed (docs/api.md §Signed requests), header
 * parsing, what a signature is bound to, and the clear refusal of a version 1 signature.
 */
import { describe, expect, it } from 'vitest'
import { createHash } from 'node:crypto'
import { generateSigningKey, signingKeyId, verify } from '../../shared/crypto/sign.ts'
import { deterministicRng } from '../../shared/crypto/random.ts'
import {
  bodyMatches,
  contentDigest,
  isFreshRequest,
  readRequestCredentials,
  requestSigningPayload,
  signRequest,
  verifyRequestSignature,
  type SignedFields,
} from '../../shared/protocol/request-signing.ts'

const gw = generateSigningKey(deterministicRng('request signing test'))
const gatewayId = signingKeyId(gw.publicKey)
const body = new TextEncoder().encode('{"batches":[]}')
const req = { method: 'POST', path: '/v1/batches/bulk', body, timestamp: 1795600800000, nonce: '0123456789abcdef0123456789abcdef' }
const fields = (r: typeof req): SignedFields => ({ method: r.method, path: r.path, gatewayId, timestamp: r.timestamp, nonce: r.nonce, contentLength: r.body.length, contentDigest: contentDigest(r.body) })
const lower = (h: Record<string, string>) => Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), v]))

describe('request signing, version 2', () => {
  it('Content-Digest is RFC 9530 sha-256 of the exact body (also of the empty body)', () => {
    expect(contentDigest(body)).toBe(`sha-256=:${createHash('sha256').update(body).digest('base64')}:`)
    expect(contentDigest(new Uint8Array(0))).toBe('sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:')
  })

  it('signs seven lines: METHOD, target, gateway, timestamp, nonce, length, digest — under "careledger/v1/api-request/v2" ‖ 0x00', () => {
    const payload = requestSigningPayload({ ...fields(req), method: 'post' })
    expect(new TextDecoder().decode(payload)).toBe(`POST\n/v1/batches/bulk\n${gatewayId}\n1795600800000\n${req.nonce}\n14\nsha-256=:${createHash('sha256').update(body).digest('base64')}:`)
    const h = signRequest(gw.secretKey, req)
    const sig = new Uint8Array(Buffer.from(h['CareLedger-Signature'], 'base64'))
    // What a curl + openssl client signs (docs/api.md): the prefix, a NUL, the lines.
    const signed = Buffer.concat([Buffer.from('careledger/v1/api-request/v2\0'), payload])
    expect(signed.subarray(0, 29).toString()).toBe('careledger/v1/api-request/v2\0')
    expect(verify(gw.publicKey, 'api-request/v2', payload, sig)).toBe(true)
  })

  it('the known answer of docs/api.md §Signing with curl and openssl', () => {
    const seed = Uint8Array.from({ length: 32 }, (_, i) => i)
    expect(signRequest(seed, { method: 'GET', path: '/v1/gateways/self/instructions', timestamp: 1795600800000, nonce: '000102030405060708090a0b0c0d0e0f' })).toEqual({
      'CareLedger-Signature-Version': '2',
      'CareLedger-Gateway': '56475aa75463474c',
      'CareLedger-Timestamp': '1795600800000',
      'CareLedger-Nonce': '000102030405060708090a0b0c0d0e0f',
      'CareLedger-Signature': 'f4S1QFCMjvyTJKerBCZDgTolXmmxyyrncIha+TjV8cnIWiBCcr2PFN5R05WvUUGGZjDD65EyPFhmIk1nwc6hCQ==',
      'Content-Digest': 'sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:',
    })
  })

  it('produces the six headers, and the cloud side reads and verifies them from the headers alone', () => {
    const headers = signRequest(gw.secretKey, req)
    expect(headers).toEqual({
      'CareLedger-Signature-Version': '2',
      'CareLedger-Gateway': gatewayId,
      'CareLedger-Timestamp': '1795600800000',
      'CareLedger-Nonce': req.nonce,
      'CareLedger-Signature': expect.stringMatching(/^[A-Za-z0-9+/]{86}==$/),
      'Content-Digest': contentDigest(body),
    })
    const creds = readRequestCredentials({ ...lower(headers), 'content-length': String(body.length) })
    expect(creds).toMatchObject({ gatewayId, timestamp: req.timestamp, nonce: req.nonce, contentLength: 14, contentDigest: contentDigest(body) })
    const { signature, ...rest } = creds
    expect(verifyRequestSignature(gw.publicKey, { method: 'POST', path: req.path, ...rest }, signature)).toBe(true)
    expect(bodyMatches(body, creds)).toBe(true)
    expect(bodyMatches(new TextEncoder().encode('{"batches":[1]}'), creds)).toBe(false)
  })

  it('binds method, target with query, gateway, timestamp, nonce, length and digest', () => {
    const { signature } = readRequestCredentials(signRequest(gw.secretKey, req))
    const f = fields(req)
    const changed: SignedFields[] = [
      { ...f, method: 'PUT' },
      { ...f, path: '/v1/batches' },
      { ...f, path: '/v1/batches/bulk?x=1' },
      { ...f, gatewayId: 'ff'.repeat(8) },
      { ...f, timestamp: req.timestamp + 1 },
      { ...f, nonce: 'f'.repeat(32) },
      { ...f, contentLength: 15 },
      { ...f, contentDigest: contentDigest(new Uint8Array(0)) },
    ]
    expect(verifyRequestSignature(gw.publicKey, f, signature)).toBe(true)
    for (const c of changed) expect(verifyRequestSignature(gw.publicKey, c, signature)).toBe(false)
    expect(verifyRequestSignature(generateSigningKey().publicKey, f, signature)).toBe(false)
    // A target with a line break cannot smuggle extra payload lines: it does not verify.
    expect(verifyRequestSignature(gw.publicKey, { ...f, path: '/v1/batches/bulk\nPOST' }, signature)).toBe(false)
  })

  it('fresh nonces and the current time by default', () => {
    const a = signRequest(gw.secretKey, { method: 'GET', path: '/v1/gateways/self/instructions' })
    const b = signRequest(gw.secretKey, { method: 'GET', path: '/v1/gateways/self/instructions' })
    expect(a['CareLedger-Nonce']).not.toBe(b['CareLedger-Nonce'])
    expect(isFreshRequest(Number(a['CareLedger-Timestamp']), Date.now())).toBe(true)
    expect(isFreshRequest(Date.now() - 300_001, Date.now())).toBe(false)
  })

  it('names the header that is missing, repeated or malformed; a version 1 signature is refused as such', () => {
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
    expect(problem({ ...good, 'Content-Digest': 'sha-512=:AAAA:' })).toEqual({ header: 'Content-Digest', reason: 'MALFORMED' })
    expect(problem({ ...good, 'Content-Digest': undefined })).toEqual({ header: 'Content-Digest', reason: 'MISSING' })
    expect(problem({ ...good, 'transfer-encoding': 'chunked' })).toEqual({ header: 'Transfer-Encoding', reason: 'MALFORMED' })
    expect(problem({ ...good, 'content-length': '1e3' })).toEqual({ header: 'Content-Length', reason: 'MALFORMED' })
    // An older gateway: the four version 1 headers, no version header.
    const v1 = { 'CareLedger-Gateway': gatewayId, 'CareLedger-Timestamp': '1795600800000', 'CareLedger-Nonce': req.nonce, 'CareLedger-Signature': good['CareLedger-Signature'] }
    expect(problem(v1)).toEqual({ header: 'CareLedger-Signature-Version', reason: 'VERSION', version: 1 })
    expect(problem({ ...good, 'CareLedger-Signature-Version': '3' })).toEqual({ header: 'CareLedger-Signature-Version', reason: 'VERSION', version: 3 })
  })
})
