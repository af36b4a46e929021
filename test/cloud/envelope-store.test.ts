/**
 * The envelope blockstore's durability (cloud/service/blockstore.ts, group-sync.ts): a put
 * resolves only after its file and directory were fsynced, concurrent puts share the directory
 * fsyncs, a file left damaged by a crash is rewritten, and a process SIGKILLed while storing many
 * envelopes at once has every envelope it acknowledged intact on disk.
 */
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { readdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { CID } from 'multiformats/cid'
import { sha256 } from 'multiformats/hashes/sha2'
import { blockFilePath, checkBlockFile, FileEnvelopeStore } from '../../cloud/service/blockstore.ts'
import { GroupSync } from '../../cloud/service/group-sync.ts'
import { tempDir } from './chain-helpers.ts'

const tmp = tempDir('envelope-store')
afterAll(() => tmp.cleanup())
let dirNo = 0
const freshDir = (): string => join(tmp.dir, `blocks-${++dirNo}`)

async function block(size = 2048): Promise<{ cid: CID; bytes: Uint8Array }> {
  const bytes = randomBytes(size)
  return { cid: CID.createV1(0x55, await sha256.digest(bytes)), bytes }
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r))

describe('GroupSync', () => {
  it('syncs each path after it was handed over, shares a round between waiters, and reports a failure only to its waiters', async () => {
    const log: string[] = []
    let release: (() => void) | null = null
    const sync = async (p: string): Promise<void> => {
      log.push(`sync ${p}`)
      if (p === 'slow') await new Promise<void>((r) => (release = r))
      if (p === 'bad') throw new Error('EIO on bad')
    }
    const g = new GroupSync(sync)
    const first = g.sync(['slow'])
    await tick()
    // While the first round waits on "slow", three callers arrive: they share the next round.
    log.push('hand over a, b, bad')
    const a = g.sync(['dir', 'a'])
    const b = g.sync(['dir', 'b'])
    const c = g.sync(['dir', 'bad'])
    await tick()
    expect(log).toEqual(['sync slow', 'hand over a, b, bad']) // nothing of theirs before the round
    release!()
    await first
    await a
    await b
    await expect(c).rejects.toThrow('EIO on bad')
    const second = log.slice(2)
    expect(second.filter((l) => l === 'sync dir')).toHaveLength(1) // shared
    expect(new Set(second)).toEqual(new Set(['sync dir', 'sync a', 'sync b', 'sync bad']))
    expect(g.stats).toEqual({ rounds: 2, requested: 7, synced: 5 })
  })
})

describe('FileEnvelopeStore.put', () => {
  it('stores many blocks at once readable under their CIDs, no temporary file left, fewer directory fsyncs than puts', async () => {
    const dir = freshDir()
    const store = await FileEnvelopeStore.open(dir)
    const blocks = await Promise.all(Array.from({ length: 300 }, () => block()))
    await Promise.all([...blocks, blocks[0]!, blocks[1]!].map((b) => store.put(b.cid, b.bytes))) // two stored twice at once
    for (const b of blocks) {
      expect(Buffer.from((await store.get(b.cid))!).equals(Buffer.from(b.bytes))).toBe(true)
      expect((await store.check(b.cid)).state).toBe('ok')
    }
    const leftovers = readdirSync(dir, { recursive: true }).filter((f) => String(f).endsWith('.tmp'))
    expect(leftovers).toEqual([])
    expect(store.syncStats.synced).toBeLessThan(store.syncStats.requested)
    await store.close()
  })

  it('rewrites a block file a crash left short or empty, and keeps a good one', async () => {
    const dir = freshDir()
    const store = await FileEnvelopeStore.open(dir)
    const short = await block()
    const good = await block()
    await store.put(short.cid, short.bytes)
    await store.put(good.cid, good.bytes)
    truncateSync(blockFilePath(dir, short.cid), 100)
    expect((await store.check(short.cid)).state).toBe('corrupt')
    await store.put(short.cid, short.bytes) // the gateway resends
    expect((await store.check(short.cid)).state).toBe('ok')
    const before = readFileSync(blockFilePath(dir, good.cid))
    await store.put(good.cid, good.bytes)
    expect(readFileSync(blockFilePath(dir, good.cid)).equals(before)).toBe(true)
    writeFileSync(blockFilePath(dir, good.cid), '') // empty, as after a power cut before the fsync
    await store.put(good.cid, good.bytes)
    expect((await store.check(good.cid)).state).toBe('ok')
    await store.close()
  })

  it('a process SIGKILLed while storing envelopes: every envelope it acknowledged is intact', async () => {
    const dir = freshDir()
    const acknowledged: string[] = []
    for (let kill = 0; kill < 4; kill++) {
      const child = spawn(process.execPath, [join(import.meta.dirname, 'envelope-crash-child.ts'), dir], { stdio: ['ignore', 'pipe', 'inherit'] })
      let buffered = ''
      let seen = 0
      const target = 150 + kill * 97
      await new Promise<void>((resolve, reject) => {
        child.on('error', reject)
        child.on('exit', () => resolve())
        child.stdout!.on('data', (d: Buffer) => {
          buffered += d.toString()
          const lines = buffered.split('\n')
          buffered = lines.pop()!
          for (const l of lines) if (l.startsWith('OK ')) (acknowledged.push(l.slice(3)), seen++)
          if (seen >= target) child.kill('SIGKILL')
        })
      })
    }
    expect(acknowledged.length).toBeGreaterThan(600)
    for (const c of acknowledged) expect((await checkBlockFile(dir, CID.parse(c))).state).toBe('ok')
  })
})
