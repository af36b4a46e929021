/**
 * Fuzzing the real cloud process over HTTP (issue 8, "What must be shown"): fast-check generates
 * bodies — CBOR (well-formed, deeply nested, with huge declared lengths, indefinite lengths, tags,
 * floats), JSON (deep, huge numbers, odd Unicode), raw bytes, and mutations of a valid upload — and
 * sends them to every public route, signed correctly (so they reach the parsers behind the
 * signature), unsigned and badly signed; plus malformed HTTP over raw TCP. Properties:
 *
 *   - the process never dies;
 *   - every input gets an answer, and every refusal is the API's error model
 *     {"error": {"code", "message", "details"}} with a documented code — never a 500;
 *   - memory stays within budget (the process's peak RSS, VmHWM).
 *
 * Short in CI (CARELEDGER_FUZZ_RUNS, default 40 runs per property); longer with e.g.
 * CARELEDGER_FUZZ_RUNS=2000 npx vitest run test/cloud/fuzz-http.test.ts. A failure prints
 * fast-check's seed and shrunk counterexample (replay with CARELEDGER_FUZZ_SEED).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { encode as cborEncode } from 'cborg'
import { bytesToHex } from '@noble/hashes/utils.js'
import { signRequest } from '../../shared/protocol/request-signing.ts'
import { API_ERROR_STATUS } from '../../cloud/service/errors.ts'
import type { SealedBatch } from '../../gateway/seal/seal.ts'
import { bulkBody, batchBody, sealChain, testGateway, testStream, type TestGateway } from '../helpers/cloud-batches.ts'
import { CloudProcess, careledger, tempDataDir } from '../helpers/cloud-process.ts'
import { peakRssBytes, rawRequest } from '../helpers/http-attacks.ts'

const RUNS = Number(process.env.CARELEDGER_FUZZ_RUNS ?? 40)
const SEED = process.env.CARELEDGER_FUZZ_SEED ? Number(process.env.CARELEDGER_FUZZ_SEED) : undefined
/** The cloud's peak RSS under the fuzzer must stay below this (idle it is ~150–220 MB). */
const RSS_BUDGET = 384 * 1024 * 1024
const params = { numRuns: RUNS, ...(SEED !== undefined ? { seed: SEED } : {}), endOnFailure: true }
const CODES = new Set(Object.keys(API_ERROR_STATUS))

let data: ReturnType<typeof tempDataDir>
let cloud: CloudProcess
let gw: TestGateway
let valid: SealedBatch[]
let validBulk: Uint8Array
let adminToken: string

