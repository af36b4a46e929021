/**
 * Who may reach what (docs/api.md §Endpoints). One table, read by the routes; the role test
 * (test/cloud/service-access.test.ts) checks it against the document independently.
 */
export const ROLES = ['admin', 'regulator', 'researcher', 'doctor'] as const
export type Role = (typeof ROLES)[number]

export const isRole = (s: unknown): s is Role => typeof s === 'string' && (ROLES as readonly string[]).includes(s)

/** Endpoint groups and the roles that reach them. Anything not listed here needs no token (GET /healthz, the console's static files) or a gateway signature. */
export const ACCESS = {
  /** GET /v1/gateways */
  gateways: ['admin'],
  /** GET /v1/streams */
  streams: ['admin', 'regulator', 'researcher'],
  /** GET /v1/records, /v1/records/:id, /v1/records/:id/proof — metadata only */
  records: ['admin', 'regulator', 'researcher', 'doctor'],
  /** GET /v1/records/:id/envelope — ciphertext, for decryption with an attribute key */
  envelope: ['doctor', 'researcher'],
  /** GET /v1/blocks, /v1/blocks/:height */
  blocks: ['admin', 'regulator', 'researcher'],
  /** GET /v1/anchors — the chain's anchors on an EVM chain (public data there) */
  anchors: ['admin', 'regulator', 'researcher'],
  /** GET /v1/chain/verification */
  verification: ['admin', 'regulator'],
  /** GET /v1/stats */
  stats: ['admin'],
  /** GET /metrics (Prometheus; scrape with an admin bearer token) */
  metrics: ['admin'],
  /** POST /v1/supervision/requests, …/withdraw */
  supervisionRequest: ['doctor', 'admin'],
  /** GET /v1/supervision/requests, …/:id */
  supervisionRead: ['regulator', 'admin', 'doctor'],
  /** POST …/decisions, …/commitments, …/shares, …/opening */
  supervisionDecide: ['regulator'],
  /** PUT /v1/supervision/policy */
  supervisionAdmin: ['admin'],
  /** GET /v1/supervision/log */
  supervisionLog: ['admin', 'regulator', 'researcher'],
  /** GET /v1/openapi.json: any valid token */
  openapi: ['admin', 'regulator', 'researcher', 'doctor'],
} as const satisfies Record<string, readonly Role[]>

export type AccessGroup = keyof typeof ACCESS
