/**
 * Cloud → gateway instructions (docs/api.md §Instructions to gateways). Gateways sit behind NAT
 * and only ever call the cloud, so the cloud leaves instructions for a gateway, the gateway
 * fetches them with a signed request, carries each out and acknowledges it. Pure: the cloud
 * signs with it, the gateway verifies with it.
 *
 *   instruction = {v: 1, id, gateway, kind, issuedAt, args}     (JSON on the wire)
 *   signature   = Ed25519(cloud signing key, "careledger/v1/gateway-instruction" ‖ 0x00 ‖ canonical CBOR(instruction))
 *
 * - Typed: `kind` names what to do, `args` is checked against that kind's schema; a gateway that
 *   does not know a kind (or a version) acknowledges it `unsupported` and does nothing else.
 * - Versioned: `v` is the format of this envelope (1); a kind whose arguments change gets a new name.
 * - Signed by the cloud's block-signing key, which the gateway pinned at registration, so an
 *   instruction cannot be forged by anything between the two (a TLS-terminating proxy) — needed
 *   once instructions can delete data.
 * - Idempotent: carrying an instruction out twice has the effect of once; an acknowledgement
 *   repeated is answered with the state the first one set.
 * - Acknowledged: `done`, `failed` (with a reason) or `unsupported`.
 *
 * Kinds: `resend-block` {cid, record} — upload your copy of this envelope block (PUT
 * /v1/envelopes/{cid}): the cloud's copy is damaged or missing. `delete-batch` {cid, record,
 * stream, seq, expiresAt} — an approved redaction changed the record: delete your copy of the
 * envelope and the plaintext readings of that batch; refuse (failed) after expiresAt, so a
 * destructive instruction held back and delivered late does nothing.
 */
import { z } from 'zod'
import { encodeCanonical } from '../encoding/canonical.ts'
import { sign, verify } from '../crypto/sign.ts'

export const INSTRUCTION_VERSION = 1
export const INSTRUCTION_DOMAIN = 'gateway-instruction'

const cid = z.string().regex(/^b[a-z2-7]{20,120}$/, 'must be a base32 CIDv1')

/** The arguments of each kind. */
export const INSTRUCTION_ARGS = {
  'resend-block': z.strictObject({ cid, record: z.number().int().min(1) }),
  /** A redaction was applied: delete your copy of this envelope and the plaintext readings of (stream, seq). Destructive: not after expiresAt. */
  'delete-batch': z.strictObject({ cid, record: z.number().int().min(1), stream: z.string().regex(/^[0-9a-f]{32}$/), seq: z.number().int().min(0), expiresAt: z.number().int().min(0) }),
} as const

export type InstructionKind = keyof typeof INSTRUCTION_ARGS
export const INSTRUCTION_KINDS = Object.keys(INSTRUCTION_ARGS) as InstructionKind[]

export interface Instruction {
  readonly v: number
  readonly id: number
  readonly gateway: string
  readonly kind: string
  readonly issuedAt: number
  readonly args: Readonly<Record<string, unknown>>
}

export interface SignedInstruction extends Instruction {
  /** base64 of the cloud's 64-byte Ed25519 signature. */
  readonly signature: string
}

export const ACK_STATUSES = ['done', 'failed', 'unsupported'] as const
export type AckStatus = (typeof ACK_STATUSES)[number]

/** What the gateway answers (POST /v1/gateways/self/instructions/{id}/ack). */
export const AckSchema = z.strictObject({
  status: z.enum(ACK_STATUSES),
  /** A short reason: why it failed, what was done. */
  detail: z.string().max(500).optional(),
})
export type Ack = z.infer<typeof AckSchema>

/** The envelope of any instruction, before its kind is looked at. */
export const InstructionSchema = z.strictObject({
  v: z.number().int().min(1),
  id: z.number().int().min(1),
  gateway: z.string().regex(/^[0-9a-f]{16}$/),
  kind: z.string().regex(/^[a-z][a-z0-9-]{0,40}$/),
  issuedAt: z.number().int().min(0),
  args: z.record(z.string(), z.unknown()),
  signature: z.string().regex(/^[A-Za-z0-9+/]{86}==$/),
})

const payload = (i: Instruction): Uint8Array =>
  encodeCanonical({ v: i.v, id: i.id, gateway: i.gateway, kind: i.kind, issuedAt: i.issuedAt, args: i.args as Record<string, never> })

export function signInstruction(cloudSecretKey: Uint8Array, i: Instruction): SignedInstruction {
  return { v: i.v, id: i.id, gateway: i.gateway, kind: i.kind, issuedAt: i.issuedAt, args: i.args, signature: Buffer.from(sign(cloudSecretKey, INSTRUCTION_DOMAIN, payload(i))).toString('base64') }
}

export type CheckedInstruction =
  | { readonly ok: true; readonly instruction: Instruction; readonly kind: InstructionKind; readonly args: Record<string, unknown> }
  | { readonly ok: false; readonly id: number | null; readonly status: Exclude<AckStatus, 'done'>; readonly detail: string }

/**
 * What a gateway does with one instruction as received: a well-formed instruction for this
 * gateway, signed by the cloud it registered with, of a known version and kind with valid
 * arguments — or the acknowledgement to send instead (`unsupported` for an unknown kind or
 * version, `failed` otherwise; null id when not even that could be read).
 */
export function checkInstruction(raw: unknown, gatewayId: string, cloudPublicKey: Uint8Array): CheckedInstruction {
  const parsed = InstructionSchema.safeParse(raw)
  const id = typeof (raw as { id?: unknown })?.id === 'number' && Number.isSafeInteger((raw as { id: number }).id) ? (raw as { id: number }).id : null
  if (!parsed.success) return { ok: false, id, status: 'failed', detail: `malformed instruction: ${parsed.error.issues.slice(0, 2).map((i) => `${i.path.join('.') || 'instruction'}: ${i.message}`).join('; ')}` }
  const i = parsed.data
  if (i.gateway !== gatewayId) return { ok: false, id: i.id, status: 'failed', detail: `addressed to gateway ${i.gateway}, not ${gatewayId}` }
  let signed = false
  try {
    signed = verify(cloudPublicKey, INSTRUCTION_DOMAIN, payload(i), new Uint8Array(Buffer.from(i.signature, 'base64')))
  } catch {
    signed = false
  }
  if (!signed) return { ok: false, id: i.id, status: 'failed', detail: "the signature does not verify under the cloud's signing key pinned at registration" }
  if (i.v !== INSTRUCTION_VERSION) return { ok: false, id: i.id, status: 'unsupported', detail: `instruction format v${i.v}; this gateway knows v${INSTRUCTION_VERSION}` }
  if (!(i.kind in INSTRUCTION_ARGS)) return { ok: false, id: i.id, status: 'unsupported', detail: `kind ${i.kind} is unknown to this gateway (it knows ${INSTRUCTION_KINDS.join(', ')})` }
  const kind = i.kind as InstructionKind
  const args = INSTRUCTION_ARGS[kind].safeParse(i.args)
  if (!args.success) return { ok: false, id: i.id, status: 'failed', detail: `${kind}: bad arguments: ${args.error.issues.slice(0, 2).map((x) => `${x.path.join('.')}: ${x.message}`).join('; ')}` }
  return { ok: true, instruction: i, kind, args: args.data }
}
