/**
 * The gateway's side of the instruction channel (docs/api.md §Instructions to gateways). The
 * gateway sits behind NAT, so the cloud cannot call it: the back office fetches its instructions
 * when the cloud's bulk answer says some wait, and at least every POLL_INTERVAL_MS otherwise.
 *
 *   instructionStages = [fetch, check, carryOut, acknowledge]
 *
 *   fetch        signed GET /v1/gateways/self/instructions
 *   check        shared/protocol/instructions.ts checkInstruction: addressed to us, signed by the
 *                cloud key pinned at registration, a version and kind we know (else the
 *                acknowledgement says failed / unsupported and nothing is done)
 *   carryOut     the kind's handler (idempotent: running it twice does what running it once does)
 *   acknowledge  signed POST …/{id}/ack with done / failed (and why)
 *
 * A transport failure leaves the instruction unacknowledged: the cloud hands it out again next time.
 *
 * Kinds: `resend-block` — read the envelope block from our blockstore, check it against its CID,
 * PUT it to /v1/envelopes/{cid}. Failed (NOT_HELD) when retention has pruned it or it was never
 * ours; failed (LOCAL_COPY_DAMAGED) when our copy does not hash to its CID either.
 */
import type Database from 'better-sqlite3'
import type { Blockstore } from 'interface-blockstore'
import type { Logger } from 'pino'
import { createHash } from 'node:crypto'
import { CID } from 'multiformats/cid'
import { checkInstruction, type Ack, type InstructionKind } from '../../shared/protocol/instructions.ts'
import { readBlock } from '../blocks.ts'

/** Without a hint from the cloud, ask this often. */
export const POLL_INTERVAL_MS = 5 * 60_000

export interface InstructionChannel {
  fetchInstructions(): Promise<unknown[]>
  acknowledge(id: number, ack: Ack): Promise<void>
  resendEnvelope(cid: string, bytes: Uint8Array): Promise<{ repaired: boolean }>
}

interface HandlerContext {
  readonly db: Database.Database
  readonly blocks: Blockstore
  readonly channel: InstructionChannel
}

type Handler = (h: HandlerContext, args: Record<string, unknown>) => Promise<Ack>

async function resendBlock(h: HandlerContext, args: Record<string, unknown>): Promise<Ack> {
  const cidText = args.cid as string
  const batch = h.db.prepare<[string], { batch_id: number; pruned_at: number | null }>('SELECT batch_id, pruned_at FROM batches WHERE cid = ? ORDER BY batch_id LIMIT 1').get(cidText)
  if (!batch) return { status: 'failed', detail: `NOT_HELD: no batch of this gateway has envelope ${cidText}` }
  if (batch.pruned_at !== null) return { status: 'failed', detail: `NOT_HELD: batch ${batch.batch_id} was pruned after retention at ${new Date(batch.pruned_at).toISOString()}` }
  const cid = CID.parse(cidText)
  let bytes: Uint8Array
  try {
    bytes = await readBlock(h.blocks, cid)
  } catch (e) {
    return { status: 'failed', detail: `NOT_HELD: the block of batch ${batch.batch_id} cannot be read here (${(e as Error).message.slice(0, 200)})` }
  }
  if (!createHash('sha256').update(bytes).digest().equals(cid.multihash.digest)) {
    return { status: 'failed', detail: `LOCAL_COPY_DAMAGED: this gateway's copy of ${cidText} does not hash to its CID either` }
  }
  const r = await h.channel.resendEnvelope(cidText, bytes) // throws on transport failure: no ack, retried next time
  return { status: 'done', detail: r.repaired ? `resent ${bytes.length} bytes; the cloud replaced its copy` : `resent ${bytes.length} bytes; the cloud's copy was already intact` }
}

/**
 * `delete-batch`: an approved redaction (docs/security.md §Supervision) corrected or deleted the
 * cloud's record of this batch: delete our envelope block and the plaintext readings, keep the
 * batch row (manifest, commitment) as the audit trail, marked pruned. Idempotent; refused after
 * `expiresAt` (a destructive instruction delivered late does nothing).
 */
async function deleteBatch(h: HandlerContext, args: Record<string, unknown>): Promise<Ack> {
  const cidText = args.cid as string
  const now = Date.now()
  if (now > (args.expiresAt as number)) return { status: 'failed', detail: `EXPIRED: the instruction expired at ${new Date(args.expiresAt as number).toISOString()}` }
  const batch = h.db.prepare<[string], { batch_id: number; pruned_at: number | null }>('SELECT batch_id, pruned_at FROM batches WHERE cid = ? ORDER BY batch_id LIMIT 1').get(cidText)
  if (!batch) return { status: 'done', detail: `no batch of this gateway has envelope ${cidText}: nothing to delete` }
  const readings = h.db.transaction(() => {
    const n = h.db.prepare('DELETE FROM readings WHERE batch_id = ?').run(batch.batch_id).changes
    h.db.prepare('UPDATE batches SET pruned_at = ? WHERE batch_id = ? AND pruned_at IS NULL').run(now, batch.batch_id)
    return n
  }).immediate()
  await h.blocks.delete(CID.parse(cidText))
  return { status: 'done', detail: `deleted envelope ${cidText} and ${readings} readings of batch ${batch.batch_id}` }
}

const handlers: Record<InstructionKind, Handler> = { 'resend-block': resendBlock, 'delete-batch': deleteBatch }

export interface PollReport {
  readonly received: number
  readonly done: number
  readonly failed: number
  readonly unsupported: number
}

export class InstructionRunner {
  readonly #h: HandlerContext
  readonly #gatewayId: string
  readonly #cloudKey: Uint8Array
  readonly #log: Logger

  constructor(db: Database.Database, blocks: Blockstore, channel: InstructionChannel, who: { gatewayId: string; cloudSigningKey: Uint8Array }, logger: Logger) {
    this.#h = { db, blocks, channel }
    this.#gatewayId = who.gatewayId
    this.#cloudKey = who.cloudSigningKey
    this.#log = logger
  }

  /** Fetch, carry out and acknowledge what the cloud left for us. Throws on a transport failure of the fetch. */
  async poll(): Promise<PollReport> {
    const raw = await this.#h.channel.fetchInstructions()
    const tally = { received: raw.length, done: 0, failed: 0, unsupported: 0 }
    for (const item of raw) {
      const checked = checkInstruction(item, this.#gatewayId, this.#cloudKey)
      let id: number | null
      let ack: Ack
      let kind: string
      if (!checked.ok) {
        id = checked.id
        ack = { status: checked.status, detail: checked.detail }
        kind = String((item as { kind?: unknown })?.kind ?? '?').slice(0, 40)
      } else {
        id = checked.instruction.id
        kind = checked.kind
        try {
          ack = await handlers[checked.kind](this.#h, checked.args)
        } catch (e) {
          this.#log.warn({ event: 'instruction_deferred', id, kind, error: (e as Error).message }, 'could not carry out a cloud instruction now; it is tried again at the next poll')
          continue
        }
      }
      if (id === null) {
        this.#log.error({ event: 'instruction_unreadable', detail: ack.detail }, 'the cloud sent an instruction without a readable id; ignored')
        continue
      }
      tally[ack.status]++
      const level = ack.status === 'done' ? 'info' : 'warn'
      this.#log[level]({ event: 'instruction', id, kind, status: ack.status, detail: ack.detail }, `cloud instruction ${id} (${kind}): ${ack.status}`)
      await this.#h.channel.acknowledge(id, ack)
    }
    return tally
  }
}
