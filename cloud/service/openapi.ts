/**
 * The OpenAPI 3.1 description of docs/api.md, served at GET /v1/openapi.json. docs/api.md is
 * normative; this document is its machine-readable summary (paths, credentials, error model).
 */
import type { CloudConfig } from '../config.ts'
import { API_ERROR_STATUS } from './errors.ts'
import { ACCESS, type AccessGroup } from '../access/roles.ts'

const json = (schema: object) => ({ 'application/json': { schema } })
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` })
const error = (description: string) => ({ description, content: json(ref('Error')) })
const hex = (n: number) => ({ type: 'string', pattern: `^[0-9a-f]{${n}}$` })
const int = { type: 'integer' }
const epochMs = { type: 'integer', description: 'epoch milliseconds' }

function people(group: AccessGroup, summary: string, ok: object, extra: object = {}) {
  return {
    summary,
    description: `Roles: ${ACCESS[group].join(', ')}.`,
    security: [{ bearer: [] }],
    ...extra,
    responses: { 200: ok, 401: error('UNAUTHENTICATED'), 403: error('FORBIDDEN'), 400: error('INVALID_REQUEST'), 404: error('NOT_FOUND') },
  }
}

const paging = [
  { name: 'after', in: 'query', schema: int, description: 'cursor: the last id (height) of the previous page' },
  { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 1000, default: 100 } },
]

export function openApiDocument(config: CloudConfig): object {
  const gatewaySigned = {
    security: [{ gatewaySignatureVersion: [], gatewayId: [], gatewayTimestamp: [], gatewayNonce: [], gatewaySignature: [], contentDigest: [] }],
  }
  const signedErrors = {
    401: error('UNAUTHENTICATED, STALE_REQUEST, REPLAYED_REQUEST, UNKNOWN_GATEWAY, BAD_SIGNATURE, BAD_DIGEST or UNSUPPORTED_SIGNATURE'),
    413: error('PAYLOAD_TOO_LARGE (a declared Content-Length beyond the limit; the body is not read)'),
    429: error('TOO_MANY_REQUESTS: this gateway already has its cap of body bytes in flight (Retry-After)'),
    503: error('OVERLOADED: the cloud has its cap of body bytes in flight (Retry-After)'),
  }
  const uploadErrors = {
    400: error('INVALID_REQUEST, INVALID_MANIFEST or INVALID_CAR'),
    ...signedErrors,
  }
  return {
    openapi: '3.1.0',
    info: { title: 'CareLedger cloud API', version: '1', description: 'Normative description: docs/api.md. Batch uploads are canonical CBOR (RFC 8949 §4.2.1), everything else JSON.' },
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'API token clt_… (careledger cloud token create)' },
        gatewaySignatureVersion: { type: 'apiKey', in: 'header', name: 'CareLedger-Signature-Version', description: '2 (docs/api.md §Signed requests)' },
        gatewayId: { type: 'apiKey', in: 'header', name: 'CareLedger-Gateway', description: '16 hex: signingKeyId(gateway public key)' },
        contentDigest: { type: 'apiKey', in: 'header', name: 'Content-Digest', description: 'RFC 9530: sha-256=:<base64 of SHA-256(body)>: (also for an empty body)' },
        gatewayTimestamp: { type: 'apiKey', in: 'header', name: 'CareLedger-Timestamp', description: 'epoch ms; within ±5 min of the cloud clock' },
        gatewayNonce: { type: 'apiKey', in: 'header', name: 'CareLedger-Nonce', description: '32 hex, fresh per request' },
        gatewaySignature: {
          type: 'apiKey',
          in: 'header',
          name: 'CareLedger-Signature',
          description: 'base64 Ed25519 over "careledger/v1/api-request/v2" 0x00 then the lines METHOD, target, gateway, timestamp, nonce, length, Content-Digest joined by LF; checked before the body is read',
        },
      },
      schemas: {
        Error: {
          type: 'object',
          required: ['error'],
          properties: { error: { type: 'object', required: ['code', 'message', 'details'], properties: { code: { enum: Object.keys(API_ERROR_STATUS) }, message: { type: 'string' }, details: { type: 'object' } } } },
        },
        UploadRecord: { type: 'object', properties: { id: int, stream: hex(32), seq: int, commitment: hex(64), block: { type: ['integer', 'null'] } } },
        Record: {
          type: 'object',
          properties: {
            id: int, stream: hex(32), seq: int, gateway: hex(16), device: { type: 'string' }, patient: { type: 'string', pattern: '^p-[0-9a-f]{24}$' },
            from: epochMs, to: epochMs, count: int, types: { type: 'array', items: { type: 'string' } }, cid: { type: 'string' }, policy: { type: 'string' },
            commitment: hex(64), block: { type: ['integer', 'null'] }, receivedAt: epochMs, redacted: { type: 'boolean' },
          },
        },
        Block: {
          type: 'object',
          properties: {
            height: int, hash: hex(64), prev: { type: ['string', 'null'] }, time: epochMs, recordsRoot: hex(64), count: int, firstRecord: int, lastRecord: int, signature: hex(128),
            // Header version 2: the redaction log the block committed to (docs/protocol.md §Chain blocks).
            version: { type: 'integer', enum: [1, 2] }, redactions: { type: 'object', properties: { count: int, head: hex(64) } },
          },
        },
        Stream: {
          type: 'object',
          properties: {
            stream: hex(32), gateway: hex(16), device: { type: 'string' }, patient: { type: 'string' }, batches: int, lastSeq: int,
            ranges: { type: 'array', items: { type: 'array', items: int, minItems: 2, maxItems: 2 } },
            gaps: { type: 'array', items: { type: 'array', items: int, minItems: 2, maxItems: 2 } },
            firstBatchAt: epochMs, lastBatchAt: epochMs,
          },
        },
      },
    },
    paths: {
      '/healthz': { get: { summary: 'Liveness and chain height; no credential', security: [], responses: { 200: { description: 'ok', content: json({ type: 'object' }) }, 503: { description: 'database failing' } } } },
      '/v1/gateways/register': {
        post: {
          summary: 'Redeem a one-time enrolment token (cle_…) for a gateway key',
          security: [],
          requestBody: { required: true, content: json({ type: 'object', required: ['token', 'publicKey', 'name'], properties: { token: { type: 'string' }, publicKey: hex(64), name: { type: 'string' } } }) },
          responses: {
            201: { description: 'registered', content: json({ type: 'object', properties: { gatewayId: hex(16), name: { type: 'string' }, cloud: { type: 'object', properties: { signingKey: hex(64), chameleonKey: hex(64) } } } }) },
            400: error('INVALID_REQUEST'),
            401: error('UNAUTHENTICATED: unknown, used, withdrawn or expired token'),
            409: error('CONFLICT: key or name already registered'),
          },
        },
      },
      '/v1/batches': {
        post: {
          summary: 'Upload one sealed batch',
          ...gatewaySigned,
          requestBody: { required: true, description: `canonical CBOR {manifest, signature, car}; at most ${config.limits.batchBytes} bytes`, content: { 'application/cbor': { schema: { type: 'string', format: 'binary' } } } },
          responses: {
            201: { description: 'created', content: json({ type: 'object', properties: { record: ref('UploadRecord'), duplicate: { const: false } } }) },
            200: { description: 'duplicate: already stored', content: json({ type: 'object', properties: { record: ref('UploadRecord'), duplicate: { const: true } } }) },
            409: error('CONFLICT: another batch holds this (stream, seq), or the stream link is broken; logged as an equivocation'),
            ...uploadErrors,
          },
        },
      },
      '/v1/batches/bulk': {
        post: {
          summary: 'Upload many sealed batches, judged in order',
          ...gatewaySigned,
          requestBody: { required: true, description: `canonical CBOR {batches: [...]}; at most ${config.limits.bulkBatches} batches or ${config.limits.bulkBytes} bytes`, content: { 'application/cbor': { schema: { type: 'string', format: 'binary' } } } },
          responses: {
            200: {
              description: 'one result per batch, in order',
              content: json({ type: 'object', properties: { results: { type: 'array', items: { type: 'object', properties: { status: int, record: { oneOf: [ref('UploadRecord'), { type: 'null' }] }, error: { type: ['object', 'null'] } } } } } }),
            },
            ...uploadErrors,
          },
        },
      },
      '/v1/gateways/self/instructions': {
        get: { summary: "The gateway's pending instructions, signed by the cloud (docs/api.md §Instructions to gateways)", ...gatewaySigned, responses: { 200: { description: 'oldest first, at most 100', content: json({ type: 'object', properties: { instructions: { type: 'array', items: { type: 'object' } } } }) }, ...signedErrors } },
      },
      '/v1/gateways/self/instructions/{id}/ack': {
        post: {
          summary: 'Acknowledge an instruction: done, failed or unsupported (idempotent)',
          ...gatewaySigned,
          parameters: [{ name: 'id', in: 'path', required: true, schema: int }],
          requestBody: { required: true, content: json({ type: 'object', required: ['status'], properties: { status: { enum: ['done', 'failed', 'unsupported'] }, detail: { type: 'string', maxLength: 500 } } }) },
          responses: { 200: { description: 'the state the instruction is in', content: json({ type: 'object' }) }, 400: error('INVALID_REQUEST'), 404: error('NOT_FOUND'), ...signedErrors },
        },
      },
      '/v1/envelopes/{cid}': {
        put: {
          summary: 'A good copy of a damaged or missing envelope block this gateway uploaded',
          ...gatewaySigned,
          parameters: [{ name: 'cid', in: 'path', required: true, schema: { type: 'string' } }],
          requestBody: { required: true, content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } },
          responses: { 200: { description: 'repaired, or already intact', content: json({ type: 'object' }) }, 400: error('INVALID_REQUEST: the bytes do not hash to the CID'), 404: error('NOT_FOUND: no record of this gateway names the CID'), ...signedErrors },
        },
      },
      '/v1/envelopes/damaged': { get: people('verification', 'Envelope blocks the blockstore scrub found damaged, and the repairs', { description: 'ok' }) },
      '/v1/gateways': { get: people('gateways', 'Registered gateways and their last sync', { description: 'ok' }) },
      '/v1/streams': { get: people('streams', 'Streams with held ranges and gaps', { description: 'ok', content: json({ type: 'object', properties: { streams: { type: 'array', items: ref('Stream') } } }) }) },
      '/v1/records': {
        get: people('records', 'Record metadata (never ciphertext or plaintext)', { description: 'ok', content: json({ type: 'object', properties: { records: { type: 'array', items: ref('Record') }, next: { type: ['integer', 'null'] } } }) }, {
          parameters: [{ name: 'stream', in: 'query', schema: hex(32) }, ...paging],
        }),
      },
      '/v1/records/{id}': { get: people('records', 'One record: manifest, gateway signature, chameleon hash and opening, block', { description: 'ok' }, { parameters: [{ name: 'id', in: 'path', required: true, schema: int }] }) },
      '/v1/records/{id}/proof': {
        get: people('records', 'RFC 9162 §2.1.3 inclusion proof of the record in its block (404 while unsealed)', { description: 'ok' }, { parameters: [{ name: 'id', in: 'path', required: true, schema: int }] }),
      },
      '/v1/records/{id}/envelope': {
        get: people('envelope', 'The sealed envelope bytes (CP-ABE ciphertext)', { description: 'envelope', content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } }, {
          parameters: [{ name: 'id', in: 'path', required: true, schema: int }],
        }),
      },
      '/v1/blocks': { get: people('blocks', 'Blocks in height order', { description: 'ok', content: json({ type: 'object', properties: { blocks: { type: 'array', items: ref('Block') }, next: { type: ['integer', 'null'] } } }) }, { parameters: paging }) },
      '/v1/blocks/{height}': { get: people('blocks', 'One block with its header and record ids', { description: 'ok' }, { parameters: [{ name: 'height', in: 'path', required: true, schema: int }] }) },
      '/v1/chain/verification': { get: people('verification', 'The latest full chain verification (404 before the first)', { description: 'ok' }) },
      '/v1/anchors': {
        get: people('anchors', 'Anchoring status and the anchors of the chain head on an EVM chain, newest first', { description: 'ok' }, {
          parameters: [
            { name: 'before', in: 'query', schema: int, description: 'cursor: the smallest anchor id of the previous page' },
            { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 1000, default: 100 } },
          ],
        }),
      },
      '/v1/stats': { get: people('stats', 'Live counters for the console', { description: 'ok' }) },
      '/v1/openapi.json': { get: people('openapi', 'This document', { description: 'ok' }) },
      '/metrics': { get: people('metrics', 'Prometheus metrics (careledger_cloud_*)', { description: 'text/plain' }) },
      '/v1/evidence': {
        get: people('records', 'Evidence plan of a verified read or export: signed head, keys, per-stream seq spans with boundaries and admitted gaps (docs/api.md §Retrieval)', { description: 'ok' }, {
          parameters: ['from', 'to', 'lateness', 'skew'].map((name) => ({ name, in: 'query', required: name === 'from' || name === 'to', schema: int })).concat([
            { name: 'patient', in: 'query', required: false, schema: { type: 'string', pattern: '^p-[0-9a-f]{24}$' } as never },
            { name: 'type', in: 'query', required: false, schema: { type: 'string' } as never },
          ]),
        }),
      },
      '/v1/evidence/headers': { get: people('records', 'Canonical block headers of heights from … to (at most 5000)', { description: 'ok' }, { parameters: ['from', 'to'].map((name) => ({ name, in: 'query', required: true, schema: int })) }) },
      '/v1/evidence/records': {
        get: people('records', "Record proofs of one stream's seqs fromSeq … toSeq as of block `head` (pages of 500)", { description: 'ok' }, {
          parameters: [{ name: 'stream', in: 'query', required: true, schema: hex(32) }, ...['fromSeq', 'toSeq', 'head'].map((name) => ({ name, in: 'query', required: true, schema: int }))],
        }),
      },
      '/v1/transform': {
        post: {
          ...people('envelope', 'Outsourced decryption: the pairings of up to 64 records with the caller\'s transformation key (Green–Hohenberger–Waters)', { description: 'ok' }),
          requestBody: { required: true, content: json({ type: 'object', required: ['transformKey', 'records'], properties: { transformKey: { type: 'string', format: 'byte' }, records: { type: 'array', items: int } } }) },
        },
      },
      '/ipfs/{cid}': {
        get: people('envelope', 'IPFS Trustless Gateway: a stored block as application/vnd.ipld.raw or application/vnd.ipld.car (public with CARELEDGER_CLOUD_PUBLIC_IPFS)', { description: 'block' }, {
          parameters: [{ name: 'cid', in: 'path', required: true, schema: { type: 'string' } }, { name: 'format', in: 'query', required: false, schema: { enum: ['raw', 'car'] } }],
        }),
      },
    },
  }
}
