/**
 * The gateway's `delete-batch` instruction (gateway/outbox/instructions.ts): after an approved
 * redaction the cloud tells the gateway to delete its envelope block and the plaintext readings of
 * the batch. Idempotent, and refused once expired (a destructive instruction delivered late does
 * nothing). The end-to-end path with real processes is in test/supervision/e2e.test.ts.
 */
import { describe, expect, it } from 'vitest'
import Database from 'better-sqlite3'
import pino from 'pino'
import type { Blockstore } from 'interface-blockstore'
import type { CID } from 'multiformats/cid'
import { generateSigningKey } from '../../shared/crypto/sign.ts'
import { deterministicRng } from '../../shared/crypto/random.ts'
import { signInstruction, type Ack } from '../../shared/protocol/instructions.ts'
import { rawCid } from '../../shared/protocol/car.ts'
import { InstructionRunner } from '../../gateway/outbox/instructions.ts'

/** The part of a blockstore the handler uses, in memory (the gateway's is blockstore-fs). */
class MemoryBlocks {
  readonly #m = new Map<string, Uint8Array>()
  async put(cid: CID, bytes: Uint8Array): Promise<CID> {
    this.#m.set(cid.toString(), bytes)
    return cid
  }
  async has(cid: CID): Promise<boolean> {
    return this.#m.has(cid.toString())
  }
  async delete(cid: CID): Promise<void> {
    this.#m.delete(cid.toString())
  }
}

const cloud = generateSigningKey(deterministicRng('delete-batch test cloud'))
const gatewayId = '0123456789abcdef'

async function setup(expiresAt: number) {
  const db = new Database(':memory:')
  db.exec('CREATE TABLE batches (batch_id INTEGER PRIMARY KEY, cid TEXT NOT NULL, pruned_at INTEGER); CREATE TABLE readings (id INTEGER PRIMARY KEY, batch_id INTEGER)')
  const envelope = new TextEncoder().encode('an envelope')
  const cid = await rawCid(envelope)
  db.prepare('INSERT INTO batches (batch_id, cid) VALUES (1, ?)').run(cid.toString())
  for (let i = 0; i < 5; i++) db.prepare('INSERT INTO readings (batch_id) VALUES (1)').run()
  const blocks = new MemoryBlocks()
  await blocks.put(cid, envelope)
  const instruction = signInstruction(cloud.secretKey, { v: 1, id: 3, gateway: gatewayId, kind: 'delete-batch', issuedAt: Date.now(), args: { cid: cid.toString(), record: 9, stream: 'ab'.repeat(16), seq: 4, expiresAt } })
  const acks: [number, Ack][] = []
  const channel = { fetchInstructions: async () => [instruction], acknowledge: async (id: number, ack: Ack) => void acks.push([id, ack]), resendEnvelope: async () => ({ repaired: false }) }
  const runner = new InstructionRunner(db, blocks as unknown as Blockstore, channel, { gatewayId, cloudSigningKey: cloud.publicKey }, pino({ level: 'silent' }))
  return { db, blocks, cid, runner, acks }
}

describe('delete-batch', () => {
  it('deletes the envelope block and the readings, keeps the batch row marked pruned; twice is once', async () => {
    const t = await setup(Date.now() + 60_000)
    expect(await t.runner.poll()).toMatchObject({ received: 1, done: 1 })
    expect(t.acks[0]![1]).toMatchObject({ status: 'done', detail: expect.stringMatching(/5 readings/) })
    expect(await t.blocks.has(t.cid)).toBe(false)
    expect(t.db.prepare('SELECT count(*) FROM readings').pluck().get()).toBe(0)
    expect(t.db.prepare('SELECT pruned_at FROM batches').pluck().get()).toEqual(expect.any(Number))
    expect(await t.runner.poll()).toMatchObject({ received: 1, done: 1 })
    expect(t.acks[1]![1]).toMatchObject({ status: 'done' })
  })

  it('refuses an expired instruction and deletes nothing', async () => {
    const t = await setup(Date.now() - 1)
    expect(await t.runner.poll()).toMatchObject({ received: 1, failed: 1 })
    expect(t.acks[0]![1]).toMatchObject({ status: 'failed', detail: expect.stringMatching(/^EXPIRED/) })
    expect(await t.blocks.has(t.cid)).toBe(true)
    expect(t.db.prepare('SELECT count(*) FROM readings').pluck().get()).toBe(5)
  })
})