beforeAll(async () => {
  data = tempDataDir('cloud-fuzz')
  cloud = await CloudProcess.start({ dataDir: data.dir, args: ['--block-interval-s', '0.2', '--verify-interval-s', '0', '--scrub-interval-s', '5'], env: { CARELEDGER_LOG_LEVEL: 'info' } })
  gw = testGateway()
  const invite = JSON.parse((await careledger(['cloud', 'gateway', 'invite', '--name', 'fuzz', '--json', '--data', data.dir])).stdout).token
  const reg = await fetch(`${cloud.url}/v1/gateways/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: invite, publicKey: bytesToHex(gw.publicKey), name: 'fuzz' }) })
  expect(reg.status).toBe(201)
  adminToken = JSON.parse((await careledger(['cloud', 'token', 'create', '--role', 'admin', '--name', 'fuzz-admin', '--json', '--data', data.dir])).stdout).token
  valid = await sealChain(testStream(gw), 3)
  validBulk = await bulkBody(valid)
}, 60_000)

afterAll(async () => {
  await cloud?.stop()
  data?.cleanup()
})

// ── what every answer must be ─────────────────────────────────────────────────────────────────
async function checkAnswer(res: Response, what: string): Promise<void> {
  const text = await res.text()
  expect(res.status, `${what}: ${res.status} ${text.slice(0, 300)}`).toBeLessThan(500 + (res.status === 503 ? 1 : 0))
  if (res.status >= 400) {
    let body: { error?: { code?: unknown; message?: unknown; details?: unknown } }
    try {
      body = JSON.parse(text)
    } catch {
      throw new Error(`${what}: ${res.status} is not JSON: ${text.slice(0, 200)}`)
    }
    expect(CODES.has(String(body.error?.code)), `${what}: code ${String(body.error?.code)}`).toBe(true)
    expect(typeof body.error?.message === 'string' && body.error.message.length > 0, `${what}: message`).toBe(true)
    expect(typeof body.error?.details, `${what}: details`).toBe('object')
  }
  expect(cloud.child!.exitCode, 'the cloud process died').toBeNull()
}

// ── bodies ────────────────────────────────────────────────────────────────────────────────────
const cborValue: fc.Arbitrary<unknown> = fc.letrec<{ v: unknown }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.bigInt({ min: -(2n ** 64n) + 1n, max: 2n ** 64n - 1n }),
    fc.double(),
    fc.string({ unit: 'binary', maxLength: 40 }),
    fc.uint8Array({ maxLength: 200 }),
    fc.array(tie('v'), { maxLength: 5 }),
    fc.dictionary(fc.oneof(fc.constantFrom('manifest', 'signature', 'car', 'batches', 'v', 'policy', 'cid', 'size'), fc.string({ maxLength: 10 })), tie('v'), { maxKeys: 5 }),
  ),
})).v

/** CBOR that an encoder would not produce: deep nesting, lying lengths, indefinite lengths, tags, reserved bytes. */
const hostileCbor: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.integer({ min: 1, max: 20_000 }).map((n) => new Uint8Array([...new Array(n).fill(0x81), 0x00])),
  fc.integer({ min: 1, max: 5_000 }).map((n) => new Uint8Array(Array.from({ length: n }, () => [0xa1, 0x61, 0x61]).flat().concat([0x00]))),
  fc.constantFrom(
    new Uint8Array([0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), // a byte string of 2^64−1 bytes
    new Uint8Array([0x9b, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00]), // an array of 2^32 items
    new Uint8Array([0xbb, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), // a map of 2^63−1 pairs
    new Uint8Array([0x9f, 0x9f, 0x9f, 0xff]), // unterminated indefinite arrays
    new Uint8Array([0x5f, 0x41, 0x00, 0x61, 0x61, 0xff]), // an indefinite byte string with a text chunk
    new Uint8Array([0xc2, 0x49, 0x01, 0, 0, 0, 0, 0, 0, 0, 0]), // a bignum tag
    new Uint8Array([0xd9, 0xd9, 0xf7, 0xa0]), // the self-describe tag
    new Uint8Array([0x1c]), // reserved additional information
    new Uint8Array([0xf8, 0x00]), // a two-byte simple value below 32
    new Uint8Array([0xa2, 0x61, 0x61, 0x00, 0x61, 0x61, 0x01]), // a repeated map key
    new Uint8Array([0x7f, 0x61, 0xff]), // a broken indefinite text string
    new Uint8Array([0x62, 0xc3, 0x28]), // invalid UTF-8 in a text string
  ),
  fc.tuple(fc.uint8Array({ minLength: 1, maxLength: 64 }), fc.integer({ min: 0, max: 31 })).map(([b, x]) => new Uint8Array([0x40 | x, ...b])),
)

const jsonBody: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.json({ maxDepth: 4 }).map((s) => new TextEncoder().encode(s)),
  fc.integer({ min: 1, max: 20_000 }).map((n) => new TextEncoder().encode('['.repeat(n) + ']'.repeat(n))),
  fc.integer({ min: 1, max: 20_000 }).map((n) => new TextEncoder().encode('{"a":'.repeat(n) + '1' + '}'.repeat(n))),
  fc.constantFrom('1e999999', '-0', '"\\ud800"', '\ufeff{"status":"done"}', '{"status":"done","status":"failed"}', '{"token":"cle_x","publicKey":"zz","name":"<script>"}', 'null', '').map((s) => new TextEncoder().encode(s)),
  fc.record({ status: fc.oneof(fc.constantFrom('done', 'failed', 'unsupported'), fc.string()), detail: fc.option(fc.string({ maxLength: 600 }), { nil: undefined }) }).map((o) => new TextEncoder().encode(JSON.stringify(o))),
  fc.record({ token: fc.string(), publicKey: fc.string(), name: fc.string() }, { requiredKeys: [] }).map((o) => new TextEncoder().encode(JSON.stringify(o))),
)

/** A valid upload with a few bytes flipped, cut or added: deep inside the CBOR, the CAR, the envelope. */
const mutatedUpload = (base: () => Uint8Array): fc.Arbitrary<Uint8Array> =>
  fc.tuple(fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { minLength: 1, maxLength: 4 }), fc.option(fc.nat(), { nil: undefined })).map(([flips, cut]) => {
    const b = new Uint8Array(base())
    for (const [at, x] of flips) b[at % b.length]! ^= x
    return cut === undefined ? b : b.subarray(0, cut % b.length)
  })

const body: fc.Arbitrary<Uint8Array> = fc.oneof(
  cborValue.map((v) => {
    try {
      return cborEncode(v as never)
    } catch {
      return new Uint8Array([0xf6])
    }
  }),
  hostileCbor,
  jsonBody,
  fc.uint8Array({ maxLength: 4096 }),
  mutatedUpload(() => validBulk),
)

// ── routes ────────────────────────────────────────────────────────────────────────────────────
const cidLike = fc.oneof(fc.constant('bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy'), fc.string({ maxLength: 60 }).map(encodeURIComponent), fc.constant('%00'), fc.constant('..%2F..%2Fetc'))
const signedRoute = fc.oneof(
  fc.constantFrom(['POST', '/v1/batches'], ['POST', '/v1/batches/bulk'], ['GET', '/v1/gateways/self/instructions']),
  fc.tuple(fc.constant('PUT'), cidLike.map((c) => `/v1/envelopes/${c}`)),
  fc.tuple(fc.constant('POST'), fc.oneof(fc.nat().map(String), fc.string({ maxLength: 20 }).map(encodeURIComponent)).map((id) => `/v1/gateways/self/instructions/${id}/ack`)),
)
const contentType = fc.constantFrom('application/cbor', 'application/json', 'application/octet-stream', 'text/plain', 'application/cbor; charset=utf-8', 'multipart/form-data; boundary=x')

describe('the cloud under fuzzed HTTP', () => {
  it('signed requests with fuzzed bodies reach the parsers and get clear refusals', async () => {
    await fc.assert(
      fc.asyncProperty(signedRoute, body, contentType, async ([method, path], b, type) => {
        const withBody = method !== 'GET'
        const headers: Record<string, string> = { ...signRequest(gw.secretKey, { method, path, ...(withBody ? { body: b } : {}) }), 'content-type': type }
        const res = await fetch(`${cloud.url}${path}`, { method, headers, ...(withBody ? { body: b } : {}) })
        await checkAnswer(res, `signed ${method} ${path} (${b.length} bytes, ${type})`)
      }),
      params,
    )
  }, 300_000)

  it('mutated valid uploads: every batch judged on its own, never a 500', async () => {
    const single = await batchBody(valid[0]!)
    await fc.assert(
      fc.asyncProperty(fc.boolean(), fc.boolean(), async (bulk, _) => {
        const b = fc.sample(mutatedUpload(() => (bulk ? validBulk : single)), 1)[0]!
        const path = bulk ? '/v1/batches/bulk' : '/v1/batches'
        const res = await fetch(`${cloud.url}${path}`, { method: 'POST', headers: { ...signRequest(gw.secretKey, { method: 'POST', path, body: b }), 'content-type': 'application/cbor' }, body: b })
        if (bulk && res.status === 200) {
          const { results } = (await res.json()) as { results: { status: number; error: { code: string } | null }[] }
          for (const r of results) {
            expect(r.status).toBeLessThan(500)
            if (r.status >= 400) expect(CODES.has(r.error!.code)).toBe(true)
          }
        } else await checkAnswer(res, `mutated ${path}`)
      }),
      params,
    )
  }, 300_000)

  it('unsigned, badly signed and half-signed requests are refused with the header named', async () => {
    const headerValue = fc.oneof(fc.string({ maxLength: 120 }).filter((s) => /^[\x20-\x7e]*$/.test(s)), fc.constantFrom('', '2', '1', '0'.repeat(16), gw.gatewayId, String(Date.now()), 'sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:'))
    const names = ['CareLedger-Signature-Version', 'CareLedger-Gateway', 'CareLedger-Timestamp', 'CareLedger-Nonce', 'CareLedger-Signature', 'Content-Digest']
    await fc.assert(
      fc.asyncProperty(signedRoute, body, fc.dictionary(fc.constantFrom(...names), headerValue, { maxKeys: 6 }), fc.boolean(), async ([method, path], b, fuzzed, startSigned) => {
        const withBody = method !== 'GET'
        const base: Record<string, string> = startSigned ? { ...signRequest(gw.secretKey, { method, path, ...(withBody ? { body: b } : {}) }) } : {}
        const headers = { ...base, ...fuzzed, 'content-type': 'application/cbor' }
        const res = await fetch(`${cloud.url}${path}`, { method, headers, ...(withBody ? { body: b } : {}) })
        await checkAnswer(res, `fuzz-signed ${method} ${path}`)
      }),
      params,
    )
  }, 300_000)

  it("people's routes and registration: fuzzed paths, queries, tokens and JSON bodies", async () => {
    const peoplePath = fc.oneof(
      fc.constantFrom('/v1/records', '/v1/streams', '/v1/blocks', '/v1/stats', '/v1/gateways', '/v1/chain/verification', '/v1/envelopes/damaged', '/metrics', '/v1/openapi.json', '/healthz', '/', '/console/console.js'),
      fc.tuple(fc.constantFrom('/v1/records/', '/v1/blocks/', '/v1/records/1/'), fc.string({ maxLength: 30 }).map(encodeURIComponent)).map(([a, b]) => a + b),
      fc.tuple(fc.constantFrom('/v1/records', '/v1/blocks'), fc.dictionary(fc.constantFrom('after', 'limit', 'stream', 'x'), fc.oneof(fc.string({ maxLength: 30 }), fc.integer().map(String)), { maxKeys: 3 })).map(
        ([p, q]) => `${p}?${new URLSearchParams(q).toString()}`,
      ),
    )
    const token = fc.oneof(fc.constant(adminToken), fc.constant(''), fc.string({ maxLength: 60 }).filter((s) => /^[\x21-\x7e]*$/.test(s)).map((s) => `Bearer ${s}`), fc.constant(`Bearer ${adminToken}x`))
    await fc.assert(
      fc.asyncProperty(fc.oneof(peoplePath.map((p) => ({ p, post: false })), fc.constant({ p: '/v1/gateways/register', post: true })), token, jsonBody, contentType, async ({ p, post }, t, b, type) => {
        const auth = t === adminToken ? `Bearer ${t}` : t
        const res = await fetch(`${cloud.url}${p}`, { method: post ? 'POST' : 'GET', headers: { ...(auth ? { authorization: auth } : {}), ...(post ? { 'content-type': type } : {}) }, ...(post ? { body: b } : {}) })
        await checkAnswer(res, `${post ? 'POST' : 'GET'} ${p}`)
      }),
      params,
    )
  }, 300_000)

  it('malformed HTTP over raw TCP is answered in the error model (or the connection closed), never a crash', async () => {
    const line = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 200 }).map((s) => s.replace(/\r\n\r\n/g, '')),
      fc.constantFrom('GET / HTTP/9.9', 'POST /v1/batches HTTP/1.1\r\nContent-Length: -1', 'POST /v1/batches HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2', 'POST /v1/batches HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5', 'GET /\x00 HTTP/1.1', `GET /${'a'.repeat(20_000)} HTTP/1.1`, `GET / HTTP/1.1\r\nX: ${'b'.repeat(20_000)}`),
    )
    await fc.assert(
      fc.asyncProperty(line, async (l) => {
        const a = await rawRequest(cloud.port, [l, 'Host: 127.0.0.1'], { timeoutMs: 15_000 })
        if (a.status !== null && a.status >= 400) {
          const parsed = JSON.parse(a.body) as { error: { code: string } }
          expect(CODES.has(parsed.error.code), a.body).toBe(true)
        }
        expect(cloud.child!.exitCode).toBeNull()
      }),
      { ...params, numRuns: Math.max(10, Math.round(RUNS / 2)) },
    )
  }, 300_000)

  it('after all that: alive, healthy, no internal error logged, peak RSS within budget', async () => {
    const h = await fetch(`${cloud.url}/healthz`)
    expect(h.status).toBe(200)
    const internal = cloud.logs.filter((l) => l.event === 'internal_error')
    expect(internal, JSON.stringify(internal.slice(0, 3))).toEqual([])
    const peak = peakRssBytes(cloud.pid)
    console.log(`cloud peak RSS under the fuzzer: ${(peak / 2 ** 20).toFixed(0)} MiB (budget ${RSS_BUDGET / 2 ** 20} MiB), ${RUNS} runs per property`)
    expect(peak).toBeLessThan(RSS_BUDGET)
  })
})
